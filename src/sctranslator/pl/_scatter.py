"""Predicted versus measured protein abundance."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData

from sctranslator._docstrings import plot_dsp
from sctranslator.metrics import per_protein_pearson

from ._utils import finish, frame, predicted_and_measured


@plot_dsp.dedent
def predicted_vs_measured(
    data: MuData | pd.DataFrame,
    measured: str | pd.DataFrame = "prot",
    *,
    key: str = "prot_pred",
    layer: str | None = None,
    proteins: Sequence[str] | None = None,
    ncols: int = 4,
    lower: pd.DataFrame | None = None,
    upper: pd.DataFrame | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Figure | None:
    """Scatter plots of predicted against measured values, one panel per protein.

    Predicted proteins are read from the modality ``key`` that
    :func:`~sctranslator.tl.fill_protein` wrote, measured ones from the modality
    ``measured``; cells are matched by name, and cells without measured proteins are left
    out. With prediction intervals (the layers ``lower`` and ``upper`` that
    ``fill_protein(interval=...)`` writes, or the tables ``lower`` and ``upper`` of
    :meth:`~sctranslator.SCTRANSLATOR.predict_protein_interval`), each cell also gets a
    vertical bar spanning its interval, cells measured outside it are drawn in red, and each
    title gives the fraction covered.

    Parameters
    ----------
    %(param_predicted_data)s
    %(param_measured)s
    %(param_key_predicted)s
    %(param_layer_measured)s
    proteins
        Proteins to show; by default the 8 best predicted.
    ncols
        Panels per row.
    lower, upper
        Prediction intervals, cells by proteins like the predictions; both or neither. By
        default the layers ``lower`` and ``upper`` of the modality ``key`` where it has them.
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The figure, unless ``show`` is true.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model, interval=0.9)  # "prot_pred", with intervals
    >>> clr = sct.pp.normalize_protein(mdata["prot"], layer="counts")
    >>> mdata["prot"].layers["clr"] = clr.to_numpy()  # the model's scale
    >>> sct.pl.predicted_vs_measured(mdata, "prot", layer="clr", proteins=["CD4-1", "CD8"])
    >>> sct.pl.predicted_vs_measured(predicted, measured, proteins=["CD19"])  # two tables
    """
    if (lower is None) != (upper is None):
        raise ValueError("Pass both `lower` and `upper`, or neither.")
    predicted, measured, modality = predicted_and_measured(data, measured, key, layer)
    if lower is None and modality is not None and {"lower", "upper"} <= set(modality.layers):
        lower, upper = (frame(modality, name, f"modality {key!r}") for name in ("lower", "upper"))
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
