"""Embeddings of cells by the model, and the deprecated ``batch_correct`` that scored them."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator.metrics import integration_scores

from ._embed import model_rna, rna_pca, standardized_pca
from ._utils import check_free, check_model, target

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR

REPRESENTATIONS = ("latent", "protein")


def embed(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
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


def batch_correct(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
    batch_key: str = "batch",
    label_key: str | None = None,
    representation: str = "latent",
    key_added: str | None = None,
    n_comps: int = 30,
    n_neighbors: int = 30,
    batch_size: int | None = None,
    random_state: int = 0,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Embed and score batch mixing (deprecated: use :func:`embed` and a metric).

    Deprecated: embed with :func:`embed`, score with
    :func:`~sctranslator.metrics.integration_scores`. It corrected nothing: it embedded the
    cells with the model and scored batch mixing against the uncorrected RNA PCA. Kept for
    one release with a :class:`FutureWarning`; writes ``obsm[key_added]`` and
    ``uns[f"{key_added}_metrics"]`` and returns the table, as before.

    Parameters
    ----------
    data
        AnnData with the model's RNA layer, or MuData with its RNA modality.
    model
        A trained :class:`~sctranslator.SCTRANSLATOR`.
    batch_key
        ``obs`` column with the batch of each cell (at least two batches).
    label_key
        ``obs`` column with cell types; adds cell-type separation and within-type batch mixing
        to the table.
    representation
        ``"latent"`` or ``"protein"``.
    key_added
        ``obsm`` key for the embedding; ``"X_sct_latent"`` or ``"X_sct_protein"`` by default.
    n_comps
        Components of the RNA PCA and of the protein PCA.
    n_neighbors
        Neighbours for :func:`~sctranslator.metrics.batch_entropy`.
    batch_size
        Cells per batch of the model.
    random_state
        Seed of the PCAs.
    overwrite
        Replace existing entries under these keys.

    Returns
    -------
    Scores with rows ``"RNA PCA (uncorrected)"`` and ``f"sctranslator {representation}"``.

    Examples
    --------
    Replace

    >>> table = sct.tl.batch_correct(mdata, model, label_key="celltype")

    by

    >>> sct.tl.embed(mdata, model)
    >>> sct.metrics.integration_scores(
    ...     mdata.obsm["X_sct_latent"], mdata.obs["batch"], mdata.obs["celltype"]
    ... )
    """
    warnings.warn(
        "sct.tl.batch_correct is deprecated (it corrects nothing) and will be removed in the "
        "next release; call sct.tl.embed(data, model, representation=...) and score the "
        "embedding with sct.metrics.integration_scores(data.obsm[key], batch, labels).",
        FutureWarning,
        stacklevel=2,
    )
    check_model(model)
    if representation not in REPRESENTATIONS:
        raise ValueError(
            f"representation must be one of {REPRESENTATIONS}, got {representation!r}."
        )
    rna, layer = model_rna(data, model)
    for key, what in ((batch_key, "batch_key"), (label_key, "label_key")):
        if key is not None and key not in data.obs:
            raise KeyError(
                f"{what} {key!r} not found in obs; available: {list(data.obs.columns)}."
            )
    if batch_key is None:
        raise ValueError("batch_correct needs a `batch_key` (an obs column with the batches).")
    if data.obs[batch_key].nunique() < 2:
        raise ValueError(f"obs[{batch_key!r}] holds a single batch; nothing to correct.")
    key_added = f"X_sct_{representation}" if key_added is None else key_added
    check_free(data, {"obsm": [key_added], "uns": [f"{key_added}_metrics"]}, overwrite)
    embedding = _embedding(rna, model, representation, n_comps, batch_size, random_state)
    batch = data.obs[batch_key].to_numpy()
    labels = None if label_key is None else data.obs[label_key].to_numpy()
    table = pd.DataFrame(
        {
            "RNA PCA (uncorrected)": integration_scores(
                rna_pca(rna, layer, n_comps, random_state), batch, labels, n_neighbors
            ),
            f"sctranslator {representation}": integration_scores(
                embedding, batch, labels, n_neighbors
            ),
        }
    ).T
    data.obsm[key_added] = embedding
    data.uns[f"{key_added}_metrics"] = table
    return table


def _embedding(rna, model, representation, n_comps, batch_size, random_state):
    """Return the latent cell tokens, or the PCA of the z-scored predicted proteins."""
    if representation == "latent":
        return model.get_latent_representation(rna, batch_size=batch_size)
    predicted = model.predict_protein(rna, batch_size=batch_size)
    return standardized_pca(predicted.to_numpy(), n_comps, random_state)
