"""Tools that take and annotate MuData and AnnData objects."""

from ._batch import batch_correct
from ._cluster import cluster
from ._fill import fill_protein
from ._interactions import interactions
from ._perturb import perturb

__all__ = ["batch_correct", "cluster", "fill_protein", "interactions", "perturb"]
