"""Translate single-cell transcriptomes into proteomes."""

from importlib.metadata import version

from . import data, datasets, metrics, model, module, nn, pl, pp, tl, train
from .model import SCTRANSLATOR

__version__ = version("sctranslator")

__all__ = [
    "SCTRANSLATOR",
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
