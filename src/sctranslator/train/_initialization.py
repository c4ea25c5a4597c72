"""Data-dependent set-up of the module at the start of each training."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.dataloaders import AnnDataLoader

from sctranslator.data import CellStore
from sctranslator.data._store_loader import read_minibatches

from ._statistics import fit_gene_weights, fit_panel_statistics


class DataInitialization(pl.Callback):
    """Set the module up from the training cells before each training.

    Only training cells are read; the validation cells never shape the model, so early
    stopping and best-epoch restore score truly held-out cells. The callback

    - sets the panel statistics (measured-protein mask, per-protein mean and std, protein
      axes) with :func:`~sctranslator.train.fit_panel_statistics`;

    and, on at most ``max_cells`` training cells (drawn with ``scvi.settings.seed``),

    - unless the module is already initialised (trained before, or transferred from a
      reference), sets the gene weights of the ``"informative"`` context rule
      (:func:`~sctranslator.train.fit_gene_weights`) and calls
      :meth:`~sctranslator.module.TranslatorModule.initialize_from_data` on their RNA;
    - fits the training plan's :class:`~sctranslator.train.NeighborTeacher` (its ``teacher``,
      when it smooths targets) to them, so the teacher always belongs to the data being
      trained on.

    Under DDP every process computes the same set-up, then takes the first process's.

    Parameters
    ----------
    max_cells
        Largest number of training cells read.
    """

    def __init__(self, max_cells: int = 2048):
        super().__init__()
        self.max_cells = max_cells

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Set the module up from the training split of the data module."""
        module = pl_module.module
        teacher = getattr(pl_module, "teacher", None)
        smoothing = teacher is not None and teacher.smoothing > 0
        if teacher is not None:
            teacher.clear()  # never a teacher from other data
        splitter = trainer.datamodule
        if getattr(splitter, "train_idx", None) is None:
            warnings.warn(
                "The data module has no `train_idx`: the model is not set up from the "
                "training cells (no panel statistics, data-dependent start or target "
                "smoothing).",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
            return
        rows = np.asarray(splitter.train_idx)
        module.clear_reference_mapping()  # refitted after this training by the model
        source = getattr(splitter, "store", None) or splitter.adata_manager
        fit_panel_statistics(module, source, rows, self.max_cells)
        if bool(module.initialized) and not smoothing:
            self._broadcast(trainer, pl_module)
            return
        if len(rows) > self.max_cells:
            rows = np.random.default_rng(settings.seed).choice(rows, self.max_cells, replace=False)
        cells = {
            key: torch.as_tensor(value, dtype=torch.float32, device=module.device)
            for key, value in self._read(source, np.sort(rows)).items()
        }
        x = cells[REGISTRY_KEYS.X_KEY]
        target = module.standardized_target(
            cells[REGISTRY_KEYS.PROTEIN_EXP_KEY], cells[REGISTRY_KEYS.BATCH_KEY]
        )
        if not bool(module.initialized):
            if module.context == "informative":  # first: it decides the context of the start
                fit_gene_weights(module, x, target)
            module.initialize_from_data(x)
        if smoothing:
            teacher.fit(torch.nan_to_num(module.normalize_rna(x)), target)
        self._broadcast(trainer, pl_module)

    @staticmethod
    def _read(source: AnnDataManager | CellStore, rows: np.ndarray) -> dict[str, np.ndarray]:
        """RNA, proteins and batch of ``rows`` of the registered data or of a store."""
        if isinstance(source, CellStore):
            return next(read_minibatches(source, rows, max(len(rows), 1), max(len(rows), 1)))
        loader = AnnDataLoader(
            source,
            indices=rows,
            batch_size=len(rows),
            shuffle=False,
            data_and_attributes=[
                REGISTRY_KEYS.X_KEY,
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                REGISTRY_KEYS.BATCH_KEY,
            ],
        )
        return next(iter(loader))

    @staticmethod
    def _broadcast(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under DDP, give every process the first process's set-up (module and teacher)."""
        if trainer.world_size == 1:
            return
        module = pl_module.module
        module.load_state_dict(trainer.strategy.broadcast(module.state_dict(), src=0))
        if getattr(pl_module, "teacher", None) is not None:
            pl_module.teacher = trainer.strategy.broadcast(pl_module.teacher, src=0)
