"""Training plan: scvi-tools' plan plus validation per-protein Pearson."""

from __future__ import annotations

from typing import Literal

from scvi import REGISTRY_KEYS
from scvi.train import TrainingPlan

from sctranslator.module import TranslatorModule

from ._pearson import MaskedPearson


class TranslatorTrainingPlan(TrainingPlan):
    """:class:`~scvi.train.TrainingPlan` for :class:`~sctranslator.module.TranslatorModule`.

    Logs, besides scvi-tools' losses, ``mse_train``/``mse_validation`` (masked MSE on the
    standardised scale) and ``pearson_validation`` (mean per-protein Pearson across the
    validation cells) into ``model.history``.

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
        **kwargs,
    ):
        super().__init__(
            module, optimizer=optimizer, lr=lr, weight_decay=weight_decay, eps=eps, **kwargs
        )
        self.pearson_validation = MaskedPearson(len(module.protein_ids))

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
