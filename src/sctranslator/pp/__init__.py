"""Preprocessing."""

from ._normalize import normalize_protein
from ._pair import pair_modalities

__all__ = ["normalize_protein", "pair_modalities"]
