"""Vocabulary, input checks and data loaders."""

from ._loaders import rna_loader
from ._validate import check_paired, check_unique, check_values, get_matrix, get_modality
from ._vocabulary import Vocabulary, gene_aliases, protein_aliases, resolve_protein_token

__all__ = [
    "Vocabulary",
    "check_paired",
    "check_unique",
    "check_values",
    "get_matrix",
    "gene_aliases",
    "get_modality",
    "protein_aliases",
    "resolve_protein_token",
    "rna_loader",
]
