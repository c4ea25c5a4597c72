"""Cell embeddings: :func:`embed` by the model, and the RNA and protein PCAs the tools share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctranslator.data import get_matrix, get_modality, rna_location, rna_modality

from ._utils import check_data, check_free, check_model, target

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR

REPRESENTATIONS = ("latent", "protein")


def embed(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
    *,
    representation: str = "latent",
    key_added: str | None = None,
    n_comps: int = 30,
    batch_size: int | None = None,
    random_state: int = 0,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Embed cells with the model, as scanpy's embeddings do, into ``obsm[key_added]``.

    ``representation="latent"`` takes the encoder's cell token
    (:meth:`~sctranslator.SCTRANSLATOR.get_latent_representation`); ``"protein"`` the PCA of
    the predicted proteins (:meth:`~sctranslator.SCTRANSLATOR.predict_protein`, every cell
    decoded with the same average batch embedding, each protein z-scored).

    The model reads RNA only and was trained to predict proteins, not to remove batch
    effects: its embeddings keep what predicts protein and remove nothing on purpose. Score
    how well they mix batches with :func:`~sctranslator.metrics.integration_scores` next to
    the RNA PCA of the same cells before using them as batch-corrected.

    Parameters
    ----------
    data
        AnnData with the model's registered RNA layer (``X`` for a model set up with
        ``rna_layer=None``), or MuData with its RNA modality (holding the MuData's cells).
    model
        A trained :class:`~sctranslator.SCTRANSLATOR`.
    representation
        ``"latent"`` or ``"protein"``.
    key_added
        ``obsm`` key of the embedding, ``"X_sct_latent"`` or ``"X_sct_protein"`` by default;
        ``uns[key_added]["params"]`` records the settings.
    n_comps
        Components of the protein PCA (``representation="protein"``).
    batch_size
        Cells per batch of the model.
    random_state
        Seed of the protein PCA.
    overwrite
        Replace existing entries under ``key_added``.
    copy
        Return an annotated copy instead of writing into ``data``.

    Returns
    -------
    The annotated copy when ``copy``, else ``None``.

    Examples
    --------
    >>> sct.tl.embed(mdata, model)
    >>> sct.metrics.integration_scores(
    ...     mdata.obsm["X_sct_latent"], mdata.obs["batch"], mdata.obs["celltype"]
    ... )
    """
    check_data(data, "embed")
    check_model(model)
    if representation not in REPRESENTATIONS:
        raise ValueError(
            f"representation must be one of {REPRESENTATIONS}, got {representation!r}."
        )
    rna, _ = model_rna(data, model)
    key_added = f"X_sct_{representation}" if key_added is None else key_added
    check_free(data, {"obsm": [key_added], "uns": [key_added]}, overwrite)
    embedding = _embedding(rna, model, representation, n_comps, batch_size, random_state)
    annotated = target(data, copy)
    annotated.obsm[key_added] = embedding
    annotated.uns[key_added] = {
        "params": {
            "representation": representation,
            "n_comps": int(embedding.shape[1]),
            "random_state": random_state,
        }
    }
    return annotated if copy else None


def model_rna(data: AnnData | MuData, model: SCTRANSLATOR) -> tuple[AnnData, str | None]:
    """Return the AnnData holding the RNA the model reads, and the layer with its counts.

    For a MuData, the RNA modality the model was set up with, which must hold exactly the
    MuData's cells (results are written at the MuData level).
    """
    modality, layer = rna_location(model.registry_["setup_args"])
    if isinstance(data, MuData):
        rna = rna_modality(data, model.registry_["setup_args"])
        check_cells(data, [modality or "rna"])
        return rna, layer
    if isinstance(data, AnnData):
        return data, layer
    raise TypeError(f"Expected an AnnData or MuData, got {type(data).__name__}.")


def check_cells(mdata: MuData, mod_keys: list[str]) -> None:
    """Raise unless each modality holds the MuData's cells in the MuData's order."""
    for key in mod_keys:
        names = get_modality(mdata, mod_key=key, what="the embedding").obs_names
        if len(names) != mdata.n_obs or not (names == mdata.obs_names).all():
            raise ValueError(
                f"Modality {key!r} holds {len(names)} cells but the MuData {mdata.n_obs}, or in "
                "another order; subset the MuData to the cells of that modality first "
                "(e.g. `mdata[mdata.obs_names.isin(mdata[key].obs_names)].copy()`)."
            )


def rna_pca(
    rna: AnnData, layer: str | None, n_comps: int = 30, random_state: int = 0
) -> np.ndarray:
    """PCA of RNA counts after ``log1p`` of counts per 10,000, on a light copy.

    Parameters
    ----------
    rna
        AnnData with raw counts.
    layer
        Layer with the counts; ``None`` for ``X``.
    n_comps
        Components, at most ``min(cells, genes) - 1``.
    random_state
        Seed of the PCA solver.
    """
    counts = get_matrix(rna, layer=layer, what="the RNA")
    holder = AnnData(X=sp.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(holder, target_sum=1e4)
    sc.pp.log1p(holder)
    n_comps = min(n_comps, min(holder.shape) - 1)
    return sc.pp.pca(holder.X, n_comps=n_comps, random_state=random_state)


def standardized_pca(
    values: np.ndarray | pd.DataFrame, n_comps: int = 30, random_state: int = 0
) -> np.ndarray:
    """PCA of ``(cells, features)`` values (e.g. proteins on the CLR scale), z-scored.

    Each feature is z-scored first; constant features are left out.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("The values contain NaN or infinite entries; cannot embed them.")
    std = values.std(0)
    values = (values[:, std > 1e-8] - values[:, std > 1e-8].mean(0)) / std[std > 1e-8]
    n_comps = min(n_comps, min(values.shape) - 1)
    return sc.pp.pca(values.astype(np.float32), n_comps=n_comps, random_state=random_state)


def concatenate(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Concatenate embeddings, each scaled to total variance ``weight``.

    So no block dominates by its number of dimensions or its units.
    """
    scaled = []
    for block, weight in zip(blocks, weights, strict=True):
        total = block.var(0).sum()
        scaled.append(block * np.sqrt(weight / total) if total > 0 else block)
    return np.concatenate(scaled, axis=1).astype(np.float32)


def _embedding(rna, model, representation, n_comps, batch_size, random_state):
    """Return the latent cell tokens, or the PCA of the z-scored predicted proteins."""
    if representation == "latent":
        return model.get_latent_representation(rna, batch_size=batch_size)
    predicted = model.predict_protein(rna, batch_size=batch_size)
    return standardized_pca(predicted.to_numpy(), n_comps, random_state)
