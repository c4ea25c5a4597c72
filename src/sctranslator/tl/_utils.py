"""Helpers of the tools: key checks before annotating, dense views."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names


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


def check_data(data, name: str) -> None:
    """Raise a :class:`TypeError` unless ``data`` is an AnnData or MuData (the data come first)."""
    if not isinstance(data, AnnData | MuData):
        raise TypeError(
            f"sct.tl.{name} expects an AnnData or MuData first (the data, then the model), "
            f"got {type(data).__name__}."
        )


def target(data: AnnData | MuData, copy: bool) -> AnnData | MuData:
    """Return the object to annotate: ``data`` itself, or a copy of it when ``copy``."""
    if not copy:
        return data
    if getattr(data, "isbacked", False):
        raise ValueError("copy=True needs data in memory; the data is backed (read from disk).")
    if isinstance(data, MuData):  # proteins may be named like their genes (CD9)
        with no_pull(), shared_var_names(data.mod.values()):
            return data.copy()
    return data.copy()
