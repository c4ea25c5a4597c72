"""Training plan and metrics used during training."""

from ._best_weights import BestWeights
from ._initialization import DataInitialization
from ._pearson import MaskedPearson
from ._statistics import fit_gene_weights, fit_panel_statistics
from ._teacher import NeighborTeacher
from ._trainingplan import TranslatorTrainingPlan

__all__ = [
    "BestWeights",
    "DataInitialization",
    "MaskedPearson",
    "NeighborTeacher",
    "TranslatorTrainingPlan",
    "fit_gene_weights",
    "fit_panel_statistics",
]
