"""Torch modules."""

from ._translator import TranslatorModule
from ._weights import principal_axes

__all__ = ["TranslatorModule", "principal_axes"]
