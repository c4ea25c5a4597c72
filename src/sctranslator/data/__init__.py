"""Vocabulary, input checks and data loaders."""

from ._ingest import ingest
from ._loaders import rna_loader
from ._store import CellStore
from ._store_loader import StoreDataModule
from ._validate import check_paired, check_unique, check_values, get_matrix, get_modality
from ._vocabulary import Vocabulary, gene_aliases, protein_aliases, resolve_protein_token

__all__ = [
    "CellStore",
    "StoreDataModule",
    "Vocabulary",
    "check_paired",
    "check_unique",
    "check_values",
    "get_matrix",
    "gene_aliases",
    "get_modality",
    "ingest",
    "protein_aliases",
    "resolve_protein_token",
    "rna_loader",
]
