"""Training plan, its callbacks and metrics."""

from ._best_weights import BestWeights
from ._initialization import DataInitialization
from ._pearson import MaskedPearson
from ._settings import trainer_settings
from ._teacher import NeighborTeacher
from ._trainingplan import TranslatorTrainingPlan

__all__ = [
    "BestWeights",
    "DataInitialization",
    "MaskedPearson",
    "NeighborTeacher",
    "TranslatorTrainingPlan",
    "trainer_settings",
]
