"""User-facing models."""

from ._persistence import shipped_references
from ._sctranslator import SCTRANSLATOR, default_max_epochs

__all__ = ["SCTRANSLATOR", "default_max_epochs", "shipped_references"]
