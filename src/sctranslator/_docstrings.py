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
)
