"""Show how antibody names map to vocabulary tokens."""

from __future__ import annotations

import logging

import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator.data import (
    UNKNOWN,
    Vocabulary,
    antibody_token,
    get_modality,
    protein_coding_genes,
)

logger = logging.getLogger(__name__)


def map_protein_names(
    adata: AnnData | MuData, *, vocabulary: Vocabulary | None = None, mod: str = "prot"
) -> pd.DataFrame:
    """Show the token each protein (antibody) name maps to, and what did not map.

    Names are resolved through the shipped antibody table
    (:func:`sctranslator.data.protein_aliases`: panel suffixes such as ``_TotalSeqB`` and clone
    suffixes such as ``.1`` are stripped), else, with a ``vocabulary``, as a gene symbol of
    it. A name neither resolves is ``"unmapped"``: a model makes it a token of its own name
    (never a guess); the names are logged. ``adata`` is not changed.

    Parameters
    ----------
    adata
        Protein AnnData (names in ``var_names``), or a MuData with the protein modality ``mod``.
    vocabulary
        Also report each name's token id in this vocabulary (e.g. ``model.vocabulary``);
        ``-1`` is a protein the model does not know (a new token when fine-tuning).
    mod
        Protein modality of a MuData.

    Returns
    -------
    DataFrame indexed by protein name with ``token``, ``genes`` (coding genes, ``;``-joined),
    ``source`` (``"antibody table"``, ``"gene symbol"`` or ``"unmapped"``) and, with a
    vocabulary, ``token_id``.

    Examples
    --------
    >>> mdata = sct.datasets.pbmc_cite_mini()
    >>> table = sct.pp.map_protein_names(mdata)
    >>> table.loc["CD3-1", "token"]
    'CD3E'
    """
    protein = (
        get_modality(adata, mod_key=mod, what="the proteins")
        if isinstance(adata, MuData)
        else adata
    )
    rows = []
    for name in map(str, protein.var_names):
        token = antibody_token(name)
        if token is not None:
            source = "antibody table"
        elif vocabulary is not None and vocabulary.lookup_genes([name])[0] != UNKNOWN:
            token, source = vocabulary.tokens[vocabulary.lookup_genes([name])[0]], "gene symbol"
        else:
            token, source = name, "unmapped"
        genes = protein_coding_genes(token) if source != "unmapped" else []
        rows.append({"token": token, "genes": ";".join(genes), "source": source})
    table = pd.DataFrame(rows, index=pd.Index(protein.var_names.astype(str), name="protein"))
    if vocabulary is not None:
        table["token_id"] = vocabulary.lookup_proteins(table.index)
    unmapped = table.index[table["source"] == "unmapped"]
    if len(unmapped):
        logger.warning(
            "%d of %d protein names did not map to a known antibody or gene, e.g. %s",
            len(unmapped),
            len(table),
            ", ".join(unmapped[:5]),
        )
    return table
