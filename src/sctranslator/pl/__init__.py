"""Plots: matplotlib figures in scanpy's style (``ax=``, ``show=``, ``save=``).

As in :func:`scanpy.pl.rank_genes_groups`, a plot takes the data first and reads what a tool
of :mod:`sctranslator.tl` wrote into it under ``key`` (that tool's ``key_added``, with the same
default): ``sct.tl.perturb(mdata, model, genes=["MS4A1"])`` then
``sct.pl.perturbation_effect(mdata)``. The plots of a tool's table also take the table that
the tool returned instead of the data. Every option is a keyword.
"""

from ._classification import confusion_matrix
from ._correlation import protein_correlation
from ._embedding import embedding
from ._interactions import interaction_heatmap
from ._perturbation import perturbation_effect
from ._reliability import protein_reliability
from ._scatter import predicted_vs_measured

__all__ = [
    "confusion_matrix",
    "embedding",
    "interaction_heatmap",
    "perturbation_effect",
    "predicted_vs_measured",
    "protein_correlation",
    "protein_reliability",
]
