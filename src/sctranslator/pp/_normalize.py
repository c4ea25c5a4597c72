"""Protein normalisation on the scale the model predicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from sctranslator.data import get_matrix, iter_row_chunks
from sctranslator.nn import PROTEIN_NORMALIZATIONS, get_normalization


def normalize_protein(
    adata: AnnData, *, method: str = "clr", layer: str | None = None
) -> pd.DataFrame:
    """Normalise protein counts per cell, as :class:`~sctranslator.SCTRANSLATOR` does.

    Use it to put measured proteins on the scale of the model's predictions. NaN (an
    unmeasured protein) stays NaN and is left out of the cell's statistics. ``adata`` is not
    changed.

    Parameters
    ----------
    adata
        Protein AnnData (cells by proteins) with raw counts.
    method
        ``"clr"``, ``"log1p"`` or ``"minmax"``; see :mod:`sctranslator.nn`.
    layer
        Layer with the counts; ``None`` for ``.X``.

    Returns
    -------
    DataFrame of cells by proteins.

    Examples
    --------
    >>> measured = sct.pp.normalize_protein(mdata["prot"], layer="counts")
    """
    normalize = get_normalization(method, PROTEIN_NORMALIZATIONS, "protein")
    matrix = get_matrix(adata, layer=layer, what="the protein data")
    values = np.concatenate(
        [
            normalize(torch.as_tensor(block, dtype=torch.float32)).numpy()
            for _, block in iter_row_chunks(matrix)
        ]
    )
    return pd.DataFrame(values, index=adata.obs_names, columns=adata.var_names)
