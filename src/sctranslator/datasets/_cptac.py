"""Reader of the bulk CPTAC endometrial carcinoma RNA/proteome cohort."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import UNKNOWN, Vocabulary

logger = logging.getLogger(__name__)

_FILES = {
    "rna": "transcriptomics_linear.cct.gz",
    "prot": "proteomics.cct.gz",
    "clinical": "clinical.txt",
}
_CLINICAL = ["Proteomics_Tumor_Normal", "Histologic_type", "FIGO_stage", "Tumor_purity"]


def cptac_ucec_bulk(
    path: str | os.PathLike,
    *,
    genes: Sequence[str] | None = None,
    proteins: Sequence[str] | None = None,
) -> MuData:
    """Bulk RNA and proteome of the CPTAC uterine corpus endometrial carcinoma cohort.

    Dou et al., Cell 2020, as shipped in the ``cptac`` 0.4.1 wheel (Apache-2.0), folder
    ``cptac/endometrial/data/``; the package does not ship it, ``path`` points to the folder
    with ``transcriptomics_linear.cct.gz`` and ``proteomics.cct.gz`` (tab-separated, genes in
    rows). The ~115 samples with both are returned, one "cell" per sample, for bulk
    pre-training (stage 1 of scTranslator).

    Scales: the RNA file holds log2 expression (0-23) and the proteome log2 ratios to the
    TMT reference pool (negative and positive, ~11% missing). Neither is a count, so both are
    returned on a linear scale that the model's normalisations read correctly: RNA
    ``2**v - 1`` (per-sample totals then drive ``log1p_cp10k`` like library sizes) and
    proteins ``2**r``, the ratio to the reference (use ``protein_normalization="log1p"``;
    the model standardises every protein across samples). Missing proteins stay NaN. The
    original values are kept in the layers ``log2`` (RNA) and ``log2_ratio`` (proteins).

    Parameters
    ----------
    path
        Folder with the CPTAC files.
    genes
        Keep only these RNA genes (e.g. the downstream single-cell panel); with 28,057 genes
        the context limit would otherwise keep housekeeping genes. Matched through the
        vocabulary rules (case, previous HGNC symbols) and renamed to the names given.
    proteins
        Keep only these proteins (gene symbols), matched and renamed the same way.

    Returns
    -------
    MuData with modalities ``rna`` and ``prot`` (``X`` and ``layers["counts"]`` linear, as
    above) and ``obs`` with ``batch`` (``"CPTAC-UCEC"``) and clinical columns.

    Examples
    --------
    >>> pbmc = sct.datasets.pbmc_cite_mini()
    >>> bulk = sct.datasets.cptac_ucec_bulk(
    ...     "cptac_wheel/cptac/endometrial/data", genes=pbmc["rna"].var_names
    ... )
    """
    folder = Path(path)
    missing = [f for f in (_FILES["rna"], _FILES["prot"]) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the CPTAC files {missing}.")
    rna = _read_matrix(folder / _FILES["rna"], genes, "genes")
    prot = _read_matrix(folder / _FILES["prot"], proteins, "proteins")
    samples = rna.columns.intersection(prot.columns, sort=False)
    if len(samples) == 0:
        raise ValueError(f"The RNA and proteome files of {folder} share no sample.")
    obs = pd.DataFrame({"batch": "CPTAC-UCEC"}, index=pd.Index(samples, name=None))
    if (folder / _FILES["clinical"]).is_file():
        clinical = pd.read_csv(
            folder / _FILES["clinical"], sep="\t", index_col=0, encoding="latin-1"
        )
        obs = obs.join(clinical[[c for c in _CLINICAL if c in clinical]])
    obs["batch"] = obs["batch"].astype("category")
    rna_log = rna[samples].T.to_numpy(np.float32)
    prot_log = prot[samples].T.to_numpy(np.float32)
    rna_linear = np.exp2(rna_log) - 1
    prot_linear = np.exp2(prot_log)
    modalities = {
        "rna": AnnData(
            X=rna_linear,
            obs=obs[[]].copy(),
            var=pd.DataFrame(index=rna.index),
            layers={"counts": rna_linear.copy(), "log2": rna_log},
        ),
        "prot": AnnData(
            X=prot_linear,
            obs=obs[[]].copy(),
            var=pd.DataFrame(index=prot.index),
            layers={"counts": prot_linear.copy(), "log2_ratio": prot_log},
        ),
    }
    with no_pull(), shared_var_names(modalities.values()):  # proteins named by their genes
        mdata = MuData(modalities)
    mdata.obs = obs
    return mdata


def _read_matrix(file: Path, keep: Sequence[str] | None, what: str) -> pd.DataFrame:
    """Features x samples; with ``keep``, the features resolving to it, renamed to it."""
    table = pd.read_csv(file, sep="\t", index_col=0)
    table.index = table.index.astype(str)
    table = table[~table.index.duplicated()]
    if keep is None:
        return table
    names = list(dict.fromkeys(map(str, keep)))
    ids = Vocabulary(names).lookup_genes(table.index)
    found = ids != UNKNOWN
    table, ids = table[found], ids[found]
    exact = np.array(
        [n.upper() == names[i].upper() for n, i in zip(table.index, ids, strict=True)]
    )
    order = np.argsort(~exact, kind="stable")  # an exact name wins over a previous symbol
    table = table.iloc[order]
    table.index = [names[i] for i in ids[order]]
    table = table[~table.index.duplicated()]
    absent = [n for n in names if n not in table.index]
    logger.info(
        "%s: kept %d of the %d requested %s; %d not in the file (e.g. %s).",
        file.name,
        len(table),
        len(names),
        what,
        len(absent),
        ", ".join(absent[:5]),
    )
    return table
