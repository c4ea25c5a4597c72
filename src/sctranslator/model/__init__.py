"""User-facing models."""

from ._sctranslator import SCTRANSLATOR, default_max_epochs

__all__ = ["SCTRANSLATOR", "default_max_epochs"]
