"""Tools that take and annotate MuData and AnnData objects.

One convention, as in scanpy: the data come first and the model second, and every option is
a keyword (``sct.tl.perturb(mdata, model, genes=["MS4A1"])``); results are written into the
data (per-cell labels in ``obs``, per-cell arrays in ``obsm``, tables and settings in
``uns``) under ``key_added``; ``copy=True`` writes into a copy and returns it. Tools that
compute a summary table (:func:`classify`, :func:`interactions`, :func:`perturb`) also return
it; the others return ``None``. RNA is read from ``X`` unless a layer is named, or from the
model's registered layer when a model is given. The plots of :mod:`sctranslator.pl` read
what the tools wrote, under the same keys.
"""

from ._classify import classify
from ._cluster import cluster
from ._embed import embed
from ._fill import fill_protein
from ._interactions import interactions
from ._perturb import perturb

__all__ = [
    "classify",
    "cluster",
    "embed",
    "fill_protein",
    "interactions",
    "perturb",
]
