"""Accuracy metrics for predicted proteins; clustering and batch-integration scores."""

from ._integration import (
    batch_entropy,
    clustering_agreement,
    integration_scores,
    silhouette_batch,
    silhouette_label,
)
from ._metrics import (
    evaluate,
    per_cell_cosine,
    per_cell_pearson,
    per_protein_pearson,
    per_protein_spearman,
    rmse,
)

__all__ = [
    "batch_entropy",
    "clustering_agreement",
    "evaluate",
    "integration_scores",
    "per_cell_cosine",
    "per_cell_pearson",
    "per_protein_pearson",
    "per_protein_spearman",
    "rmse",
    "silhouette_batch",
    "silhouette_label",
]
