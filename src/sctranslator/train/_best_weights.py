"""Keep the weights of the best validation epoch in memory and restore them at the end."""

from __future__ import annotations

import lightning.pytorch as pl


class BestWeights(pl.Callback):
    """Restore the module's weights from the epoch with the best ``monitor`` value.

    Unlike :class:`~scvi.train.SaveCheckpoint`, nothing is written to disk.

    Parameters
    ----------
    monitor
        Logged metric to follow.
    mode
        ``"max"`` if larger is better, ``"min"`` otherwise.
    """

    def __init__(self, monitor: str = "pearson_validation", mode: str = "max"):
        super().__init__()
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best_score: float | None = None
        self.best_state: dict | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Remember the weights when the monitored metric improves."""
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor]) * self.sign
        if self.best_score is None or score > self.best_score:
            self.best_score = score
            state = pl_module.module.state_dict()
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the remembered weights back into the module."""
        if self.best_state is not None:
            pl_module.module.load_state_dict(self.best_state)
