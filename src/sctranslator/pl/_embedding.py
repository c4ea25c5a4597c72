"""Embedding plots of MuData or AnnData, drawn by scanpy."""

from __future__ import annotations

from collections.abc import Sequence

import scanpy as sc
from anndata import AnnData
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp

from ._utils import finish


@plot_dsp.dedent
def embedding(
    data: AnnData | MuData,
    *,
    basis: str = "X_sct_joint",
    color: str | Sequence[str] | None = None,
    components: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
    **kwargs,
) -> Axes | None:
    """Scatter plot of an ``obsm`` embedding coloured by ``obs`` columns, drawn by scanpy.

    Works on the top level of a MuData (e.g. ``X_sct_joint`` of :func:`~sctranslator.tl.cluster`
    or ``X_sct_latent`` of :func:`~sctranslator.tl.embed`): scanpy draws a light
    AnnData holding the ``obs`` columns and that one embedding; the user's object is not
    changed.

    Parameters
    ----------
    data
        AnnData or MuData.
    basis
        Key in ``data.obsm``: the ``embedding_key`` of :func:`~sctranslator.tl.cluster`
        (``"X_sct_joint"``) or the ``key_added`` of :func:`~sctranslator.tl.embed`
        (``"X_sct_latent"``), named as in :func:`scanpy.pl.embedding`.
    color
        ``obs`` column(s) to colour by.
    components
        Components to plot, as in scanpy (``"1,2"`` by default).
    ax
        Axes to draw into (one ``color`` only); a new figure by default.
    %(param_show)s
    %(param_save)s
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (``size``, ``palette``, ``legend_loc``...).

    Returns
    -------
    The axes (a list with several ``color``), unless the figure is shown.

    Examples
    --------
    >>> sct.pl.embedding(mdata, basis="X_sct_joint", color=["sct_leiden", "celltype"])
    """
    if basis not in data.obsm:
        raise KeyError(f"obsm[{basis!r}] not found; available: {list(data.obsm)}.")
    colors = [color] if isinstance(color, str) else list(color or [])
    missing = [c for c in colors if c not in data.obs]
    if missing:
        raise KeyError(f"obs columns {missing} not found; available: {list(data.obs.columns)}.")
    holder = AnnData(obs=data.obs[colors].copy(), obsm={basis: data.obsm[basis]})
    for c in colors:
        if f"{c}_colors" in data.uns:
            holder.uns[f"{c}_colors"] = data.uns[f"{c}_colors"]
    axes = sc.pl.embedding(
        holder, basis=basis, color=color, components=components, ax=ax, show=False, **kwargs
    )
    first = axes[0] if isinstance(axes, list) else axes
    shown = finish(first, show, save)
    return None if shown is None else axes
