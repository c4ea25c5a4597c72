"""Statistics of the training cells: protein mask, scale and axes; gene weights."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager

from sctranslator.data import CellStore
from sctranslator.module import TranslatorModule

_CHUNK = 8192


def _training_blocks(
    adata_manager: AnnDataManager | CellStore, rows: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(protein counts, batch index)`` of the training ``rows``, in row chunks."""
    if isinstance(adata_manager, CellStore):
        for start in range(0, len(rows), _CHUNK):
            values = adata_manager.read(rows[start : start + _CHUNK], genes=False).dense()
            yield values["proteins"], values["batch"]
        return
    proteins = adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    if isinstance(proteins, pd.DataFrame):
        proteins = proteins.to_numpy()
    batches = np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        block = proteins[chunk]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        yield block.astype(np.float32), batches[chunk].astype(np.int64)


@torch.no_grad()
def fit_panel_statistics(
    module: TranslatorModule,
    adata_manager: AnnDataManager | CellStore,
    rows: np.ndarray,
    max_cells: int = 2048,
) -> None:
    """Set the module's panel statistics from the training cells ``rows`` only.

    The cells are read in row chunks from the registered data (``adata_manager``) or from
    a :class:`~sctranslator.data.CellStore`.

    - ``protein_batch_mask``: a protein counts as measured in a batch when it is positive in
      at least one training cell of that batch.
    - ``protein_mean`` and ``protein_std`` of the normalised proteins, for the proteins whose
      statistics are not set yet (``protein_fitted``; a model transferred from a reference
      keeps the reference's statistics of the proteins they share).
    - ``protein_axes``: top principal axes of the standardised proteins of at most
      ``max_cells`` training cells (unmeasured values count as the mean), by randomized SVD.

    Validation cells never enter: early stopping and best-epoch restore score held-out cells.
    """
    rows = np.sort(np.asarray(rows))
    n_batch, n_proteins = module.protein_batch_mask.shape
    measured = np.zeros((n_batch, n_proteins), dtype=bool)
    for block, batch in _training_blocks(adata_manager, rows):
        np.logical_or.at(measured, batch, np.nan_to_num(block) > 0)
    module.protein_batch_mask = torch.as_tensor(measured, device=module.protein_mean.device)

    def normalized(block: np.ndarray, batch: np.ndarray) -> torch.Tensor:
        values = torch.as_tensor(block, device=module.protein_mean.device)
        mask = module.protein_batch_mask[torch.as_tensor(batch, device=values.device)]
        return module.normalize_protein(torch.where(mask, values, torch.nan)).double()

    total, total_sq, count = (torch.zeros(n_proteins, dtype=torch.float64) for _ in range(3))
    for block, batch in _training_blocks(adata_manager, rows):
        values = normalized(block, batch).cpu()
        seen = ~values.isnan()
        values = values.nan_to_num()
        total += values.sum(0)
        total_sq += (values**2).sum(0)
        count += seen.sum(0)
    never = (count == 0).numpy()
    if never.any():
        names = (
            adata_manager.proteins
            if isinstance(adata_manager, CellStore)
            else adata_manager.get_state_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY).column_names
        )
        warnings.warn(
            f"{int(never.sum())} proteins are never measured in the training cells (NaN or all "
            f"zero), e.g. {list(np.asarray(names)[never][:5])}; they are left out of the loss.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )
    mean = total / count.clamp_min(1)
    std = (total_sq / count.clamp_min(1) - mean**2).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    new = ~module.protein_fitted
    module.protein_mean[new] = mean.float().to(module.protein_mean.device)[new]
    module.protein_std[new] = std.float().to(module.protein_std.device)[new]
    module.protein_fitted[:] = True

    rank = module.protein_axes.shape[1]
    if rank < n_proteins:
        sample = rows
        if len(rows) > max_cells:
            sample = np.sort(np.random.default_rng(settings.seed).choice(rows, max_cells, False))
        standardized = torch.cat(
            [
                (
                    (normalized(block, batch) - module.protein_mean) / module.protein_std
                ).nan_to_num()
                for block, batch in _training_blocks(adata_manager, sample)
            ]
        ).float()
        # Axes through the origin: the standardised proteins are centred on the training mean.
        q = min(rank + 8, *standardized.shape)
        axes = torch.svd_lowrank(standardized, q=q, niter=4)[2][:, :rank]
        full = torch.zeros_like(module.protein_axes)
        full[:, : axes.shape[1]] = axes.to(full.device)
        module.protein_axes = full


@torch.no_grad()
def fit_gene_weights(module: TranslatorModule, x: torch.Tensor, target: torch.Tensor) -> None:
    """Set :attr:`~sctranslator.module.TranslatorModule.gene_weight` of the registered genes.

    The weight of a gene is the root mean square, over proteins, of its Pearson correlation
    with the standardised proteins (unmeasured values count as the mean) across the training
    cells ``x`` (registered RNA counts) with any protein measured, ``target``
    (:meth:`~sctranslator.module.TranslatorModule.standardized_target`), less the chance
    level ``1 / (cells - 1)`` of a squared correlation, and scaled to a maximum of 1. A gene
    unrelated to the proteins, or expressed alike in every cell, weighs about 0.
    """
    paired = ~target.isnan().all(1)
    if int(paired.sum()) < 3:
        return
    x, gene_ids = module.read_registered_genes(x[paired])
    genes = module.normalize_rna(x).nan_to_num().double()
    proteins = target[paired].nan_to_num().double()
    genes = (genes - genes.mean(0)) / genes.std(0).clamp_min(1e-8)
    proteins = (proteins - proteins.mean(0)) / proteins.std(0).clamp_min(1e-8)
    correlation = genes.T @ proteins / (len(genes) - 1)
    # A correlation squared overestimates its true value by about 1 / (cells - 1), so a gene
    # unrelated to the proteins weighs about 0, whatever the number of cells.
    weight = (correlation.square().mean(1) - 1 / (len(genes) - 1)).clamp_min(0).sqrt()
    module.gene_weight[gene_ids] = (weight / weight.max().clamp_min(1e-8)).float()
