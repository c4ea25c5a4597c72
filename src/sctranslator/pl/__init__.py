"""Plots."""

from ._scatter import predicted_vs_measured

__all__ = ["predicted_vs_measured"]
