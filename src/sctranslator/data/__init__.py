"""Vocabulary, input checks, the reader of paired cells, cell stores and data loaders."""

from ._ingest import ingest, read_metadata
from ._loaders import rna_loader
from ._paired import (
    QUERY_BATCH,
    holds_counts,
    protein_names,
    read_all_cells,
    read_cells,
    registered_layout,
    rna_location,
    rna_modality,
    sample_rows,
    unregistered_proteins,
)
from ._panels import PANELS_KEY, allows_missing_genes
from ._store import PROTEINS_OBSM_KEY, CellStore
from ._store_loader import StoreDataModule, read_minibatches
from ._validate import (
    check_paired,
    check_unique,
    check_values,
    get_matrix,
    get_modality,
    iter_row_chunks,
)
from ._vocabulary import (
    UNKNOWN,
    Vocabulary,
    antibody_token,
    gene_aliases,
    protein_aliases,
    protein_coding_genes,
    report_unknown,
    resolve_protein_token,
)
from ._writer import check_output_path, write_blocks

__all__ = [
    "PANELS_KEY",
    "PROTEINS_OBSM_KEY",
    "QUERY_BATCH",
    "UNKNOWN",
    "CellStore",
    "StoreDataModule",
    "Vocabulary",
    "allows_missing_genes",
    "antibody_token",
    "check_output_path",
    "check_paired",
    "check_unique",
    "check_values",
    "gene_aliases",
    "holds_counts",
    "get_matrix",
    "get_modality",
    "ingest",
    "iter_row_chunks",
    "protein_aliases",
    "protein_coding_genes",
    "protein_names",
    "read_all_cells",
    "read_cells",
    "read_metadata",
    "read_minibatches",
    "registered_layout",
    "report_unknown",
    "resolve_protein_token",
    "rna_loader",
    "rna_location",
    "rna_modality",
    "sample_rows",
    "unregistered_proteins",
    "write_blocks",
]
