"""Expected quality of each protein's prediction (its held-out Pearson), as a dot plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp
from sctranslator.data import get_modality

from ._utils import finish, new_axes

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR


@plot_dsp.dedent
def protein_reliability(
    data: SCTRANSLATOR | MuData | AnnData | pd.Series,
    *,
    key: str = "prot_pred",
    proteins: Sequence[str] | None = None,
    threshold: float = 0.3,
    n_labels: int = 5,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Dot plot of each protein's reliability, best first: which predictions to trust.

    Reliability is the Pearson correlation of predicted with measured values over the cells
    held out of training (:attr:`~sctranslator.SCTRANSLATOR.protein_reliability`), which
    :func:`~sctranslator.tl.fill_protein` also writes to ``var["reliability"]`` of the
    predicted modality. Proteins without a value (never measured in the held-out cells) are
    left out.

    Parameters
    ----------
    data
        A MuData annotated by :func:`~sctranslator.tl.fill_protein` (the reliabilities of
        its modality ``key``), the predicted modality itself (an AnnData with
        ``var["reliability"]``), a trained :class:`~sctranslator.SCTRANSLATOR`, or
        reliabilities indexed by protein.
    key
        The ``key_added`` of :func:`~sctranslator.tl.fill_protein`, with a MuData.
    proteins
        Proteins to show, each labelled; by default all, the ``n_labels`` best and worst
        labelled.
    threshold
        A dashed line at this reliability; the title counts the proteins at or above it.
    n_labels
        Labelled proteins at each end when ``proteins`` is not given.
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes, unless the figure is shown.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model)
    >>> sct.pl.protein_reliability(mdata)  # var["reliability"] of mdata["prot_pred"]
    >>> sct.pl.protein_reliability(model, threshold=0.3, proteins=["CD4-1", "CD19"])
    """
    values = _reliability(data, key).dropna().sort_values(ascending=False)
    if proteins is not None:
        missing = [p for p in proteins if p not in values.index]
        if missing:
            raise ValueError(f"No reliability for {len(missing)} proteins: {missing[:5]}.")
        values = values.loc[list(proteins)].sort_values(ascending=False)
    if values.empty:
        raise ValueError("No protein has a reliability: train with validation cells.")
    ranks = np.arange(len(values))
    ax = new_axes(ax, (max(4.0, min(0.25 * len(values), 10.0)), 3.5))
    above = values.to_numpy() >= threshold
    ax.scatter(ranks, values, s=12, c=np.where(above, "tab:blue", "tab:gray"), linewidths=0)
    ax.axhline(threshold, color="black", linewidth=0.5, linestyle="--")
    if proteins is not None:
        for i in ranks:
            ax.annotate(values.index[i], (i, values.iloc[i]), fontsize=7, rotation=45)
    else:  # the best, stacked downwards to their right; the worst, stacked upwards to the left
        for k, i in enumerate(ranks[:n_labels]):
            ax.annotate(values.index[i], (i, values.iloc[i]), (8, -9 * k - 4), "data",
                        "offset points", fontsize=7)  # fmt: skip
        for k, i in enumerate(ranks[::-1][:n_labels]):
            ax.annotate(values.index[i], (i, values.iloc[i]), (-8, 9 * k + 4), "data",
                        "offset points", fontsize=7, ha="right")  # fmt: skip
    ax.set_xlabel("protein (rank)")
    ax.set_ylabel("reliability (held-out Pearson)")
    ax.set_title(f"{int(above.sum())} of {len(values)} proteins >= {threshold}", fontsize=9)
    return finish(ax, show, save)


def _reliability(data, key: str) -> pd.Series:
    """Reliability per protein of a model, a predicted modality or a MuData holding one."""
    if isinstance(data, pd.Series):
        return data
    if isinstance(data, MuData):
        data = get_modality(
            data, mod_key=key, what=f"the predictions (run sct.tl.fill_protein(key_added={key!r}))"
        )
    if isinstance(data, AnnData):
        if "reliability" not in data.var:
            raise KeyError(
                "var['reliability'] not found; sct.tl.fill_protein writes it with the predictions."
            )
        return data.var["reliability"]
    if not hasattr(data, "protein_reliability"):
        raise TypeError(
            "Expected a MuData annotated by sct.tl.fill_protein, its predicted modality, a "
            f"trained model or a Series of reliabilities, got {type(data).__name__}."
        )
    return data.protein_reliability
