"""Token vocabulary shared by RNA genes and protein targets."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

UNKNOWN = -1
_PANEL_SUFFIX = re.compile(r"(_|\s)(totalseq[abc]?|total[abc]|adt|antibody|prot(ein)?)$", re.I)
_CLONE_SUFFIX = re.compile(r"[-_.]\d$")


@cache
def protein_aliases() -> pd.DataFrame:
    """The antibody table shipped with the package.

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
def _alias_to_token() -> dict[str, str]:
    mapping = {}
    for antibody, row in protein_aliases().iterrows():
        for alias in [antibody, *filter(None, row["aliases"].split("|"))]:
            mapping[alias.upper()] = row["token"]
    return mapping


class Vocabulary:
    """Ordered set of tokens: gene symbols and dedicated protein tokens.

    Token ids are positions in :attr:`tokens`. Lookup is case-insensitive. Protein names are
    resolved through the shipped antibody table (:func:`protein_aliases`), so ``cd3.1``,
    ``CD3_TotalSeqB`` and ``CD3`` all reach the token ``CD3E``.

    Parameters
    ----------
    tokens
        Unique token names.

    Examples
    --------
    >>> vocab = Vocabulary(["CD3E", "CD4", "MS4A1"])
    >>> vocab.lookup_genes(["cd4", "XIST"])
    array([ 1, -1])
    >>> vocab.lookup_proteins(["CD3-1", "CD20_TotalSeqB"])
    array([0, 2])
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = [str(t) for t in tokens]
        keys = [t.upper() for t in tokens]
        if len(set(keys)) != len(keys):
            dup = pd.Index(keys)[pd.Index(keys).duplicated()].unique().tolist()
            raise ValueError(f"Vocabulary tokens must be unique (case-insensitive): {dup[:5]}")
        self.tokens = tokens
        self._index = {k: i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, name: str) -> bool:
        return str(name).upper() in self._index

    def __repr__(self) -> str:
        return f"Vocabulary with {len(self)} tokens"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __getstate__(self) -> dict:
        return {"tokens": self.tokens}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tokens"])

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
        """Return a new vocabulary with ``names`` appended where they are not yet tokens."""
        new = [n for n in dict.fromkeys(map(str, names)) if n not in self]
        return Vocabulary(self.tokens + new)

    def lookup_genes(self, names: Iterable[str]) -> np.ndarray:
        """Token ids of gene names, ``-1`` where unknown."""
        return np.array([self._index.get(str(n).upper(), UNKNOWN) for n in names], dtype=np.int64)

    def lookup_proteins(self, names: Iterable[str]) -> np.ndarray:
        """Token ids of protein (antibody) names, ``-1`` where unknown."""
        ids = []
        for name in names:
            token_id = self._index.get(str(name).upper(), UNKNOWN)
            if token_id == UNKNOWN:
                token_id = self._index.get(resolve_protein_token(name).upper(), UNKNOWN)
            ids.append(token_id)
        return np.array(ids, dtype=np.int64)


def resolve_protein_token(name: str) -> str:
    """Token of an antibody name.

    Tries the name, then the name without a panel suffix (``_TotalSeqB``, ``_ADT``), then
    without a clone suffix (``-1``, ``.2``), against the antibody table; a name it does not
    know stays its own token.
    """
    aliases = _alias_to_token()
    candidate = str(name).strip()
    for strip in (None, _PANEL_SUFFIX, _CLONE_SUFFIX):
        if strip is not None:
            candidate = strip.sub("", candidate)
        token = aliases.get(candidate.upper())
        if token is not None:
            return token
    return str(name)


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

