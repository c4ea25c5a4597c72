"""Shared by the plots: reading what the tools wrote, axes creation, saving and showing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData

from sctranslator._io import write_atomic
from sctranslator.data import get_matrix, get_modality, iter_row_chunks


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new figure of ``figsize``."""
    if ax is not None:
        return ax
    return plt.subplots(figsize=figsize)[1]


def finish(ax: Axes | Figure, show: bool | None, save: str | None) -> Axes | Figure | None:
    """Save the figure of ``ax`` atomically (never over an existing file), show it, return ``ax``.

    ``ax`` is an axes or a whole figure. As in scanpy, it is returned unless the figure is
    shown; ``show=None`` shows only in interactive sessions when nothing is saved.
    """
    figure = ax if isinstance(ax, Figure) else ax.figure
    if save is not None:
        if Path(save).exists():
            raise FileExistsError(f"{save} already exists; save to another path or remove it.")
        write_atomic(
            save,
            lambda path: figure.savefig(
                path, dpi=120, bbox_inches="tight", format=str(save).rsplit(".", 1)[-1]
            ),
        )
    if show or (show is None and save is None and plt.isinteractive()):
        plt.show()
        return None
    return ax


def table_of(data: AnnData | MuData | pd.DataFrame, key: str, tool: str) -> pd.DataFrame:
    """Return the table ``sct.tl.{tool}`` wrote into ``data.uns[key]``, or ``data`` if a table.

    ``uns[key]`` is the table itself or a dict holding it under ``"mean_shift"``
    (:func:`~sctranslator.tl.perturb`).
    """
    if isinstance(data, pd.DataFrame):
        return data
    if not isinstance(data, AnnData | MuData):
        raise TypeError(
            f"Expected an AnnData or MuData annotated by sct.tl.{tool} (or its table), got "
            f"{type(data).__name__}."
        )
    if key not in data.uns:
        raise KeyError(
            f"uns[{key!r}] not found; run sct.tl.{tool} first (its `key_added`), or pass "
            f"the key it wrote. Available: {list(data.uns)}."
        )
    table = data.uns[key]
    if isinstance(table, Mapping) and "mean_shift" in table:
        table = table["mean_shift"]
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"uns[{key!r}] holds no table of sct.tl.{tool}.")
    return table


def predicted_and_measured(
    data: MuData | pd.DataFrame, measured: str | pd.DataFrame, key: str, layer: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, AnnData | None]:
    """Return predicted and measured values as aligned tables, and the predicted modality.

    The predictions are ``data[key]`` (written by :func:`~sctranslator.tl.fill_protein`) or
    the table ``data``; the measured values the modality ``measured`` (its ``layer``) or the
    table ``measured``, aligned to the predictions' cells (NaN where a cell was not
    measured) and proteins (every predicted protein must be measured).
    """
    modality = None
    if isinstance(data, pd.DataFrame):
        predicted = data
        if not isinstance(measured, pd.DataFrame):
            raise TypeError(
                "With a table of predictions, pass the measured values as a table too (cells "
                "by proteins); a modality name needs a MuData."
            )
    elif isinstance(data, MuData):
        modality = get_modality(
            data, mod_key=key, what=f"the predictions (run sct.tl.fill_protein(key_added={key!r}))"
        )
        predicted = frame(modality, None, f"modality {key!r}")
        if not isinstance(measured, pd.DataFrame):
            measured = frame(
                get_modality(data, mod_key=measured, what="the measured proteins"),
                layer,
                f"modality {measured!r}",
            )
    else:
        raise TypeError(
            "Expected a MuData annotated by sct.tl.fill_protein (or a table of predictions), "
            f"got {type(data).__name__}."
        )
    missing = predicted.columns.difference(measured.columns)
    if len(missing):
        raise ValueError(
            f"{len(missing)} predicted proteins are not measured: {list(missing[:5])}."
        )
    measured = measured.reindex(index=predicted.index)[predicted.columns]
    if measured.isna().all().all():
        raise ValueError("No predicted cell has a measured value (no shared obs_names).")
    return predicted, measured, modality


def frame(adata: AnnData, layer: str | None, what: str) -> pd.DataFrame:
    """Return ``X`` or a layer of ``adata`` as a dense float DataFrame of cells by features."""
    matrix = get_matrix(adata, layer=layer, what=what)
    values = np.concatenate([block for _, block in iter_row_chunks(matrix)]).astype(np.float64)
    return pd.DataFrame(values, index=adata.obs_names.astype(str), columns=adata.var_names)
