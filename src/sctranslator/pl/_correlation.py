"""Per-protein correlation of predicted with measured abundances, as a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from sctranslator._docstrings import plot_dsp
from sctranslator.metrics import per_protein_pearson, per_protein_spearman

from ._utils import finish, new_axes

_CORRELATIONS = {"pearson": per_protein_pearson, "spearman": per_protein_spearman}


@plot_dsp.dedent
def protein_correlation(
    predicted: pd.DataFrame,
    measured: pd.DataFrame,
    proteins: Sequence[str] | None = None,
    n_top: int = 30,
    method: str = "pearson",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Bar chart of the per-protein correlation (across cells), best first.

    Parameters
    ----------
    predicted, measured
        Cells by proteins on the same scale; ``measured`` is aligned to ``predicted``. NaN in
        ``measured`` marks unmeasured values.
    proteins
        Proteins to show; by default the ``n_top`` best correlated.
    n_top
        Bars shown when ``proteins`` is not given.
    method
        ``"pearson"`` or ``"spearman"``.
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes, unless the figure is shown. The title gives the mean over all proteins.

    Examples
    --------
    >>> sct.pl.protein_correlation(pred, truth, n_top=20, save="correlation.png")
    """
    if method not in _CORRELATIONS:
        raise ValueError(f"method must be one of {tuple(_CORRELATIONS)}, got {method!r}.")
    missing = predicted.columns.difference(measured.columns)
    if len(missing):
        raise ValueError(
            f"{len(missing)} predicted proteins are not measured: {list(missing[:5])}."
        )
    measured = measured.loc[predicted.index, predicted.columns]
    r = pd.Series(_CORRELATIONS[method](predicted, measured), index=predicted.columns).dropna()
    shown = (
        r.sort_values(ascending=False).iloc[:n_top] if proteins is None else r.loc[list(proteins)]
    )
    ax = new_axes(ax, (max(4.0, 0.25 * len(shown) + 1), 3.5))
    colors = np.where(shown.to_numpy() >= 0, "tab:blue", "tab:red")
    ax.bar(np.arange(len(shown)), shown.to_numpy(), color=colors)
    ax.set_xticks(np.arange(len(shown)), shown.index, rotation=90, fontsize=7)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel(f"{method.capitalize()} r (across cells)")
    ax.set_title(f"mean over {len(r)} proteins: {r.mean():.2f}", fontsize=9)
    return finish(ax, show, save)
