"""Parameter descriptions shared by several docstrings (scvi-tools' docrep convention)."""

from docrep import DocstringProcessor

metrics_dsp = DocstringProcessor(
    param_prediction="prediction\n    Predicted values, ``(cells, proteins)`` array or DataFrame.",
    param_truth=(
        "truth\n    Measured values on the same scale and in the same order; NaN where unmeasured."
    ),
    param_embedding="embedding\n    ``(cells, dimensions)`` coordinates.",
    param_labels="labels\n    Cell type of each cell.",
)

plot_dsp = DocstringProcessor(
    param_ax="ax\n    Axes to draw into; a new figure by default.",
    param_show=(
        "show\n    Show the figure; by default only in interactive sessions when not saving."
    ),
    param_save=(
        "save\n    Write the figure to this path (the format from its suffix); an existing "
        "file is refused."
    ),
    param_predicted_data=(
        "data\n    MuData annotated by :func:`~sctranslator.tl.fill_protein`, or a table of "
        "predictions (cells by proteins, e.g. from "
        ":meth:`~sctranslator.SCTRANSLATOR.predict_protein`)."
    ),
    param_measured=(
        "measured\n    Modality of ``data`` with the measured proteins, on the scale of the "
        "predictions (e.g. CLR, :func:`~sctranslator.pp.normalize_protein`); or a table of "
        "measured values (cells by proteins; NaN = unmeasured), required with a table of "
        "predictions."
    ),
    param_key_predicted=(
        "key\n    Modality with the predictions: the ``key_added`` of "
        ":func:`~sctranslator.tl.fill_protein`."
    ),
    param_layer_measured=("layer\n    Layer of the ``measured`` modality; ``None`` for ``X``."),
)

model_dsp = DocstringProcessor(
    param_query=(
        "adata\n    AnnData with RNA counts, or MuData with the registered RNA modality; the "
        "registered data by default. Counts come from the registered layer, or from ``X`` "
        "when the query lacks it and ``X`` holds whole numbers; unknown genes are ignored."
    ),
    param_indices="indices\n    Cells; all by default.",
    param_batch_size="batch_size\n    Cells per batch; ``scvi.settings.batch_size`` by default.",
    param_proteins=(
        "proteins\n    Protein names or tokens; the registered proteins by default. Any number."
    ),
)
