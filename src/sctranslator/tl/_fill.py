"""Write predicted proteins into a MuData modality."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from anndata import AnnData, read_h5ad
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR


def fill_protein(
    mdata: MuData,
    model: SCTRANSLATOR,
    *,
    key_added: str = "prot_pred",
    proteins: Sequence[str] | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
    progress_bar: bool | None = None,
    output: str | os.PathLike | None = None,
    copy: bool = False,
    interval: float | None = None,
) -> MuData | None:
    """Predict proteins from the RNA of ``mdata`` and store them as a new modality.

    The new modality holds one row per RNA cell (same ``obs_names``), the predictions in
    ``X``, the token of each protein in ``var["token"]`` and the model's settings in
    ``uns["sctranslator"]``. Nothing else in ``mdata`` changes. With ``interval``, layers
    ``lower`` and ``upper`` hold the prediction intervals
    (:meth:`~sctranslator.SCTRANSLATOR.predict_protein_interval`) and ``var["reliability"]``
    each protein's expected quality (:attr:`~sctranslator.SCTRANSLATOR.protein_reliability`).

    A MuData read with ``mudata.read_h5mu(path, backed=True)`` works too: its RNA is read
    from disk batch by batch. With ``output``, the predictions are also streamed to disk
    batch by batch and the new modality is that file opened backed, so memory stays
    bounded whatever the number of cells.

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
        Replace an existing modality named ``key_added`` (and an existing ``output`` file).
    progress_bar
        Show a progress bar; by default when there are more than 10 batches.
    output
        An ``.h5ad`` file to write the new modality to, batch by batch; the modality is then
        this file opened backed (read-only).
    copy
        Add the modality to a copy of ``mdata`` (in memory) and return the copy.
    interval
        Coverage level in ``(0, 1)`` of prediction intervals written to the layers ``lower``
        and ``upper`` (e.g. ``0.9``); ``None`` writes none. Not with ``output``.

    Returns
    -------
    The annotated copy when ``copy``, else ``None``.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model, key_added="prot_pred")
    >>> mdata["prot_pred"]
    >>> sct.tl.fill_protein(mdata, model, key_added="prot_pred", interval=0.9, overwrite=True)
    >>> mdata["prot_pred"].layers["lower"]
    >>> atlas = mudata.read_h5mu("atlas.h5mu", backed=True)
    >>> sct.tl.fill_protein(atlas, model, output="atlas_prot_pred.h5ad", progress_bar=True)
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            "fill_protein writes into a MuData; use model.predict_protein for AnnData."
        )
    if key_added in mdata.mod and not overwrite:
        raise ValueError(
            f"Modality {key_added!r} already exists; pass overwrite=True to replace it."
        )
    if output is not None and Path(output).suffix != ".h5ad":
        raise ValueError(f"`output` must be an .h5ad file, got {str(output)!r}.")
    if copy and mdata.isbacked:
        raise ValueError("copy=True needs a MuData in memory; this one is backed.")
    if interval is not None and output is not None:
        raise ValueError(
            "`interval` is not written to an `output` file; fill in memory (output=None), or "
            "stream the intervals with model.predict_protein_interval in chunks of cells."
        )
    kwargs = {"proteins": proteins, "batch_size": batch_size, "progress_bar": progress_bar}
    if output is None:
        if interval is None:
            prediction, layers = model.predict_protein(mdata, **kwargs), {}
        else:
            prediction, lower, upper = model.predict_protein_interval(
                mdata,
                level=interval,
                proteins=proteins,
                batch_size=batch_size,
                return_prediction=True,
            )
            layers = {"lower": lower.to_numpy("float32"), "upper": upper.to_numpy("float32")}
        var, uns = model.prediction_annotations(prediction.columns)
        predicted = AnnData(
            X=prediction.to_numpy(dtype="float32"),
            obs=pd.DataFrame(index=prediction.index.astype(str)),
            var=var,
            uns=uns,
            layers=layers,
        )
    else:
        path = model.predict_protein(mdata, output=output, overwrite=overwrite, **kwargs)
        predicted = read_h5ad(path, backed="r")
    with no_pull(), shared_var_names(mdata.mod.values()):  # proteins named like genes (CD9)
        annotated = mdata.copy() if copy else mdata
    annotated.mod[key_added] = predicted
    # prot_pred keeps the measured proteins' names so that prot and prot_pred line up; some
    # equal gene names (CD9): see sctranslator._mudata.shared_var_names. No column pulling.
    with no_pull(), shared_var_names(annotated.mod.values()):
        annotated.update()
    return annotated if copy else None
