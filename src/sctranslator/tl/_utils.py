"""Helpers of the tools: key checks before annotating, dense views."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from mudata import MuData


def check_free(data: AnnData | MuData, keys: dict[str, list[str]], overwrite: bool) -> None:
    """Raise when one of ``keys`` (attribute -> names) is taken and ``overwrite`` is false."""
    if overwrite:
        return
    for attr, names in keys.items():
        taken = [name for name in names if name in getattr(data, attr)]
        if taken:
            raise ValueError(
                f"{attr}[{taken[0]!r}] already exists; pass overwrite=True to replace it or "
                "choose another key."
            )


def dense(values) -> np.ndarray:
    """Return a dense array of a dense or sparse matrix."""
    return values.toarray() if hasattr(values, "toarray") else np.asarray(values)


def check_model(model) -> None:
    """Raise unless ``model`` is a trained :class:`~sctranslator.SCTRANSLATOR`."""
    from sctranslator.model import SCTRANSLATOR

    if not isinstance(model, SCTRANSLATOR):
        raise TypeError(
            f"Expected a trained sctranslator.SCTRANSLATOR model, got {type(model).__name__}."
        )
    if not model.is_trained:
        raise ValueError("The model is not trained; call model.train() or load a trained model.")
