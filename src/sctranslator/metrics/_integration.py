"""Clustering agreement and batch-integration scores of a cell embedding.

Computed with numpy, scikit-learn and scanpy only (no jax). Every score is oriented so that
higher is better and lies in ``[0, 1]``:

- batch mixing: ``batch_entropy`` (kNN batch-label entropy) and ``silhouette_batch``;
- cell-type separation: ``silhouette_label``, and ``ari``/``nmi`` of a clustering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_samples
from sklearn.neighbors import NearestNeighbors

from sctranslator._docstrings import metrics_dsp


def _labels(values: Sequence, n_cells: int, what: str) -> np.ndarray:
    values = np.asarray(pd.Series(values).astype(str))
    if len(values) != n_cells:
        raise ValueError(f"{what} has {len(values)} entries for {n_cells} cells.")
    return values


def _embedding(embedding) -> np.ndarray:
    embedding = np.asarray(embedding, dtype=np.float64)
    if embedding.ndim != 2 or not np.isfinite(embedding).all():
        raise ValueError("The embedding must be a finite (cells, dimensions) matrix.")
    return embedding


def clustering_agreement(clusters: Sequence, labels: Sequence) -> pd.Series:
    """Score clusters against labels by adjusted Rand index and normalised mutual information.

    Parameters
    ----------
    clusters
        Cluster of each cell.
    labels
        Reference label of each cell (e.g. the annotated cell type).

    Returns
    -------
    Series with ``ari`` and ``nmi``.

    Examples
    --------
    >>> sct.metrics.clustering_agreement(mdata.obs["sct_leiden"], mdata.obs["celltype"])
    """
    clusters = _labels(clusters, len(clusters), "clusters")
    labels = _labels(labels, len(clusters), "labels")
    return pd.Series(
        {
            "ari": adjusted_rand_score(labels, clusters),
            "nmi": normalized_mutual_info_score(labels, clusters),
        }
    )


@metrics_dsp.dedent
def batch_entropy(embedding, batch: Sequence, *, n_neighbors: int = 30) -> float:
    """Mean entropy of the batch labels among each cell's nearest neighbours.

    The entropy is divided by its maximum, ``log(number of batches)``: 1 when every
    neighbourhood holds all batches in equal parts, 0 when each holds one batch only. Batches
    of unequal size cap the reachable value below 1.

    Parameters
    ----------
    %(param_embedding)s
    batch
        Batch of each cell; at least two batches.
    n_neighbors
        Neighbours per cell (the cell itself excluded).

    Returns
    -------
    The score in ``[0, 1]``, higher for better mixing.

    Examples
    --------
    >>> sct.metrics.batch_entropy(mdata.obsm["X_sct_latent"], mdata.obs["batch"])
    """
    embedding = _embedding(embedding)
    batch = _labels(batch, len(embedding), "batch")
    categories, codes = np.unique(batch, return_inverse=True)
    if len(categories) < 2:
        raise ValueError("batch_entropy needs at least two batches.")
    k = min(n_neighbors, len(embedding) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)[1][:, 1:]
    counts = np.stack([(codes[neighbours] == c).sum(1) for c in range(len(categories))], axis=1)
    p = counts / k
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return float(entropy.mean() / np.log(len(categories)))


@metrics_dsp.dedent
def silhouette_label(embedding, labels: Sequence) -> float:
    """Cell-type silhouette width rescaled to ``[0, 1]``: ``(ASW + 1) / 2``.

    Parameters
    ----------
    %(param_embedding)s
    %(param_labels)s

    Returns
    -------
    Higher when cell types form separate groups.

    Examples
    --------
    >>> sct.metrics.silhouette_label(mdata.obsm["X_sct_latent"], mdata.obs["celltype"])
    """
    embedding = _embedding(embedding)
    labels = _labels(labels, len(embedding), "labels")
    return float((silhouette_samples(embedding, labels).mean() + 1) / 2)


@metrics_dsp.dedent
def silhouette_batch(embedding, batch: Sequence, labels: Sequence) -> float:
    """Batch mixing within cell types: ``1 - |silhouette of the batch labels|``.

    The silhouette of the batch labels is computed per cell type (types present in at least
    two batches with at least two cells), turned into ``1 - |s|`` per cell, averaged within each
    type and then over types, as in scIB's batch ASW.

    Parameters
    ----------
    %(param_embedding)s
    batch
        Batch of each cell.
    %(param_labels)s

    Returns
    -------
    Score in ``[0, 1]``, 1 when batches overlap within every cell type.

    Examples
    --------
    >>> sct.metrics.silhouette_batch(emb, mdata.obs["batch"], mdata.obs["celltype"])
    """
    embedding = _embedding(embedding)
    batch = _labels(batch, len(embedding), "batch")
    labels = _labels(labels, len(embedding), "labels")
    scores = []
    for label in np.unique(labels):
        cells = labels == label
        sub_batch = batch[cells]
        n_batches = len(np.unique(sub_batch))
        if n_batches < 2 or n_batches >= cells.sum():
            continue
        scores.append(np.mean(1 - np.abs(silhouette_samples(embedding[cells], sub_batch))))
    if not scores:
        raise ValueError("No cell type is present in two batches; batch silhouette is undefined.")
    return float(np.mean(scores))


@metrics_dsp.dedent
def integration_scores(
    embedding, batch: Sequence, labels: Sequence | None = None, *, n_neighbors: int = 30
) -> pd.Series:
    """Batch mixing and, given cell types, cell-type separation of one embedding.

    Parameters
    ----------
    %(param_embedding)s
    batch
        Batch of each cell.
    labels
        Cell type of each cell; without it only ``batch_entropy`` is computed.
    n_neighbors
        Neighbours for :func:`batch_entropy`.

    Returns
    -------
    Series with ``batch_entropy`` and, with labels, ``silhouette_batch`` and
    ``silhouette_label``.

    Examples
    --------
    >>> sct.metrics.integration_scores(emb, mdata.obs["batch"], mdata.obs["celltype"])
    """
    scores = {"batch_entropy": batch_entropy(embedding, batch, n_neighbors=n_neighbors)}
    if labels is not None:
        scores["silhouette_batch"] = silhouette_batch(embedding, batch, labels)
        scores["silhouette_label"] = silhouette_label(embedding, labels)
    return pd.Series(scores)
