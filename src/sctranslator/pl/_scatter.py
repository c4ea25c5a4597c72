"""Predicted versus measured protein abundance."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sctranslator._docstrings import plot_dsp
from sctranslator.metrics import per_protein_pearson

from ._utils import finish


@plot_dsp.dedent
def predicted_vs_measured(
    predicted: pd.DataFrame,
    measured: pd.DataFrame,
    proteins: Sequence[str] | None = None,
    ncols: int = 4,
    lower: pd.DataFrame | None = None,
    upper: pd.DataFrame | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Figure | None:
    """Scatter plots of predicted against measured values, one panel per protein.

    With prediction intervals (``lower`` and ``upper``, from
    :meth:`~sctranslator.SCTRANSLATOR.predict_protein_interval`), each cell also gets a
    vertical bar spanning its interval, cells measured outside it are drawn in red, and each
    title gives the fraction covered.

    Parameters
    ----------
    predicted, measured
        Cells by proteins on the same scale, with matching index and columns.
    proteins
        Proteins to show; by default the 8 best predicted.
    ncols
        Panels per row.
    lower, upper
        Prediction intervals, cells by proteins like ``predicted``; both or neither.
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The figure, unless ``show`` is true.

    Examples
    --------
    >>> sct.pl.predicted_vs_measured(pred, truth, proteins=["CD4-1", "CD8"])
    >>> lower, upper = model.predict_protein_interval(query["rna"], level=0.9)
    >>> sct.pl.predicted_vs_measured(pred, truth, ["CD19"], lower=lower, upper=upper)
    """
    if (lower is None) != (upper is None):
        raise ValueError("Pass both `lower` and `upper`, or neither.")
    measured = measured.loc[predicted.index, predicted.columns]
    r = pd.Series(per_protein_pearson(predicted, measured), index=predicted.columns)
    proteins = list(r.sort_values(ascending=False).index[:8] if proteins is None else proteins)
    nrows = int(np.ceil(len(proteins) / ncols))
    width = min(ncols, len(proteins))
    fig, axes = plt.subplots(nrows, width, figsize=(3 * width, 3 * nrows), squeeze=False)
    for ax, protein in zip(axes.flat, proteins, strict=False):
        title = f"{protein}  r = {r[protein]:.2f}"
        if lower is None:
            _scatter(ax, predicted[protein], measured[protein], title)
        else:
            bounds = (lower.loc[predicted.index, protein], upper.loc[predicted.index, protein])
            _intervals(ax, predicted[protein], measured[protein], *bounds, title)
    for ax in list(axes.flat)[len(proteins) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return finish(fig, show, save)


def _scatter(ax: Axes, x: pd.Series, y: pd.Series, title: str) -> None:
    ax.scatter(x, y, s=4, alpha=0.5, linewidths=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("measured")
    ax.set_title(title, fontsize=9)


def _intervals(
    ax: Axes, x: pd.Series, y: pd.Series, lower: pd.Series, upper: pd.Series, title: str
) -> None:
    """Each cell's interval as a vertical bar at its prediction; cells outside it in red."""
    covered = (y >= lower) & (y <= upper)
    ax.vlines(x, lower, upper, color="tab:gray", alpha=0.3, linewidth=0.8)
    ax.scatter(x, y, s=4, c=np.where(covered, "tab:blue", "tab:red"), linewidths=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("measured")
    ax.set_title(f"{title}, {covered[y.notna()].mean():.0%} in interval", fontsize=9)
