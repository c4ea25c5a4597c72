"""A batch-robust embedding from the model, scored against the uncorrected RNA PCA."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator.metrics import integration_scores

from ._embed import model_rna, rna_pca, standardized_pca
from ._utils import check_free, check_model

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR

REPRESENTATIONS = ("latent", "protein")


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
    """Embed cells with the model and score batch mixing against the uncorrected RNA PCA.

    The model reads RNA only and was trained to predict proteins, so its embeddings keep what
    is predictive of protein and, by construction, drop nothing else explicitly: they are
    *candidate* batch-robust embeddings, and the returned table says how well they mix
    batches and separate cell types compared with the RNA PCA of the same cells.

    ``representation="latent"`` takes the encoder's cell token
    (:meth:`~sctranslator.SCTRANSLATOR.get_latent_representation`); ``"protein"`` the PCA
    of the predicted proteins (:meth:`~sctranslator.SCTRANSLATOR.predict_protein`, every cell
    decoded with the same average batch embedding, each protein z-scored).

    Parameters
    ----------
    data
        AnnData with the model's RNA layer, or MuData with its RNA modality (holding the
        MuData's cells).
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
        The table is stored in ``uns[f"{key_added}_metrics"]``.
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
    Scores (:func:`~sctranslator.metrics.integration_scores`, higher is better) with rows
    ``"RNA PCA (uncorrected)"`` and ``f"sctranslator {representation}"``.

    Examples
    --------
    >>> table = sct.tl.batch_correct(mdata, model, batch_key="batch", label_key="celltype")
    >>> mdata.obsm["X_sct_latent"].shape
    """
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

    if representation == "latent":
        embedding = model.get_latent_representation(rna, batch_size=batch_size)
    else:
        predicted = model.predict_protein(rna, batch_size=batch_size)
        embedding = standardized_pca(predicted.to_numpy(), n_comps, random_state)
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
