"""Leiden clustering of cells on RNA plus (predicted) protein."""

from __future__ import annotations

from collections.abc import Sequence

import scanpy as sc
from mudata import MuData

from sctranslator.data import get_matrix

from ._embed import check_cells, concatenate, rna_pca, standardized_pca
from ._graphs import check_method, joint_graph, wnn_graph
from ._utils import check_free, dense, target


def cluster(
    mdata: MuData,
    *,
    rna: str | None = "rna",
    protein: str | None = "prot_pred",
    rna_layer: str | None = None,
    protein_layer: str | None = None,
    method: str = "concat",
    weights: Sequence[float] = (1.0, 1.0),
    n_comps: int = 30,
    n_neighbors: int = 15,
    connectivities: str = "umap",
    resolution: float = 1.0,
    key_added: str = "sct_leiden",
    embedding_key: str = "X_sct_joint",
    neighbors_key: str = "sct_neighbors",
    random_state: int = 0,
    overwrite: bool = False,
    copy: bool = False,
) -> MuData | None:
    """Cluster cells on RNA and (predicted) protein with Leiden.

    Each modality is embedded separately: RNA counts by PCA after ``log1p`` of counts per
    10,000; proteins (e.g. the ``prot_pred`` modality written by
    :func:`~sctranslator.tl.fill_protein`, on the CLR scale) by PCA after z-scoring each
    protein. ``method`` joins the two into one kNN graph, which Leiden clusters
    (:func:`scanpy.tl.leiden`, igraph flavour):

    - ``"concat"``: the two embeddings are scaled to the same total variance (times
      ``weights``) and concatenated; scanpy builds the kNN graph on it
      (:func:`scanpy.pp.neighbors`). Every cell weighs the modalities alike.
    - ``"wnn"``: weighted nearest neighbours (Hao et al., Cell 2021) through muon's
      :func:`muon.pp.neighbors`: each modality's PCs, scaled to unit length per cell, get
      their own kNN graph, and each cell weighs the modalities by how well each predicts its
      neighbourhood. ``mdata.obsm[f"{neighbors_key}_weights"]`` receives the weights.
      muon compiles its numba kernels at every call, which dominates the time on small data.

    With one modality (``protein=None`` for RNA alone, ``rna=None`` for protein alone) both
    methods build scanpy's kNN graph of its embedding.

    Parameters
    ----------
    mdata
        MuData whose modalities hold its cells in its order.
    rna
        RNA modality with raw counts, or ``None``.
    protein
        Protein modality (predicted or measured, on a log-like scale such as CLR), or ``None``.
    rna_layer
        Layer of ``rna`` with raw counts; ``None`` (default) for ``X``, e.g.
        ``rna_layer="counts"`` when ``X`` holds normalised values.
    protein_layer
        Layer of ``protein``; ``None`` for ``X``.
    method
        How the two modalities make one graph: ``"concat"`` or ``"wnn"`` (see above).
        ``benchmarks/clustering.py`` compares them on the PBMC cells.
    weights
        Relative weights (total variance) of the RNA and protein blocks, for ``"concat"``.
    n_comps
        Principal components per modality.
    n_neighbors
        Neighbours of the kNN graph.
    connectivities
        Connectivities of :func:`scanpy.pp.neighbors` for ``"concat"`` and one modality:
        ``"umap"`` (scanpy's default; compiles with numba on first use in a session) or
        ``"gauss"``. WNN's graph has UMAP connectivities.
    resolution
        Leiden resolution; higher gives more clusters.
    key_added
        ``mdata.obs`` column for the clusters; ``mdata.uns[key_added]["params"]`` records the
        settings.
    embedding_key
        ``mdata.obsm`` key for the joint embedding (the scaled blocks side by side; for
        ``"wnn"`` a view for plots, not the graph's space).
    neighbors_key
        ``mdata.uns[neighbors_key]`` and ``mdata.obsp[f"{neighbors_key}_distances"]`` /
        ``[f"{neighbors_key}_connectivities"]`` receive the graph, as in scanpy.
    random_state
        Seed of the PCA, the graph and Leiden.
    overwrite
        Replace existing entries under these keys (otherwise an error).
    copy
        Return an annotated copy instead of writing into ``mdata``.

    Returns
    -------
    The annotated copy when ``copy``, else ``None``. Nothing else in ``mdata`` changes.

    Examples
    --------
    >>> sct.tl.fill_protein(mdata, model, key_added="prot_pred")
    >>> sct.tl.cluster(mdata, rna="rna", protein="prot_pred")
    >>> sct.tl.cluster(mdata, method="wnn", key_added="wnn_leiden", overwrite=True)
    >>> sct.metrics.clustering_agreement(mdata.obs["sct_leiden"], mdata.obs["celltype"])
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"cluster expects a MuData, got {type(mdata).__name__}.")
    used = [
        (key, layer)
        for key, layer in ((rna, rna_layer), (protein, protein_layer))
        if key is not None
    ]
    if not used:
        raise ValueError("Pass at least one of `rna` and `protein`.")
    if rna == protein:
        raise ValueError(f"`rna` and `protein` name the same modality {rna!r}.")
    if len(weights) != 2 or min(weights) < 0:
        raise ValueError(f"`weights` must be two non-negative numbers (RNA, protein): {weights}.")
    method, connectivities = check_method(method, connectivities, weights, len(used))
    check_cells(mdata, [key for key, _ in used])
    wnn = method == "wnn" and len(used) == 2
    keys = {
        "obs": [key_added],
        "obsm": [embedding_key] + ([f"{neighbors_key}_weights"] if wnn else []),
        "obsp": [f"{neighbors_key}_distances", f"{neighbors_key}_connectivities"],
        "uns": [key_added, neighbors_key],
    }
    check_free(mdata, keys, overwrite)

    blocks, block_weights = {}, []
    if rna is not None:
        blocks[rna] = rna_pca(mdata[rna], rna_layer, n_comps, random_state)
        block_weights.append(weights[0])
    if protein is not None:
        values = get_matrix(mdata[protein], layer=protein_layer, what=f"modality {protein!r}")
        blocks[protein] = standardized_pca(dense(values), n_comps, random_state)
        block_weights.append(weights[1])
    joint = concatenate(list(blocks.values()), block_weights)
    if wnn:
        holder, modality_weights = wnn_graph(
            blocks, n_neighbors=n_neighbors, random_state=random_state
        )
    else:
        holder = joint_graph(
            joint,
            n_neighbors=n_neighbors,
            connectivities=connectivities,
            random_state=random_state,
        )
    sc.tl.leiden(
        holder,
        resolution=resolution,
        random_state=random_state,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    annotated = target(mdata, copy)
    annotated.obs[key_added] = holder.obs["leiden"].to_numpy()
    annotated.obs[key_added] = annotated.obs[key_added].astype("category")
    annotated.obsm[embedding_key] = joint
    if wnn:
        modality_weights.index = annotated.obs_names
        annotated.obsm[f"{neighbors_key}_weights"] = modality_weights
    annotated.obsp[f"{neighbors_key}_distances"] = holder.obsp["distances"]
    annotated.obsp[f"{neighbors_key}_connectivities"] = holder.obsp["connectivities"]
    neighbors = dict(holder.uns["neighbors"])
    neighbors["distances_key"] = f"{neighbors_key}_distances"
    neighbors["connectivities_key"] = f"{neighbors_key}_connectivities"
    neighbors["params"] = {**neighbors["params"], "use_rep": embedding_key}
    annotated.uns[neighbors_key] = neighbors
    annotated.uns[key_added] = {
        "params": {
            "rna": rna,
            "protein": protein,
            "method": method,
            "connectivities": connectivities,
            "weights": list(map(float, weights)),
            "n_comps": n_comps,
            "resolution": resolution,
            "random_state": random_state,
            "neighbors_key": neighbors_key,
            "embedding_key": embedding_key,
        }
    }
    return annotated if copy else None
