"""scvi-tools data loaders for RNA-only data of any gene panel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, AnnDataManagerValidationCheck
from scvi.data.fields import LayerField
from scvi.dataloaders import AnnDataLoader


def rna_loader(
    matrix,
    obs_names: Sequence[str],
    var_names: Sequence[str],
    *,
    indices: Sequence[int] | None = None,
    batch_size: int = 128,
) -> AnnDataLoader:
    """Return an :class:`~scvi.dataloaders.AnnDataLoader` over the rows of an RNA count matrix.

    The model's own registry validates every field it was set up with (proteins included)
    and fixes the gene panel, so RNA-only queries with any genes go through this loader
    instead: a fresh :class:`~scvi.data.AnnDataManager` with the RNA field alone, registered
    on a light AnnData that references ``matrix`` without copying it. The user's object is
    neither copied nor annotated. Batches are read (and densified) one at a time.

    Parameters
    ----------
    matrix
        Dense, sparse or backed ``(cells, genes)`` counts.
    obs_names, var_names
        Cell and gene names.
    indices
        Rows to load, in order; all by default.
    batch_size
        Cells per batch.
    """
    holder = AnnData(
        X=matrix,
        obs=pd.DataFrame(index=pd.Index(obs_names).astype(str)),
        var=pd.DataFrame(index=pd.Index(var_names).astype(str)),
    )
    manager = AnnDataManager(
        fields=[
            LayerField(REGISTRY_KEYS.X_KEY, None, is_count_data=False, correct_data_format=False)
        ],
        validation_checks=AnnDataManagerValidationCheck(check_if_view=False),
    )
    manager.register_fields(holder)
    indices = np.arange(holder.n_obs) if indices is None else np.asarray(indices)
    return AnnDataLoader(manager, indices=indices, batch_size=batch_size, shuffle=False)
