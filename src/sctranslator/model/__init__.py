"""User-facing models."""

from ._model_utils import default_max_epochs
from ._persistence import shipped_references
from ._sctranslator import SCTRANSLATOR

__all__ = ["SCTRANSLATOR", "default_max_epochs", "shipped_references"]
