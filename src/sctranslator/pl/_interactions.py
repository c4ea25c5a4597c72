"""Heatmap of the gene x protein importances of :func:`~sctranslator.tl.interactions`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp

from ._utils import finish, new_axes, table_of


@plot_dsp.dedent
def interaction_heatmap(
    data: AnnData | MuData | pd.DataFrame,
    *,
    key: str = "sct_interactions",
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
    data
        The AnnData or MuData annotated by :func:`~sctranslator.tl.interactions`, or the
        table it returned (genes down, proteins across).
    key
        The ``key_added`` of :func:`~sctranslator.tl.interactions`: the table is
        ``data.uns[key]``.
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
    >>> sct.tl.interactions(mdata, model, proteins=["CD8", "CD20", "CD16"])
    >>> sct.pl.interaction_heatmap(mdata, n_top=5)  # reads uns["sct_interactions"]
    """
    table = table_of(data, key, "interactions")
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
