"""Heatmap of a gene x protein importance table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from sctranslator._docstrings import plot_dsp

from ._utils import finish, new_axes


@plot_dsp.dedent
def interaction_heatmap(
    table: pd.DataFrame,
    proteins: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    n_top: int = 5,
    cmap: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Heatmap of gene x protein importances from :func:`~sctranslator.tl.interactions`.

    Parameters
    ----------
    table
        Genes (rows) by proteins (columns).
    proteins
        Columns to show; all by default.
    genes
        Rows to show; by default the union of each shown protein's ``n_top`` genes of largest
        absolute importance.
    n_top
        Genes per protein when ``genes`` is not given.
    cmap
        Colour map; ``"viridis"`` for non-negative tables (attention), ``"RdBu_r"`` centred on
        0 for signed ones (gradient x input) by default.
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes (genes down, proteins across), unless the figure is shown.

    Examples
    --------
    >>> table = sct.tl.interactions(mdata, model, proteins=["CD8", "CD20", "CD16"])
    >>> sct.pl.interaction_heatmap(table, n_top=5)
    """
    proteins = list(table.columns if proteins is None else proteins)
    missing = [p for p in proteins if p not in table.columns]
    if missing:
        raise ValueError(f"{len(missing)} proteins are not in the table: {missing[:5]}.")
    if genes is None:
        genes = list(
            dict.fromkeys(g for p in proteins for g in table[p].abs().nlargest(n_top).index)
        )
    shown = table.loc[list(genes), proteins]
    values = shown.to_numpy(dtype=float)
    signed = (values < 0).any()
    limit = np.abs(values).max() or 1.0
    ax = new_axes(ax, (max(3.0, 0.4 * len(proteins) + 2), max(3.0, 0.25 * len(genes) + 1)))
    image = ax.imshow(
        values,
        aspect="auto",
        cmap=cmap or ("RdBu_r" if signed else "viridis"),
        vmin=-limit if signed else 0.0,
        vmax=limit,
    )
    ax.set_xticks(np.arange(len(proteins)), proteins, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(len(genes)), shown.index, fontsize=8)
    ax.set_xlabel("protein")
    ax.set_ylabel("gene")
    ax.figure.colorbar(image, ax=ax, label="importance")
    return finish(ax, show, save)
