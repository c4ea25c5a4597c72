"""Per-protein correlation of predicted with measured abundances, as a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp
from sctranslator.metrics import per_protein_pearson, per_protein_spearman

from ._utils import finish, new_axes, predicted_and_measured

_CORRELATIONS = {"pearson": per_protein_pearson, "spearman": per_protein_spearman}


@plot_dsp.dedent
def protein_correlation(
    data: MuData | pd.DataFrame,
    measured: str | pd.DataFrame = "prot",
    *,
    key: str = "prot_pred",
    layer: str | None = None,
    proteins: Sequence[str] | None = None,
    n_top: int = 30,
    method: str = "pearson",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Bar chart of the per-protein correlation (across cells), best first.

    Predicted proteins are read from the modality ``key`` that
    :func:`~sctranslator.tl.fill_protein` wrote, measured ones from the modality
    ``measured``; cells are matched by name, and cells without measured proteins are left
    out.

    Parameters
    ----------
    %(param_predicted_data)s
    %(param_measured)s
    %(param_key_predicted)s
    %(param_layer_measured)s
    proteins
        Proteins to show; by default the ``n_top`` best correlated.
    n_top
        Bars shown when ``proteins`` is not given.
    method
        ``"pearson"`` or ``"spearman"`` (:func:`~sctranslator.metrics.per_protein_pearson`,
        :func:`~sctranslator.metrics.per_protein_spearman`).
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes, unless the figure is shown. The title gives the mean over all proteins.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model)  # the modality "prot_pred"
    >>> clr = sct.pp.normalize_protein(mdata["prot"], layer="counts")
    >>> mdata["prot"].layers["clr"] = clr.to_numpy()  # the model's scale
    >>> sct.pl.protein_correlation(mdata, "prot", layer="clr", n_top=20)
    >>> sct.pl.protein_correlation(predicted, measured)  # or two tables
    """
    if method not in _CORRELATIONS:
        raise ValueError(f"method must be one of {tuple(_CORRELATIONS)}, got {method!r}.")
    predicted, measured, _ = predicted_and_measured(data, measured, key, layer)
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
