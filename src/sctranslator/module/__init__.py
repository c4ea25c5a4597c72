"""Torch modules."""

from ._translator import TranslatorModule

__all__ = ["TranslatorModule"]
