"""The kNN graphs of :func:`~sctranslator.tl.cluster`: one joint embedding, or WNN (muon)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names

METHODS = ("concat", "wnn")
"""How :func:`~sctranslator.tl.cluster` joins the modalities' embeddings into one graph."""
CONNECTIVITIES = ("umap", "gauss")
"""Connectivities of :func:`scanpy.pp.neighbors` (the ``concat`` graph)."""


def check_method(method: str, connectivities: str, weights, n_blocks: int) -> tuple[str, str]:
    """Return ``(method, connectivities)`` after checking them; raise naming the options."""
    if method not in METHODS:
        hint = (
            f" (connectivities={method!r} sets scanpy's graph)" if method in CONNECTIVITIES else ""
        )
        raise ValueError(
            f"Unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}{hint}."
        )
    if connectivities not in CONNECTIVITIES:
        raise ValueError(
            f"Unknown connectivities {connectivities!r}; choose one of "
            f"{', '.join(map(repr, CONNECTIVITIES))}."
        )
    if method == "wnn" and n_blocks == 2:
        if connectivities != "umap":
            raise ValueError(
                "method='wnn' builds UMAP connectivities (muon); connectivities="
                f"{connectivities!r} applies to method='concat'."
            )
        if tuple(map(float, weights)) != (1.0, 1.0):
            raise ValueError(
                "method='wnn' learns each cell's modality weights; `weights` applies to "
                "method='concat'. Leave weights at (1.0, 1.0) or pass method='concat'."
            )
    return method, connectivities


def joint_graph(
    joint: np.ndarray, *, n_neighbors: int, connectivities: str, random_state: int
) -> AnnData:
    """Return an AnnData holding scanpy's kNN graph of ``joint`` (``obsp``, ``uns``)."""
    holder = AnnData(obs=pd.DataFrame(index=pd.RangeIndex(len(joint)).astype(str)))
    holder.obsm["X_joint"] = joint
    sc.pp.neighbors(
        holder,
        n_neighbors=n_neighbors,
        use_rep="X_joint",
        method=connectivities,
        random_state=random_state,
    )
    return holder


def wnn_graph(
    blocks: dict[str, np.ndarray], *, n_neighbors: int, random_state: int
) -> tuple[AnnData, pd.DataFrame]:
    """Build the weighted-nearest-neighbour graph of the modalities' embeddings (muon).

    Each block (a modality's principal components) is scaled to unit L2 norm per cell, as
    muon advises to match Seurat's WNN, gets its own kNN graph (:func:`scanpy.pp.neighbors`),
    and :func:`muon.pp.neighbors` (Hao et al., Cell 2021) weighs the modalities per cell.

    Returns
    -------
    An AnnData holding the graph as :func:`joint_graph` does, and each cell's modality
    weights (columns: the keys of ``blocks``; rows sum to 1).
    """
    with warnings.catch_warnings():  # muon 0.1 reads scanpy.__version__ (deprecated)
        warnings.filterwarnings("ignore", message=r".*__version__", category=FutureWarning)
        import muon

    names = pd.RangeIndex(len(next(iter(blocks.values())))).astype(str)
    modalities = {}
    for key, block in blocks.items():
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        modality = AnnData(obs=pd.DataFrame(index=names))
        modality.obsm["X_pca"] = (block / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        sc.pp.neighbors(
            modality, n_neighbors=n_neighbors, use_rep="X_pca", random_state=random_state
        )
        modalities[key] = modality
    with no_pull(), shared_var_names(None):
        mdata = MuData(modalities)
        muon.pp.neighbors(
            mdata,
            n_neighbors=n_neighbors,
            add_weights_to_modalities=True,  # mod.obs["mod_weight"]: no global column
            random_state=random_state,
        )
    holder = AnnData(obs=pd.DataFrame(index=names))
    holder.obsp["distances"] = mdata.obsp["distances"]
    holder.obsp["connectivities"] = mdata.obsp["connectivities"]
    params = dict(mdata.uns["neighbors"]["params"])
    holder.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {
            "n_neighbors": n_neighbors,
            "method": "wnn",
            "metric": params.get("metric", "euclidean"),
            "random_state": random_state,
        },
    }
    weights = pd.DataFrame(
        {key: mdata.mod[key].obs["mod_weight"].to_numpy(np.float32) for key in blocks}
    )
    return holder, weights
