"""Datasets: real cells shipped with the package and a synthetic generator."""

from ._cptac import cptac_ucec_bulk
from ._pbmc import pbmc_cite_mini
from ._synthetic import synthetic_cite

__all__ = ["cptac_ucec_bulk", "pbmc_cite_mini", "synthetic_cite"]
