"""Plots: matplotlib figures in scanpy's style (``ax=``, ``show=``, ``save=``)."""

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
