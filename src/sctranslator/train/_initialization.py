"""Data-dependent initialisation of a fresh module at the start of its first training."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from scvi import REGISTRY_KEYS, settings
from scvi.dataloaders import AnnDataLoader


class DataInitialization(pl.Callback):
    """Call :meth:`~sctranslator.module.TranslatorModule.initialize_from_data` before training.

    Uses the RNA of at most ``max_cells`` training cells (drawn with ``scvi.settings.seed``;
    the validation cells are never used). A module that is already initialised (trained
    before, or transferred from a reference) is left as it is. Under DDP every process
    computes the same initialisation, then takes the first process's weights.

    Parameters
    ----------
    max_cells
        Largest number of training cells read for the initialisation.
    """

    def __init__(self, max_cells: int = 2048):
        super().__init__()
        self.max_cells = max_cells

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Initialise the module from the training split of the data module."""
        module = pl_module.module
        if bool(module.initialized):
            return
        splitter = trainer.datamodule
        if getattr(splitter, "train_idx", None) is None:
            warnings.warn(
                "The data module has no `train_idx`: the model starts from random weights "
                "instead of the training RNA.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
            return
        rows = np.asarray(splitter.train_idx)
        if len(rows) > self.max_cells:
            rows = np.random.default_rng(settings.seed).choice(rows, self.max_cells, replace=False)
        loader = AnnDataLoader(
            splitter.adata_manager,
            indices=np.sort(rows),
            batch_size=len(rows),
            shuffle=False,
            data_and_attributes=[REGISTRY_KEYS.X_KEY],
        )
        x = next(iter(loader))[REGISTRY_KEYS.X_KEY]
        module.initialize_from_data(torch.as_tensor(x, dtype=torch.float32, device=module.device))
        if trainer.world_size > 1:
            module.load_state_dict(trainer.strategy.broadcast(module.state_dict(), src=0))
