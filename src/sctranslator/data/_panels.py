"""Multi-panel collections: where NaN in the RNA means "gene not measured"."""

from __future__ import annotations

from anndata import AnnData

PANELS_KEY = "sctranslator_panels"
"""Key in the RNA ``uns`` that :func:`sctranslator.pp.concat_panels` writes: dataset -> genes."""


def allows_missing_genes(rna: AnnData) -> bool:
    """Whether NaN in ``rna`` marks unmeasured genes (it was built by ``concat_panels``).

    Everywhere else NaN in RNA counts is refused as an error, never read as zero.
    """
    return PANELS_KEY in rna.uns
