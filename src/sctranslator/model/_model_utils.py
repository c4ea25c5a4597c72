"""Small helpers shared by the model's mixins."""

from __future__ import annotations

import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData

from sctranslator.data import get_modality


def torch_device(accelerator: str, device: int | str) -> torch.device:
    """Return the torch device of Lightning-style ``accelerator`` and ``device`` arguments."""
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda" if device == "auto" else f"cuda:{device}")


def protein_names(adata: AnnData | MuData, registry: dict) -> list[str]:
    """Protein names of ``adata`` under the setup arguments of ``registry``."""
    args = registry["setup_args"]
    if isinstance(adata, MuData):
        modality = (args.get("modalities") or {}).get("protein_layer", "prot")
        return list(get_modality(adata, modality, "the proteins").var_names)
    proteins = adata.obsm[args["protein_expression_obsm_key"]]
    if isinstance(proteins, pd.DataFrame):
        return list(proteins.columns)
    return list(adata.uns[args["protein_names_uns_key"]])


def rna_modality(adata: AnnData | MuData, registry: dict) -> AnnData:
    """Return the RNA AnnData of ``adata`` under the setup arguments of ``registry``."""
    if not isinstance(adata, MuData):
        return adata
    modalities = registry["setup_args"].get("modalities") or {}
    return get_modality(adata, modalities.get("rna_layer", "rna"), "the RNA")
