"""Concatenate datasets whose gene and protein panels differ."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import PANELS_KEY, check_unique, get_modality, iter_row_chunks

logger = logging.getLogger(__name__)


def concat_panels(
    datasets: Mapping[str, MuData],
    *,
    rna: str = "rna",
    protein: str = "prot",
    label: str = "dataset",
) -> MuData:
    """Concatenate datasets with different gene and protein panels, marking what is missing.

    An outer join: the result has the union of the genes and of the proteins, and NaN where a
    dataset did not measure a gene or a protein (a dataset without the protein modality, such
    as RNA-only cells, has NaN proteins). NaN is never read as zero: for
    :class:`~sctranslator.SCTRANSLATOR` an unmeasured gene is not a token of the cell and an
    unmeasured protein is left out of the loss. The RNA records each dataset's genes in
    ``uns["sctranslator_panels"]``, which is what lets the model accept NaN in this RNA (NaN
    in any other RNA is refused). Features are joined by exact name, so use the same naming
    (e.g. HGNC symbols) across datasets. ``.X`` and the layers are kept, densified as
    ``float32`` (a layer a dataset lacks is NaN for its cells). The inputs are not changed.

    Parameters
    ----------
    datasets
        Name -> MuData with an RNA modality and, where measured, a protein modality holding
        the same cells in the same order. Cell names must be unique across datasets.
    rna, protein
        Modality names, in the inputs and in the result.
    label
        Column of the result's ``obs`` with the dataset name of each cell.

    Returns
    -------
    MuData with modalities ``rna`` and ``protein`` (paired cell by cell) and ``obs`` joined
    from the inputs' ``obs`` plus ``label``.

    Examples
    --------
    >>> pbmc = sct.datasets.pbmc_cite_mini()
    >>> genes = pbmc["rna"].var_names
    >>> bulk = sct.datasets.cptac_ucec_bulk("shared/data/cptac_ucec_bulk", genes=genes)
    >>> both = sct.pp.concat_panels({"pbmc": pbmc, "cptac": bulk})
    """
    if not datasets:
        raise ValueError("`datasets` is empty.")
    rnas, proteins, obs = {}, {}, []
    for name, mdata in datasets.items():
        rna_data = get_modality(mdata, mod_key=rna, what=f"the RNA of dataset {name!r}")
        rnas[name] = _dense(rna_data)
        if protein in mdata.mod:
            prot_data = get_modality(
                mdata, mod_key=protein, what=f"the proteins of dataset {name!r}"
            )
            if not prot_data.obs_names.equals(rna_data.obs_names):
                raise ValueError(
                    f"Dataset {name!r}: the {rna!r} and {protein!r} modalities are not paired "
                    "cell by cell; use `sctranslator.pp.pair_modalities` first."
                )
            proteins[name] = _dense(prot_data)
        else:
            proteins[name] = AnnData(
                X=np.full((rna_data.n_obs, 0), np.nan, dtype=np.float32),
                obs=pd.DataFrame(index=rna_data.obs_names),
            )
        obs.append(mdata.obs.loc[rna_data.obs_names].assign(**{label: name}))
    check_unique(pd.Index(np.concatenate([a.obs_names for a in rnas.values()])), what="cell")
    joined_rna = _outer(rnas, label)
    joined_rna.uns[PANELS_KEY] = {name: list(map(str, a.var_names)) for name, a in rnas.items()}
    joined_protein = _outer(proteins, label)
    joined_protein.uns[PANELS_KEY] = {
        name: list(map(str, a.var_names)) for name, a in proteins.items()
    }
    # proteins named like their genes
    with no_pull(), shared_var_names((joined_rna, joined_protein)):
        joined = MuData({rna: joined_rna, protein: joined_protein})
    obs = pd.concat(obs, join="outer").loc[joined_rna.obs_names]
    joined.obs = obs.loc[:, ~obs.columns.str.startswith("_scvi_")]  # registrations stay behind
    joined.obs[label] = pd.Categorical(joined.obs[label], categories=list(datasets))
    logger.info(
        "Concatenated %d datasets: %d cells, %d genes, %d proteins (NaN = unmeasured).",
        len(datasets),
        joined.n_obs,
        joined_rna.n_vars,
        joined_protein.n_vars,
    )
    return joined


def _dense(adata: AnnData) -> AnnData:
    """Copy ``.X`` and the layers as dense ``float32`` (no ``obsm``/``uns``)."""

    def dense(matrix) -> np.ndarray:
        return np.concatenate([b for _, b in iter_row_chunks(matrix)]).astype(np.float32)

    return AnnData(
        X=None if adata.X is None else dense(adata.X),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(index=adata.var_names.astype(str)),
        layers={key: dense(value) for key, value in adata.layers.items()},
    )


def _outer(parts: dict[str, AnnData], label: str) -> AnnData:
    joined = ad.concat(parts, join="outer", fill_value=np.nan, label=label, index_unique=None)
    joined.obs[label] = joined.obs[label].astype(str)
    return joined
