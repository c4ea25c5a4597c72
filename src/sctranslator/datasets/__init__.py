"""Datasets shipped with the package."""

from ._pbmc import pbmc_cite_mini

__all__ = ["pbmc_cite_mini"]
