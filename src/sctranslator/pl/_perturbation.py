"""Predicted protein shifts of an in-silico perturbation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from mudata import MuData

from sctranslator._docstrings import plot_dsp

from ._utils import finish, new_axes, table_of

_COLUMNS = ("group", "protein", "shift")


@plot_dsp.dedent
def perturbation_effect(
    data: AnnData | MuData | pd.DataFrame,
    *,
    key: str = "sct_perturb",
    proteins: Sequence[str] | None = None,
    n_top: int = 15,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> Axes | None:
    """Heatmap of the mean predicted protein shift per group from :func:`~sctranslator.tl.perturb`.

    Parameters
    ----------
    data
        The AnnData or MuData annotated by :func:`~sctranslator.tl.perturb`, or the tidy
        table it returned (columns ``group``, ``protein`` and ``shift``).
    key
        The ``key_added`` of :func:`~sctranslator.tl.perturb`: the table is
        ``data.uns[key]["mean_shift"]``.
    proteins
        Proteins to show; by default the ``n_top`` with the largest absolute shift in any group.
    n_top
        Proteins shown when ``proteins`` is not given.
    %(param_ax)s
    %(param_show)s
    %(param_save)s

    Returns
    -------
    The axes (groups down, proteins across, colour centred on 0), unless the figure is shown.

    Examples
    --------
    >>> sct.tl.perturb(mdata, model, genes=["MS4A1"], groupby="celltype")
    >>> sct.pl.perturbation_effect(mdata, n_top=10)  # reads uns["sct_perturb"]
    """
    table = table_of(data, key, "perturb")
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"The table lacks columns {missing}; pass the result of sct.tl.perturb.")
    wide = table.pivot(index="group", columns="protein", values="shift")
    if proteins is None:
        proteins = wide.abs().max().nlargest(n_top).index
    shown = wide.loc[:, list(proteins)]
    values = shown.to_numpy(dtype=float)
    limit = np.nanmax(np.abs(values)) or 1.0
    ax = new_axes(ax, (max(3.0, 0.35 * shown.shape[1] + 2), max(2.0, 0.35 * shown.shape[0] + 1.5)))
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(np.arange(shown.shape[1]), shown.columns, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(shown.shape[0]), shown.index, fontsize=8)
    ax.figure.colorbar(image, ax=ax, label="predicted shift")
    return finish(ax, show, save)
