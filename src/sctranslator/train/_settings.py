"""The Lightning settings of a training: callbacks, validation, early stopping, logging."""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy

from ._best_weights import BestWeights
from ._initialization import DataInitialization


def trainer_settings(
    trainer_kwargs: dict,
    *,
    has_validation: bool,
    early_stopping: bool,
    early_stopping_patience: int,
    restore_best_weights: bool,
) -> dict:
    """Return ``trainer_kwargs`` completed for a training of the translator.

    :class:`DataInitialization` runs first among the callbacks; with validation cells, they
    are scored every epoch, :class:`BestWeights` keeps the best epoch and early stopping
    follows ``pearson_validation``. Settings the user gave are kept.
    """
    trainer_kwargs = dict(trainer_kwargs)
    strategy = trainer_kwargs.get("strategy")
    if isinstance(strategy, DDPStrategy) or (isinstance(strategy, str) and "ddp" in strategy):
        # Lightning averages logged values across processes in place; on gloo (CPU DDP) that
        # fails on tensors made under inference mode, so validate under no_grad.
        trainer_kwargs.setdefault("inference_mode", False)
    callbacks = [DataInitialization(), *(trainer_kwargs.pop("callbacks", None) or [])]
    if has_validation:
        trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        if restore_best_weights:
            callbacks.append(BestWeights("pearson_validation"))
    trainer_kwargs["callbacks"] = callbacks
    if early_stopping and has_validation:
        trainer_kwargs.setdefault("early_stopping_monitor", "pearson_validation")
        trainer_kwargs.setdefault("early_stopping_mode", "max")
        trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
    # An epoch of a few hundred cells has fewer batches than Lightning's default logging
    # interval (10 steps); epoch-level metrics are unaffected.
    trainer_kwargs.setdefault("log_every_n_steps", 1)
    return trainer_kwargs
