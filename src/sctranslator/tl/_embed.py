"""Cell embeddings shared by the tools: RNA PCA, protein PCA, and the model's RNA modality."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctranslator.data import get_matrix, get_modality

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR


def model_rna(data: AnnData | MuData, model: SCTRANSLATOR) -> tuple[AnnData, str | None]:
    """Return the AnnData holding the RNA the model reads, and the layer with its counts.

    For a MuData, the RNA modality the model was set up with, which must hold exactly the
    MuData's cells (results are written at the MuData level).
    """
    args = model.registry_["setup_args"]
    layer = args.get("rna_layer", args.get("layer"))
    if isinstance(data, MuData):
        mod_key = (args.get("modalities") or {}).get("rna_layer", "rna")
        rna = get_modality(data, mod_key, "the RNA")
        check_cells(data, [mod_key])
        return rna, layer
    if isinstance(data, AnnData):
        return data, layer
    raise TypeError(f"Expected an AnnData or MuData, got {type(data).__name__}.")


def check_cells(mdata: MuData, mod_keys: list[str]) -> None:
    """Raise unless each modality holds the MuData's cells in the MuData's order."""
    for key in mod_keys:
        names = get_modality(mdata, key, "the embedding").obs_names
        if len(names) != mdata.n_obs or not (names == mdata.obs_names).all():
            raise ValueError(
                f"Modality {key!r} holds {len(names)} cells but the MuData {mdata.n_obs}, or in "
                "another order; subset the MuData to the cells of that modality first "
                "(e.g. `mdata[mdata.obs_names.isin(mdata[key].obs_names)].copy()`)."
            )


def rna_pca(
    rna: AnnData, layer: str | None, n_comps: int = 30, random_state: int = 0
) -> np.ndarray:
    """PCA of RNA counts after ``log1p`` of counts per 10,000, on a light copy.

    Parameters
    ----------
    rna
        AnnData with raw counts.
    layer
        Layer with the counts; ``None`` for ``X``.
    n_comps
        Components, at most ``min(cells, genes) - 1``.
    random_state
        Seed of the PCA solver.
    """
    counts = get_matrix(rna, layer, "the RNA")
    holder = AnnData(X=sp.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(holder, target_sum=1e4)
    sc.pp.log1p(holder)
    n_comps = min(n_comps, min(holder.shape) - 1)
    return sc.pp.pca(holder.X, n_comps=n_comps, random_state=random_state)


def standardized_pca(
    values: np.ndarray | pd.DataFrame, n_comps: int = 30, random_state: int = 0
) -> np.ndarray:
    """PCA of ``(cells, features)`` values (e.g. proteins on the CLR scale), z-scored.

    Each feature is z-scored first; constant features are left out.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("The values contain NaN or infinite entries; cannot embed them.")
    std = values.std(0)
    values = (values[:, std > 1e-8] - values[:, std > 1e-8].mean(0)) / std[std > 1e-8]
    n_comps = min(n_comps, min(values.shape) - 1)
    return sc.pp.pca(values.astype(np.float32), n_comps=n_comps, random_state=random_state)


def concatenate(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Concatenate embeddings, each scaled to total variance ``weight``.

    So no block dominates by its number of dimensions or its units.
    """
    scaled = []
    for block, weight in zip(blocks, weights, strict=True):
        total = block.var(0).sum()
        scaled.append(block * np.sqrt(weight / total) if total > 0 else block)
    return np.concatenate(scaled, axis=1).astype(np.float32)
