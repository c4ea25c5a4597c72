"""Preprocessing."""

from ._concat import concat_panels
from ._map import map_protein_names
from ._normalize import normalize_protein
from ._pair import pair_modalities

__all__ = ["concat_panels", "map_protein_names", "normalize_protein", "pair_modalities"]
