"""Figure handling shared by the plots: axes creation, saving and showing."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sctranslator._io import write_atomic


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new figure of ``figsize``."""
    if ax is not None:
        return ax
    return plt.subplots(figsize=figsize)[1]


def finish(ax: Axes | Figure, show: bool | None, save: str | None) -> Axes | Figure | None:
    """Save the figure of ``ax`` atomically (never over an existing file), show it, return ``ax``.

    ``ax`` is an axes or a whole figure. As in scanpy, it is returned unless the figure is
    shown; ``show=None`` shows only in interactive sessions when nothing is saved.
    """
    figure = ax if isinstance(ax, Figure) else ax.figure
    if save is not None:
        if Path(save).exists():
            raise FileExistsError(f"{save} already exists; save to another path or remove it.")
        write_atomic(
            save,
            lambda path: figure.savefig(
                path, dpi=120, bbox_inches="tight", format=str(save).rsplit(".", 1)[-1]
            ),
        )
    if show or (show is None and save is None and plt.isinteractive()):
        plt.show()
        return None
    return ax
