"""Checks on user data that raise errors naming the problem."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

_CHUNK = 8192


def iter_row_chunks(matrix, *, chunk_size: int = _CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, dense_block)`` over row chunks of a dense, sparse or backed matrix."""
    for start in range(0, matrix.shape[0], chunk_size):
        block = matrix[start : start + chunk_size]
        if sp.issparse(block) or hasattr(block, "toarray"):
            block = block.toarray()
        yield start, np.asarray(block)


def _examples(names: Sequence[str]) -> str:
    return ", ".join(map(str, list(names)[:5]))


def check_unique(names: Sequence[str], *, what: str) -> None:
    """Raise when ``names`` contains duplicates."""
    index = pd.Index(names)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        raise ValueError(
            f"{len(dup)} duplicated {what} names, e.g. {_examples(dup)}. "
            f"Make them unique first (e.g. `adata.var_names_make_unique()`)."
        )


def check_values(
    matrix,
    *,
    what: str,
    obs_names: Sequence[str],
    allow_nan: bool = False,
    require_nonempty: bool = False,
    columns: np.ndarray | None = None,
) -> None:
    """Raise on NaN (unless allowed), infinite or negative values and, optionally, empty rows.

    Only ``columns`` (all by default) are checked. The matrix is read in row chunks, so a
    sparse or backed matrix is never densified whole.
    """
    n_nan = n_neg = n_inf = 0
    empty = []
    for start, block in iter_row_chunks(matrix):
        if columns is not None:
            block = block[:, columns]
        nan = np.isnan(block)
        n_nan += int(nan.sum())
        n_inf += int(np.isinf(block).sum())
        n_neg += int((block < 0).sum())
        if require_nonempty:
            rows = np.flatnonzero(np.where(nan, 0, block).sum(axis=1) <= 0)
            empty.extend(np.asarray(obs_names)[start + rows])
    if n_nan and not allow_nan:
        raise ValueError(f"{what} contains {n_nan} NaN values; expected non-negative counts.")
    if n_inf:
        raise ValueError(f"{what} contains {n_inf} infinite values.")
    if n_neg:
        raise ValueError(f"{what} contains {n_neg} negative values; expected non-negative counts.")
    if empty:
        raise ValueError(
            f"{len(empty)} cells have no counts in {what}, e.g. {_examples(empty)}. "
            "Filter them out first (e.g. `sc.pp.filter_cells(adata, min_counts=1)`)."
        )


def get_matrix(adata: AnnData, *, layer: str | None, what: str):
    """``adata.X`` or ``adata.layers[layer]``, with an error naming the available layers."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{what} has no `.X`; pass the layer that holds the counts.")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} not found in {what}; available layers: {list(adata.layers)}."
        )
    return adata.layers[layer]


def get_modality(mdata: MuData, *, mod_key: str | None, what: str) -> AnnData:
    """``mdata.mod[mod_key]`` with an error naming the available modalities."""
    if mod_key is None or mod_key not in mdata.mod:
        raise KeyError(f"Modality {mod_key!r} for {what} not found; available: {list(mdata.mod)}.")
    return mdata.mod[mod_key]


def check_paired(mdata: MuData, *, mod_keys: Sequence[str]) -> None:
    """Raise when the modalities do not hold the same cells in the same order."""
    first = mdata.mod[mod_keys[0]].obs_names
    for key in mod_keys[1:]:
        other = mdata.mod[key].obs_names
        shared = first.intersection(other)
        if len(shared) == 0:
            raise ValueError(f"Modalities {mod_keys[0]!r} and {key!r} share no cells (obs_names).")
        if len(first) != len(other) or not (first == other).all() or len(mdata.obs) != len(first):
            raise ValueError(
                f"Modalities {mod_keys[0]!r} ({len(first)} cells) and {key!r} ({len(other)} "
                f"cells) are not paired cell by cell ({len(shared)} shared). Use "
                "`sctranslator.pp.pair_modalities` to keep the RNA cells and mark their "
                "unmeasured proteins as missing (NaN)."
            )
