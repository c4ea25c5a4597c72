"""Translate single-cell transcriptomes into proteomes.

Importing the package changes nothing outside it: no mudata option and no warning filter is
set. The MuData objects it builds are built without mudata's column pulling
(``sctranslator._mudata.no_pull``), and Lightning's own deprecation warning is silenced only
around training (``sctranslator._warnings.quiet_dependencies``).
"""

from importlib.metadata import version

from . import components, data, datasets, metrics, model, module, nn, pl, pp, tl, train
from .model import SCTRANSLATOR

__version__ = version("sctranslator")

__all__ = [
    "SCTRANSLATOR",
    "components",
    "data",
    "datasets",
    "metrics",
    "model",
    "module",
    "nn",
    "pl",
    "pp",
    "tl",
    "train",
]
