"""Training plan: scvi-tools' plan plus validation per-protein Pearson."""

from __future__ import annotations

from typing import Literal

import torch
from scvi import REGISTRY_KEYS
from scvi.train import TrainingPlan

from sctranslator.module import TranslatorModule

from ._pearson import MaskedPearson
from ._teacher import NeighborTeacher


class TranslatorTrainingPlan(TrainingPlan):
    """:class:`~scvi.train.TrainingPlan` for :class:`~sctranslator.module.TranslatorModule`.

    Logs, besides scvi-tools' losses, ``mse_train``/``mse_validation`` (masked MSE on the
    standardised scale) and ``pearson_validation`` (mean per-protein Pearson across the
    validation cells) into ``model.history``. With ``target_smoothing``, training targets are
    smoothed by :attr:`teacher` (fitted at the start of training by
    :class:`~sctranslator.train.DataInitialization`) before the module's loss.

    Parameters
    ----------
    module
        The module to train.
    optimizer
        ``"AdamW"`` (default), ``"Adam"`` or ``"Custom"``.
    lr
        Learning rate.
    weight_decay
        Weight decay.
    eps
        Optimiser epsilon.
    target_smoothing
        Weight of the neighbours' mean in each training target, in ``[0, 1]``
        (:class:`~sctranslator.train.NeighborTeacher`); 0 trains on each cell's own proteins.
    smoothing_neighbors
        Number of nearest training cells averaged for ``target_smoothing``.
    **kwargs
        Passed to :class:`~scvi.train.TrainingPlan`.
    """

    def __init__(
        self,
        module: TranslatorModule,
        *,
        optimizer: Literal["Adam", "AdamW", "Custom"] = "AdamW",
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        eps: float = 1e-8,
        target_smoothing: float = 0.0,
        smoothing_neighbors: int = 15,
        **kwargs,
    ):
        super().__init__(
            module, optimizer=optimizer, lr=lr, weight_decay=weight_decay, eps=eps, **kwargs
        )
        self.pearson_validation = MaskedPearson(len(module.protein_ids))
        self.teacher = NeighborTeacher(target_smoothing, smoothing_neighbors)

    def training_step(self, batch, batch_idx):
        """scvi-tools' training step, on targets smoothed by :attr:`teacher`."""
        if self.teacher.smoothing == 0 or not self.teacher.fitted:
            return super().training_step(batch, batch_idx)
        module = self.module
        with torch.no_grad():
            target = module.standardized_target(
                batch[REGISTRY_KEYS.PROTEIN_EXP_KEY], batch[REGISTRY_KEYS.BATCH_KEY]
            )
            rna = torch.nan_to_num(module.normalize_rna(batch[REGISTRY_KEYS.X_KEY]))
        self.loss_kwargs["target"] = self.teacher.smooth(rna, target)
        try:
            return super().training_step(batch, batch_idx)
        finally:
            del self.loss_kwargs["target"]

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """Log scvi-tools' metrics, then the module's extra metrics (``mse``) as plain tensors.

        scvi-tools logs extra metrics under :func:`torch.inference_mode`; averaging them across
        DDP processes on the gloo backend (CPU) then fails, as Lightning divides them in place.
        """
        extra = loss_output.extra_metrics
        loss_output.extra_metrics = {}
        try:
            super().compute_and_log_metrics(loss_output, metrics, mode)
        finally:
            loss_output.extra_metrics = extra
        for key, value in extra.items():
            self.log(
                f"{key}_{mode}",
                value.detach(),
                on_step=self.on_step,
                on_epoch=self.on_epoch,
                batch_size=loss_output.n_obs_minibatch,
                sync_dist=self.use_sync_dist,
            )

    def validation_step(self, batch, batch_idx):
        """Log the validation losses and accumulate the per-protein Pearson correlation."""
        _, generative_outputs, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self.log("validation_loss", loss_output.loss, on_epoch=True, sync_dist=self.use_sync_dist)
        self.compute_and_log_metrics(loss_output, self.val_metrics, "validation")
        target = self.module.standardized_target(
            batch[REGISTRY_KEYS.PROTEIN_EXP_KEY], batch[REGISTRY_KEYS.BATCH_KEY]
        )
        self.pearson_validation.update(generative_outputs["protein"], target)
        self.log("pearson_validation", self.pearson_validation, on_step=False, on_epoch=True)
