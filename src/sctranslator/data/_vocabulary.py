"""Token vocabulary shared by RNA genes and protein targets."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

UNKNOWN = -1
_PANEL_SUFFIX = re.compile(r"(_|\s)(totalseq[abc]?|total[abc]|adt|antibody|prot(ein)?)$", re.I)
_CLONE_SUFFIX = re.compile(r"[-_.]\d$")
_ENSEMBL = re.compile(r"^(ENS[A-Z]*G\d{11})(\.\d+)?$", re.I)
ENSEMBL_COLUMNS = ("gene_ids", "gene_id", "ensembl_id", "ensembl_gene_id", "gene_ensembl")


@cache
def protein_aliases() -> pd.DataFrame:
    """Return the antibody table shipped with the package.

    One row per antibody target, with the vocabulary ``token`` it predicts (the HGNC symbol
    of its coding gene, or a dedicated token for isoforms, complexes and glycans), its coding
    ``genes`` and the ``aliases`` panels use for it. Source: hand-curated from HGNC symbols
    and HCDM CD designations (see the comment lines of ``protein_aliases.tsv``).

    Returns
    -------
    DataFrame indexed by antibody name with columns ``token``, ``genes`` and ``aliases``.
    """
    path = resources.files("sctranslator.data") / "protein_aliases.tsv"
    with path.open() as fh:
        table = pd.read_csv(fh, sep="\t", comment="#", dtype=str, keep_default_na=False)
    return table.set_index("antibody")


@cache
def gene_aliases() -> dict[str, str]:
    """Previous HGNC symbols still used in public data, mapped to the approved symbol.

    Source: HGNC "previous symbols", hand-curated for renamed genes found in the data this
    package uses (see the comment lines of ``gene_aliases.tsv``); e.g. ``SEPT7`` is
    ``SEPTIN7`` and ``C10orf54`` is ``VSIR``.

    Returns
    -------
    Dict from upper-case alias to approved symbol.

    Examples
    --------
    >>> gene_aliases()["SEPT7"]
    'SEPTIN7'
    """
    path = resources.files("sctranslator.data") / "gene_aliases.tsv"
    with path.open() as fh:
        table = pd.read_csv(fh, sep="\t", comment="#", dtype=str, keep_default_na=False)
    pairs = zip(table["alias"], table["symbol"], strict=True)
    return {alias.upper(): symbol for alias, symbol in pairs}


@cache
def _alias_to_token() -> dict[str, str]:
    mapping = {}
    for antibody, row in protein_aliases().iterrows():
        for alias in [antibody, *filter(None, row["aliases"].split("|"))]:
            mapping[alias.upper()] = row["token"]
    return mapping


class Vocabulary:
    """Ordered set of tokens: gene symbols and dedicated protein tokens.

    Token ids are positions in :attr:`tokens`. Lookup is case-insensitive. Gene names are
    tried as given, then as previous HGNC symbols (:func:`gene_aliases`), then as Ensembl gene
    IDs (with or without version) where the vocabulary has recorded them
    (:meth:`with_ensembl`). Protein names are resolved through the shipped antibody table
    (:func:`protein_aliases`), so ``cd3.1``, ``CD3_TotalSeqB`` and ``CD3`` all reach the
    token ``CD3E``. Nothing is guessed: a name none of these resolve is unknown (``-1``).

    Parameters
    ----------
    tokens
        Unique token names.
    ensembl
        Ensembl gene ID (without version) to token name, for genes the data identified.

    Examples
    --------
    >>> vocab = Vocabulary(["CD3E", "CD4", "MS4A1", "SEPTIN7"])
    >>> vocab.lookup_genes(["cd4", "XIST", "SEPT7"])
    array([ 1, -1,  3])
    >>> vocab.lookup_proteins(["CD3-1", "CD20_TotalSeqB"])
    array([0, 2])
    """

    def __init__(self, tokens: Sequence[str], ensembl: Mapping[str, str] | None = None):
        tokens = [str(t) for t in tokens]
        keys = [t.upper() for t in tokens]
        if len(set(keys)) != len(keys):
            dup = pd.Index(keys)[pd.Index(keys).duplicated()].unique().tolist()
            raise ValueError(f"Vocabulary tokens must be unique (case-insensitive): {dup[:5]}")
        self.tokens = tokens
        self._index = {k: i for i, k in enumerate(keys)}
        self.ensembl = {str(k).upper(): str(v) for k, v in (ensembl or {}).items()}
        missing = sorted(set(self.ensembl.values()) - set(tokens))
        if missing:
            raise ValueError(f"Ensembl IDs point to tokens that do not exist: {missing[:5]}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, name: str) -> bool:
        return str(name).upper() in self._index

    def __repr__(self) -> str:
        return f"Vocabulary with {len(self)} tokens"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.tokens == other.tokens
            and self.ensembl == other.ensembl
        )

    def __getstate__(self) -> dict:
        return {"tokens": self.tokens, "ensembl": self.ensembl}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tokens"], state.get("ensembl"))

    @classmethod
    def from_panels(cls, genes: Iterable[str], proteins: Iterable[str] = ()) -> Vocabulary:
        """Build a vocabulary from a gene panel and a protein panel.

        Genes become tokens as named; proteins become the token the antibody table gives
        them, or a token of their own name when the table does not know them.
        """
        tokens = dict.fromkeys(map(str, genes))
        tokens.update(dict.fromkeys(resolve_protein_token(p) for p in proteins))
        seen, unique = set(), []
        for token in tokens:
            if token.upper() not in seen:
                seen.add(token.upper())
                unique.append(token)
        return cls(unique)

    def extend(self, names: Iterable[str]) -> Vocabulary:
        """Return a new vocabulary with ``names`` appended where no token resolves them.

        A name that is an alias or Ensembl ID of an existing token adds nothing. The existing
        tokens keep their ids, so a model's weights stay valid for the first tokens.
        """
        names = list(dict.fromkeys(map(str, names)))
        known = self.lookup_genes(names) != UNKNOWN
        new, seen = [], set()
        for name, is_known in zip(names, known, strict=True):
            if not is_known and name.upper() not in seen:
                seen.add(name.upper())
                new.append(name)
        return Vocabulary(self.tokens + new, self.ensembl)

    def with_ensembl(self, symbols: Iterable[str], ensembl_ids: Iterable[str]) -> Vocabulary:
        """Return a new vocabulary that also knows genes by their Ensembl gene IDs.

        Pairs whose symbol is not a token, or whose ID is missing or not an Ensembl gene ID,
        are skipped; versions (``ENSG00000010610.10``) are dropped. An ID recorded before keeps
        its token.

        Examples
        --------
        >>> vocab = Vocabulary(["CD4"]).with_ensembl(["CD4"], ["ENSG00000010610"])
        >>> vocab.lookup_genes(["ENSG00000010610.10"])
        array([0])
        """
        mapping = dict(self.ensembl)
        for symbol, ensembl_id in zip(symbols, ensembl_ids, strict=True):
            match = _ENSEMBL.match(str(ensembl_id))
            token_id = self._index.get(str(symbol).upper(), UNKNOWN)
            if match and token_id != UNKNOWN:
                mapping.setdefault(match.group(1).upper(), self.tokens[token_id])
        return Vocabulary(self.tokens, mapping)

    def with_ensembl_from(self, var: pd.DataFrame) -> Vocabulary:
        """Record the Ensembl IDs of a ``var`` table whose index holds gene symbols.

        The first column among :data:`ENSEMBL_COLUMNS` (10x's ``gene_ids``...) is used; the
        vocabulary is returned unchanged when there is none.
        """
        column = next((c for c in ENSEMBL_COLUMNS if c in var.columns), None)
        if column is None:
            return self
        return self.with_ensembl(var.index, var[column].astype(str))

    def lookup_genes(self, names: Iterable[str]) -> np.ndarray:
        """Token ids of gene symbols, previous symbols or Ensembl IDs; ``-1`` where unknown."""
        return np.array([self._lookup_gene(str(n).upper()) for n in names], dtype=np.int64)

    def _lookup_gene(self, key: str) -> int:
        token_id = self._index.get(key, UNKNOWN)
        if token_id == UNKNOWN and key in gene_aliases():
            token_id = self._index.get(gene_aliases()[key].upper(), UNKNOWN)
        if token_id == UNKNOWN and (match := _ENSEMBL.match(key)):
            token = self.ensembl.get(match.group(1))
            token_id = UNKNOWN if token is None else self._index[token.upper()]
        return token_id

    def lookup_proteins(self, names: Iterable[str]) -> np.ndarray:
        """Token ids of protein (antibody) names, ``-1`` where unknown."""
        ids = []
        for name in names:
            token_id = self._lookup_gene(str(name).upper())
            if token_id == UNKNOWN:
                token_id = self._lookup_gene(resolve_protein_token(name).upper())
            ids.append(token_id)
        return np.array(ids, dtype=np.int64)


def resolve_protein_token(name: str) -> str:
    """Token of an antibody name.

    Tries the name, then the name without a panel suffix (``_TotalSeqB``, ``_ADT``), then
    without a clone suffix (``-1``, ``.2``), against the antibody table; a name it does not
    know stays its own token.
    """
    token = antibody_token(name)
    return str(name) if token is None else token


def antibody_token(name: str) -> str | None:
    """Token the antibody table gives ``name`` (as :func:`resolve_protein_token`), else None.

    Examples
    --------
    >>> antibody_token("CD3_TotalSeqB"), antibody_token("not-an-antibody")
    ('CD3E', None)
    """
    aliases = _alias_to_token()
    candidate = str(name).strip()
    for strip in (None, _PANEL_SUFFIX, _CLONE_SUFFIX):
        if strip is not None:
            candidate = strip.sub("", candidate)
        token = aliases.get(candidate.upper())
        if token is not None:
            return token
    return None


def protein_coding_genes(token: str) -> list[str]:
    """Coding genes of a protein token, from the antibody table; ``[]`` when it has none.

    A dedicated token (``CD45RA``) gives its genes (``PTPRC``); a token that is a gene
    symbol and not in the table gives itself.

    Examples
    --------
    >>> protein_coding_genes("CD45RA")
    ['PTPRC']
    """
    table = protein_aliases()
    rows = table[table["token"].str.upper() == str(token).upper()]
    if rows.empty:
        return [str(token)]
    return sorted({g for genes in rows["genes"] for g in genes.split(";") if g})


def report_unknown(names: Sequence[str], ids: np.ndarray, what: str) -> None:
    """Log how many ``names`` have no token, with examples."""
    unknown = [n for n, i in zip(names, ids, strict=True) if i == UNKNOWN]
    if unknown:
        logger.warning(
            "%d of %d %s are not in the model's vocabulary and are ignored, e.g. %s",
            len(unknown),
            len(names),
            what,
            ", ".join(map(str, unknown[:5])),
        )
