"""The embedded PBMC CITE-seq demo data."""

from __future__ import annotations

from importlib import resources

import mudata as md
import numpy as np
import pandas as pd
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import resolve_protein_token
from sctranslator.pp import pair_modalities


def pbmc_cite_mini(*, paired: bool = True) -> MuData:
    """Real human PBMC CITE-seq cells: 500 genes and 224 antibodies, in four batches.

    A subset of the Seurat v4 PBMC CITE-seq atlas :cite:p:`Hao2021` (GEO GSE164378), as
    shipped in the ``scmidas`` 0.3.0 wheel (MIT licence) as ``quickstart_pbmc_mosaic.h5mu``.
    1,600 cells in 4 batches of 400: ``p1_0`` RNA only, ``p2_0`` protein only, ``p3_0`` and
    ``p4_0`` paired. RNA: 500 highly variable genes, raw counts. Protein: 224 TotalSeq-A
    antibodies, raw counts. ``obs``: ``batch`` and ``celltype``.

    The source's R-style antibody names (``cd3.1``, ``hla.dr``) are mapped to standard names
    (``CD3-1``, ``HLA-DR``); ``var`` keeps ``source_name`` and adds the vocabulary ``token``.
    Both modalities hold their raw counts in ``X`` and in ``layers["counts"]``.

    Parameters
    ----------
    paired
        If ``True``, the 1,200 RNA cells with their proteins, NaN for the RNA-only batch
        ``p1_0`` (see :func:`~sctranslator.pp.pair_modalities`); the protein-only batch is left
        out. If ``False``, the 1,600-cell mosaic as shipped.

    Returns
    -------
    MuData with modalities ``rna`` and ``prot``.

    Examples
    --------
    >>> mdata = sct.datasets.pbmc_cite_mini()
    >>> mdata["prot"].var.loc["HLA-DR", "token"]
    'HLA-DR'
    """
    files = resources.files("sctranslator.datasets")
    with resources.as_file(files / "quickstart_pbmc_mosaic.h5mu") as path, no_pull():
        source = md.read_h5mu(path)
    with (files / "pbmc_adt_names.tsv").open() as fh:
        names = pd.read_csv(fh, sep="\t", index_col="source_name")
    rna, prot = source["rna"], source["adt"]
    prot.var["source_name"] = prot.var_names
    prot.var_names = names.loc[prot.var_names, "name"].to_numpy()
    prot.var["token"] = [
        resolve_protein_token(a) for a in names.loc[prot.var["source_name"], "antibody"]
    ]
    for data in (rna, prot):
        data.X = data.X.astype(np.float32)
        data.layers["counts"] = data.X.copy()
    # 13 antibodies are named like their genes (CD9)
    with no_pull(), shared_var_names((rna, prot)):
        mosaic = MuData({"rna": rna, "prot": prot})
    mosaic.obs = source.obs[["batch", "celltype"]].copy()
    return pair_modalities(mosaic, rna="rna", protein="prot") if paired else mosaic
