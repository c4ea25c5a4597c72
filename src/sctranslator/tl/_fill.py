"""Write predicted proteins into a MuData modality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from anndata import AnnData
from mudata import MuData

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR


def fill_protein(
    mdata: MuData,
    model: SCTRANSLATOR,
    key_added: str = "prot_pred",
    proteins: Sequence[str] | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
) -> None:
    """Predict proteins from the RNA of ``mdata`` and store them as a new modality.

    The new modality holds one row per RNA cell (same ``obs_names``), the predictions in
    ``X``, the token of each protein in ``var["token"]`` and the model's settings in
    ``uns["sctranslator"]``. Nothing else in ``mdata`` changes.

    Parameters
    ----------
    mdata
        MuData with the RNA modality the model was set up with (``"rna"`` by default).
    model
        A trained :class:`~sctranslator.SCTRANSLATOR`.
    key_added
        Name of the new modality.
    proteins
        Proteins to predict; the model's proteins by default.
    batch_size
        Cells per batch.
    overwrite
        Replace an existing modality named ``key_added``.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model, key_added="prot_pred")
    >>> mdata["prot_pred"]
    """
    if not isinstance(mdata, MuData):
        raise TypeError("fill_protein writes into a MuData; use model.predict_protein for AnnData.")
    if key_added in mdata.mod and not overwrite:
        raise ValueError(
            f"Modality {key_added!r} already exists; pass overwrite=True to replace it."
        )
    prediction = model.predict_protein(mdata, proteins=proteins, batch_size=batch_size)
    module = model.module
    var_tokens = [model.vocabulary.tokens[i] for i in model.vocabulary.lookup_proteins(prediction.columns)]
    predicted = AnnData(X=prediction.to_numpy(dtype="float32"))
    predicted.obs_names = prediction.index
    predicted.var_names = prediction.columns.astype(str)
    predicted.var["token"] = var_tokens
    predicted.uns["sctranslator"] = {
        "model": type(model).__name__,
        "summary": model._model_summary_string,
        "rna_normalization": model.init_params_["non_kwargs"]["rna_normalization"],
        "protein_normalization": model.init_params_["non_kwargs"]["protein_normalization"],
        "max_genes": module.max_genes,
    }
    mdata.mod[key_added] = predicted
    mdata.update()
