"""Helpers of the tools: key checks before annotating, dense views."""

from __future__ import annotations

import warnings

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


def data_first(data, model, name: str) -> tuple:
    """Return ``(data, model)``, accepting the deprecated ``(model, data)`` order with a warning.

    The tools take the data first, as scanpy's do; ``sct.tl.{name}(model, data, ...)`` keeps
    working for one release and raises a :class:`FutureWarning` naming the new call.
    """
    from sctranslator.model import SCTRANSLATOR

    if isinstance(data, SCTRANSLATOR) and isinstance(model, AnnData | MuData):
        warnings.warn(
            f"sct.tl.{name}(model, data, ...) is deprecated and will be removed in the next "
            f"release; call sct.tl.{name}(data, model, ...) (data first, as in scanpy).",
            FutureWarning,
            stacklevel=3,
        )
        return model, data
    if not isinstance(data, AnnData | MuData):
        raise TypeError(f"Expected an AnnData or MuData first, got {type(data).__name__}.")
    return data, model


def target(data: AnnData | MuData, copy: bool) -> AnnData | MuData:
    """Return the object to annotate: ``data`` itself, or a copy of it when ``copy``."""
    if not copy:
        return data
    if getattr(data, "isbacked", False):
        raise ValueError("copy=True needs data in memory; the data is backed (read from disk).")
    return data.copy()
