"""Pair the RNA and protein modalities of a mosaic MuData."""

from __future__ import annotations

import logging

import numpy as np
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import get_modality, iter_row_chunks

logger = logging.getLogger(__name__)


def pair_modalities(mdata: MuData, *, rna: str = "rna", protein: str = "prot") -> MuData:
    """Return a new MuData of the RNA cells with proteins marked missing where not measured.

    A translator learns from cells with RNA. In a mosaic (some cells with RNA only, some with
    protein only) this keeps every RNA cell, gives the protein modality a row for each of
    them, NaN where the cell's proteins were not measured, and leaves out protein-only cells.
    NaN proteins are masked out of :class:`~sctranslator.SCTRANSLATOR`'s loss. ``mdata`` is
    not changed.

    Parameters
    ----------
    mdata
        MuData with an RNA and a protein modality.
    rna
        Name of the RNA modality.
    protein
        Name of the protein modality.

    Returns
    -------
    A MuData with modalities ``rna`` (a copy) and ``protein`` (dense ``float32``, NaN where
    unmeasured, for ``.X`` and every layer), and the top-level ``obs`` of the RNA cells.

    Examples
    --------
    >>> mosaic = sct.datasets.pbmc_cite_mini(paired=False)
    >>> paired = sct.pp.pair_modalities(mosaic, rna="rna", protein="prot")
    """
    rna_data = get_modality(mdata, mod_key=rna, what="rna")
    prot_data = get_modality(mdata, mod_key=protein, what="protein")
    cells = rna_data.obs_names
    measured = cells.get_indexer(prot_data.obs_names)
    if (measured < 0).all():
        raise ValueError(f"Modalities {rna!r} and {protein!r} share no cells (obs_names).")
    target_rows = measured[measured >= 0]
    source_rows = np.flatnonzero(measured >= 0)

    def reindex(matrix) -> np.ndarray:
        out = np.full((len(cells), prot_data.n_vars), np.nan, dtype=np.float32)
        for start, block in iter_row_chunks(matrix[source_rows]):
            out[target_rows[start : start + len(block)]] = block
        return out

    paired_protein = AnnData(
        X=None if prot_data.X is None else reindex(prot_data.X),
        obs=prot_data.obs.reindex(cells),
        var=prot_data.var.copy(),
        layers={key: reindex(value) for key, value in prot_data.layers.items()},
        uns=prot_data.uns.copy(),
    )
    logger.info(
        "Paired %d RNA cells: %d with proteins, %d with proteins missing; %d protein-only "
        "cells left out.",
        len(cells),
        len(source_rows),
        len(cells) - len(source_rows),
        prot_data.n_obs - len(source_rows),
    )
    # proteins named like their genes
    with no_pull(), shared_var_names((rna_data, paired_protein)):
        paired = MuData({rna: rna_data.copy(), protein: paired_protein})
    obs = mdata.obs.loc[cells].copy()
    for column in obs.select_dtypes("category"):
        obs[column] = obs[column].cat.remove_unused_categories()
    paired.obs = obs
    return paired
