"""Tools that take and annotate MuData objects."""

from ._fill import fill_protein

__all__ = ["fill_protein"]
