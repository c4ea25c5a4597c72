"""Training plan: scvi-tools' plan, with the training targets and validation Pearson."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from scvi import REGISTRY_KEYS
from scvi.train import TrainingPlan

from sctranslator.components import PanelStatistics
from sctranslator.module import TranslatorModule

from ._pearson import MaskedPearson
from ._teacher import NeighborTeacher


class TranslatorTrainingPlan(TrainingPlan):
    """:class:`~scvi.train.TrainingPlan` for :class:`~sctranslator.module.TranslatorModule`.

    The plan owns what training needs besides the network: the training targets (the
    registered proteins standardised by ``panel``, NaN where unmeasured), smoothed by
    :attr:`teacher` and projected on the top ``protein_rank`` principal axes of the training
    proteins (reduced-rank regression, which removes noise that no cell state explains).
    :class:`~sctranslator.train.DataInitialization` fits the panel, the axes and the teacher
    at the start of each training. Logs, besides scvi-tools' losses, ``mse_train`` /
    ``mse_validation`` (masked MSE on the standardised scale) and ``pearson_validation``
    (mean per-protein Pearson across the validation cells, on the measured proteins) into
    ``model.history``.

    Parameters
    ----------
    module
        The module to train.
    panel
        The panel statistics of the registered proteins (fitted at the start of training).
    protein_names
        Names of the registered proteins, for messages.
    optimizer
        ``"AdamW"`` (default), ``"Adam"`` or ``"Custom"``.
    lr
        Learning rate.
    weight_decay
        Weight decay.
    eps
        Optimiser epsilon.
    protein_rank
        Training targets are projected on this many principal axes of the standardised
        training proteins; ``None`` (or at least the number of proteins) trains on them as
        measured. Validation always compares with the measured proteins.
    target_smoothing
        Weight, in ``[0, 1]``, of the neighbours' mean in each training target
        (:class:`~sctranslator.train.NeighborTeacher`); 0 trains on each cell's own proteins.
    smoothing_neighbors
        Number of nearest training cells averaged for ``target_smoothing``.
    masked_genes
        Self-supervised objective on RNA: at each training step this many registered genes
        are hidden from every cell's context and predicted from the rest of the cell by the
        read-out that predicts proteins (their normalised values; see
        :meth:`~sctranslator.module.TranslatorModule.loss`). It needs no protein, so cells
        without proteins (an RNA-only corpus in a mosaic or a cell store) teach the encoder.
        0 (default) turns it off.
    masked_weight
        Weight of the masked genes' error in the loss.
    **kwargs
        Passed to :class:`~scvi.train.TrainingPlan`.

    Examples
    --------
    >>> model.train(plan_kwargs={"lr": 3e-4, "target_smoothing": 0.0})
    """

    def __init__(
        self,
        module: TranslatorModule,
        *,
        panel: PanelStatistics,
        protein_names: Sequence[str] = (),
        optimizer: Literal["Adam", "AdamW", "Custom"] = "AdamW",
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        eps: float = 1e-8,
        protein_rank: int | None = 32,
        target_smoothing: float = 0.5,
        smoothing_neighbors: int = 15,
        masked_genes: int = 0,
        masked_weight: float = 1.0,
        **kwargs,
    ):
        super().__init__(
            module, optimizer=optimizer, lr=lr, weight_decay=weight_decay, eps=eps, **kwargs
        )
        n_proteins = len(module.protein_ids)
        self.panel = panel
        self.protein_names = list(protein_names)
        self.protein_rank = n_proteins if protein_rank is None else protein_rank
        self.protein_axes: torch.Tensor | None = None  # set by DataInitialization
        self.teacher = NeighborTeacher(target_smoothing, smoothing_neighbors)
        if masked_genes < 0:
            raise ValueError(f"masked_genes must be 0 or more, not {masked_genes}.")
        self.masked_genes = masked_genes
        self.masked_weight = masked_weight
        self.pearson_validation = MaskedPearson(n_proteins)

    @torch.no_grad()
    def training_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Standardised proteins of a training minibatch, smoothed and projected."""
        target = self.panel.standardize(
            batch[REGISTRY_KEYS.PROTEIN_EXP_KEY], batch[REGISTRY_KEYS.BATCH_KEY]
        )
        if self.teacher.smoothing > 0 and self.teacher.fitted:
            rna = torch.nan_to_num(self.module.normalize_rna(batch[REGISTRY_KEYS.X_KEY]))
            target = self.teacher.smooth(rna, target)
        if self.protein_axes is not None:
            axes = self.protein_axes
            measured = ~torch.isnan(target)
            target = torch.where(measured, torch.nan_to_num(target) @ axes @ axes.T, torch.nan)
        return target

    @torch.no_grad()
    def mask_genes(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Hide ``masked_genes`` random registered genes from every cell of a minibatch.

        Returns the minibatch with those genes unmeasured (NaN: not tokens, not counted in
        the normalisation) and their token ids and normalised values, the targets.
        """
        module, x = self.module, batch[REGISTRY_KEYS.X_KEY]
        columns = torch.nonzero(module.gene_ids >= 0).view(-1)
        known, token_ids = module.read_registered_genes(x)
        chosen = torch.randperm(len(columns), device=x.device)[: self.masked_genes]
        values = module.normalize_rna(known)[:, chosen]
        hidden = x.clone()
        hidden[:, columns[chosen]] = torch.nan
        return {**batch, REGISTRY_KEYS.X_KEY: hidden}, (token_ids[chosen], values)

    def training_step(self, batch, batch_idx):
        """scvi-tools' training step, on :meth:`training_target` (and masked genes)."""
        self.loss_kwargs["target"] = self.training_target(batch)
        if self.masked_genes > 0:
            batch, self.loss_kwargs["masked_genes"] = self.mask_genes(batch)
            self.loss_kwargs["masked_weight"] = self.masked_weight
        try:
            return super().training_step(batch, batch_idx)
        finally:
            for key in ("target", "masked_genes", "masked_weight"):
                self.loss_kwargs.pop(key, None)

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
        target = self.panel.standardize(
            batch[REGISTRY_KEYS.PROTEIN_EXP_KEY], batch[REGISTRY_KEYS.BATCH_KEY]
        )
        _, generative_outputs, loss_output = self.forward(
            batch, loss_kwargs={**self.loss_kwargs, "target": target}
        )
        self.log("validation_loss", loss_output.loss, on_epoch=True, sync_dist=self.use_sync_dist)
        self.compute_and_log_metrics(loss_output, self.val_metrics, "validation")
        self.pearson_validation.update(generative_outputs["protein"], target)
        self.log("pearson_validation", self.pearson_validation, on_step=False, on_epoch=True)
