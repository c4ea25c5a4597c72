"""A model on a cell store: its registry, its training data module, and queries of its cells."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS, settings

from sctranslator._scvi_compat import setup_manager
from sctranslator.data import PROTEINS_OBSM_KEY, CellStore, StoreDataModule, read_minibatches

# Placeholder cells per batch that lay out the model's registry (its genes, proteins and
# batches are the store's).
_LAYOUT_CELLS = 3


def registry_from_store(model_cls: type, store: CellStore) -> dict:
    """Return the registry ``model_cls.setup_anndata`` gives a store's cells, counting all cells.

    The store's genes, proteins and batches are laid out in a small AnnData (placeholder
    counts; the store's own counts were checked when they were ingested) with proteins in
    ``obsm["protein_expression"]`` and batches in ``obs["batch"]``, registered as usual; the
    registry then counts every cell of the store.
    """
    if store.n_obs == 0:
        raise ValueError(f"{store.uri} holds no cells.")
    n_cells = _LAYOUT_CELLS * len(store.batches)  # scvi-tools warns below 3 per batch
    batches = pd.Categorical(store.batches[np.arange(n_cells) % len(store.batches)])
    cells = pd.Index([f"cell{i}" for i in range(n_cells)])
    genes = np.arange(n_cells) % len(store.genes)  # one count per cell
    counts = sp.csr_matrix(
        (np.ones(n_cells, dtype=np.float32), genes, np.arange(n_cells + 1)),
        shape=(n_cells, len(store.genes)),
    )
    layout = AnnData(
        X=counts,
        obs=pd.DataFrame({"batch": batches}, index=cells),
        var=pd.DataFrame(index=store.genes),
    )
    layout.obsm[PROTEINS_OBSM_KEY] = pd.DataFrame(
        np.ones((n_cells, len(store.proteins)), dtype=np.float32),
        index=cells,
        columns=store.proteins,
    )
    model_cls.setup_anndata(
        layout, protein_expression_obsm_key=PROTEINS_OBSM_KEY, batch_key="batch"
    )
    registry = setup_manager(model_cls, layout).registry
    registry["field_registries"][REGISTRY_KEYS.X_KEY]["summary_stats"]["n_cells"] = store.n_obs
    return registry


def store_datamodule(
    store: CellStore,
    train_size: float | None,
    validation_size: float | None,
    batch_size: int,
    datasplitter_kwargs: dict | None,
) -> StoreDataModule:
    """Return the data module that trains on ``store``, split and shuffled by the store."""
    unknown = set(datasplitter_kwargs or {}) - {"chunk_size", "block_size"}
    if unknown:
        raise ValueError(
            f"datasplitter_kwargs {sorted(unknown)} do not apply to a cell store; it takes "
            "chunk_size and block_size (sctranslator.data.StoreDataModule)."
        )
    return StoreDataModule(
        store,
        train_size=0.9 if train_size is None else train_size,
        validation_size=validation_size,
        batch_size=batch_size,
        seed=settings.seed or 0,
        **(datasplitter_kwargs or {}),
    )


@dataclass
class StoreQuery:
    """Cells of a store to predict from, with the interface of a query on an AnnData."""

    store: CellStore
    rows: np.ndarray
    gene_ids: np.ndarray

    @property
    def obs_names(self) -> np.ndarray:
        """Names of the selected cells."""
        return self.store.obs_names(self.rows)

    @property
    def var_names(self) -> np.ndarray:
        """The store's genes."""
        return self.store.genes

    @property
    def columns(self) -> np.ndarray:
        """All of the store's genes are known to the model trained on it."""
        return np.arange(len(self.store.genes))

    def batches(self, batch_size: int | None) -> tuple[int, Iterator[torch.Tensor]]:
        """Return the number of batches and an iterator over their RNA counts."""
        batch_size = batch_size or settings.batch_size
        minibatches = read_minibatches(self.store, self.rows, batch_size, proteins=False)
        return -(-len(self.rows) // batch_size), (
            torch.from_numpy(values[REGISTRY_KEYS.X_KEY]) for values in minibatches
        )
