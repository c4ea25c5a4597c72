"""Accuracy metrics for predicted proteins."""

from ._metrics import (
    evaluate,
    per_cell_cosine,
    per_cell_pearson,
    per_protein_pearson,
    per_protein_spearman,
    rmse,
)

__all__ = [
    "evaluate",
    "per_cell_cosine",
    "per_cell_pearson",
    "per_protein_pearson",
    "per_protein_spearman",
    "rmse",
]
