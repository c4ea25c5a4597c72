"""Confusion matrix of the labels predicted by :func:`~sctranslator.tl.classify`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp

from ._utils import finish, new_axes


@plot_dsp.dedent
def confusion_matrix(
    data: AnnData | MuData,
    *,
    key: str = "sct_classify",
    truth: str | None = None,
    normalize: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Heatmap of true against predicted classes from :func:`~sctranslator.tl.classify`.

    Without ``truth``: the cross-validated predictions of the labelled cells
    (``uns[key]["confusion"]``). With ``truth``: the cells whose label was missing when
    :func:`~sctranslator.tl.classify` ran, their predicted class (``obs[key]``) against the
    class in ``obs[truth]`` (e.g. held-out annotations).

    Parameters
    ----------
    data
        The AnnData or MuData annotated by :func:`~sctranslator.tl.classify`.
    key
        The ``key_added`` of :func:`~sctranslator.tl.classify`.
    truth
        ``obs`` column with the true class of the predicted cells; ``None`` for the
        cross-validated confusion of the labelled cells.
    normalize
        Show each row as fractions of its true class (recall on the diagonal); otherwise
        counts.
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes (true classes down, predicted across, each cell annotated), unless the figure
    is shown.

    Examples
    --------
    >>> mdata.obs["known"] = mdata.obs["celltype"].where(mdata.obs["batch"] == "p3_0")
    >>> sct.tl.classify(mdata, label_key="known")
    >>> sct.pl.confusion_matrix(mdata)  # cross-validated, labelled cells
    >>> sct.pl.confusion_matrix(mdata, truth="celltype")  # the cells that were predicted
    """
    if key not in data.uns or "confusion" not in data.uns[key]:
        raise KeyError(f"uns[{key!r}] lacks the results of sct.tl.classify; run it first.")
    if truth is None:
        counts = data.uns[key]["confusion"]
        title = "cross-validated (labelled cells)"
    else:
        if truth not in data.obs:
            raise KeyError(
                f"truth {truth!r} not found in obs; available: {list(data.obs.columns)}."
            )
        predicted = data.obs[data.uns[key]["params"]["label_key"]].isna().to_numpy()
        if not predicted.any():
            raise ValueError("No cell was predicted (every cell had a label).")
        observed = data.obs.loc[predicted, truth].astype(str)
        counts = pd.crosstab(
            observed.to_numpy(),
            data.obs.loc[predicted, key].astype(str).to_numpy(),
            rownames=["true"],
            colnames=["predicted"],
        )
        classes = list(data.uns[key]["classes"])
        rows = classes + sorted(set(counts.index) - set(classes))
        counts = counts.reindex(index=[r for r in rows if r in counts.index], columns=classes)
        counts = counts.fillna(0).astype(int)
        title = f"predicted cells vs obs[{truth!r}]"
    values = counts.to_numpy(dtype=float)
    if normalize:
        totals = values.sum(1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    ax = new_axes(ax, (max(3.5, 0.5 * counts.shape[1] + 2), max(3.0, 0.5 * counts.shape[0] + 1.5)))
    image = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(np.arange(counts.shape[1]), counts.columns, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(counts.shape[0]), counts.index, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    middle = np.nanmax(values) / 2 if values.size else 0
    for (i, j), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        colour = "white" if value > middle else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
    ax.figure.colorbar(image, ax=ax, label="fraction of true class" if normalize else "cells")
    return finish(ax, show, save)
