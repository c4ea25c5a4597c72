"""Small helpers shared by the model's mixins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from lightning.pytorch.strategies import DDPStrategy, Strategy
from mudata import MuData
from scvi import REGISTRY_KEYS, settings

from sctranslator.data import check_unique, check_values, get_modality
from sctranslator.data._validate import iter_row_chunks


def torch_device(accelerator: str, device: int | str) -> torch.device:
    """Return the torch device of Lightning-style ``accelerator`` and ``device`` arguments."""
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda" if device == "auto" else f"cuda:{device}")


def is_distributed(strategy: str | Strategy | None) -> bool:
    """Whether a Lightning ``strategy`` trains data-parallel (DDP), as scvi-tools decides it."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


def protein_names(adata: AnnData | MuData, registry: dict) -> list[str]:
    """Protein names of ``adata`` under the setup arguments of ``registry``."""
    args = registry["setup_args"]
    if isinstance(adata, MuData):
        modality = (args.get("modalities") or {}).get("protein_layer", "prot")
        return list(get_modality(adata, modality, "the proteins").var_names)
    key = args["protein_expression_obsm_key"]
    if key not in adata.obsm:
        raise KeyError(
            f"The model was set up with proteins in obsm[{key!r}] of an AnnData (a model "
            f"trained on a cell store: obsm['protein_expression'] and obs['batch']); the "
            f"data has obsm keys {list(adata.obsm)}. Put its proteins there as a DataFrame."
        )
    proteins = adata.obsm[key]
    if isinstance(proteins, pd.DataFrame):
        return list(proteins.columns)
    return list(adata.uns[args["protein_names_uns_key"]])


def rna_modality(adata: AnnData | MuData, registry: dict) -> AnnData:
    """Return the RNA AnnData of ``adata`` under the setup arguments of ``registry``."""
    if not isinstance(adata, MuData):
        return adata
    modalities = registry["setup_args"].get("modalities") or {}
    return get_modality(adata, modalities.get("rna_layer", "rna"), "the RNA")


def registered_proteins(model, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the registered protein counts of ``rows`` and their batch indices, as tensors."""
    if model._store is not None:
        block, batches = model._store_proteins(rows)
    else:
        manager = model.adata_manager
        proteins = manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        proteins = proteins.to_numpy() if isinstance(proteins, pd.DataFrame) else proteins
        block = proteins[rows]
        block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        batches = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()[rows]
    device = model.module.protein_mean.device
    return (
        torch.as_tensor(block, dtype=torch.float32, device=device),
        torch.as_tensor(batches.astype(np.int64), device=device),
    )


def registered_positions(model, names, token_ids) -> np.ndarray:
    """Position of each protein among ``model``'s registered proteins (``-1``: none).

    Proteins are matched by name, then by token id.
    """
    by_name, by_token = {}, {}
    registered = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    for j, (name, token) in enumerate(
        zip(registered, model.module.protein_ids.tolist(), strict=True)
    ):
        by_name.setdefault(str(name), j)
        by_token.setdefault(int(token), j)
    return np.array(
        [
            by_name.get(str(name), by_token.get(int(token), -1))
            for name, token in zip(names, token_ids, strict=True)
        ],
        dtype=np.int64,
    )


MAX_HELD_OUT = 16384
"""Most validation cells read after training (calibration, reliability), drawn with the seed."""


def sample_rows(rows, n: int) -> np.ndarray:
    """``rows`` sorted, or a sorted draw of ``n`` of them (``scvi.settings.seed``) when more."""
    rows = np.sort(np.asarray(rows))
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, n, replace=False))
    return rows


def measured_proteins(model, rows: np.ndarray) -> np.ndarray:
    """Return the registered proteins of ``rows`` on the model's scale, NaN where unmeasured."""
    counts, batch = registered_proteins(model, rows)
    mask = model.module.protein_batch_mask[batch]
    return model.module.normalize_protein(torch.where(mask, counts, torch.nan)).cpu().numpy()


def default_max_epochs(n_cells: int, cell_passes: int = 300_000) -> int:
    """Epochs for about ``cell_passes`` cells seen in training, between 10 and 400.

    Examples
    --------
    >>> default_max_epochs(400), default_max_epochs(5000), default_max_epochs(10**6)
    (400, 60, 10)
    """
    return int(np.clip(np.ceil(cell_passes / max(n_cells, 1)), 10, 400))


def validate_training_data(
    rna, obs_names, gene_names, proteins, protein_names, missing_genes: bool = False
) -> None:
    """Check the names and values of paired training RNA and proteins."""
    check_unique(gene_names, "gene")
    check_unique(protein_names, "protein")
    check_values(rna, "the RNA counts", obs_names, allow_nan=missing_genes, require_nonempty=True)
    check_values(proteins, "the protein counts", obs_names, allow_nan=True)
    measured = sum(int((~np.isnan(b)).sum()) for _, b in iter_row_chunks(proteins))
    if measured == 0:
        raise ValueError("The protein matrix has no measured value (all NaN).")
