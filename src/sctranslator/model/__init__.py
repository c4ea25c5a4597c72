"""User-facing models."""

from ._sctranslator import SCTRANSLATOR

__all__ = ["SCTRANSLATOR"]
