"""The torch module: the network."""

from ._translator import CONTEXTS, TranslatorModule
from ._weights import FREEZE_PRESETS, principal_axes

__all__ = ["CONTEXTS", "FREEZE_PRESETS", "TranslatorModule", "principal_axes"]
