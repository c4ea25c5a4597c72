"""Gene x protein importance from the model: attention and gradient x input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from ._utils import check_data, check_free, check_model, target

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR


def interactions(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
    *,
    genes: Sequence[str] | None = None,
    proteins: Sequence[str] | None = None,
    method: str = "gradient",
    indices: Sequence[int] | None = None,
    batch_size: int | None = None,
    key_added: str | None = "sct_interactions",
    overwrite: bool = False,
    copy: bool = False,
) -> pd.DataFrame | AnnData | MuData:
    """Score the importance of each gene for each protein, averaged over cells.

    ``method="gradient"`` (default): gradient x input, ``x * d(prediction) / d(x)`` for the RNA
    count ``x`` of each gene, i.e. the change of the predicted protein (in training standard
    deviations) for a relative change of the gene's count. Signed: positive when more RNA
    raises the protein. A gene with zero counts in a cell counts 0 there. One backward pass
    per protein and batch of cells, so ask for few proteins or cells (``indices``) on large
    data.

    ``method="attention"``: the attention flowing from each protein query to each gene token
    (:meth:`~sctranslator.module.TranslatorModule.gene_attention`: the query's weights over
    the cell token and latents times their read-in weights over the genes, averaged over
    heads), the cell token as a key left out. A gene outside a cell's context (see
    ``max_genes``) counts 0 in that cell. Non-negative; the weights of one protein sum to at
    most 1 per cell. Attention says where the query reads, not how the prediction depends
    on a gene.

    The scores are those of :meth:`~sctranslator.SCTRANSLATOR.get_gene_attributions`. How
    well each method recovers known gene-protein pairs is measured by
    ``benchmarks/downstream.py`` (results in ``benchmarks/results/downstream.md`` and
    ``docs/benchmarks.md``).

    Parameters
    ----------
    data
        AnnData or MuData with RNA counts, as for
        :meth:`~sctranslator.SCTRANSLATOR.predict_protein` (the model's registered RNA layer,
        e.g. ``X`` for a model set up with ``rna_layer=None``).
    model
        A trained :class:`~sctranslator.SCTRANSLATOR`.
    genes
        Genes (rows) to report; all genes of ``data`` known to the model by default.
    proteins
        Proteins (columns); the model's proteins by default.
    method
        ``"gradient"`` or ``"attention"``.
    indices
        Cells to average over; all by default.
    batch_size
        Cells per batch.
    key_added
        Store the table in ``data.uns[key_added]``; ``None`` to store nothing.
    overwrite
        Replace an existing ``uns`` entry.
    copy
        Write into a copy of ``data`` and return the copy instead of the table.

    Returns
    -------
    DataFrame of genes by proteins (also in ``uns[key_added]``); the annotated copy of
    ``data`` instead when ``copy``.

    Examples
    --------
    >>> table = sct.tl.interactions(mdata, model, proteins=["CD8", "CD20"])
    >>> table["CD20"].nlargest(5)
    >>> sct.pl.interaction_heatmap(mdata)  # reads uns["sct_interactions"]
    """
    check_data(data, "interactions")
    check_model(model)
    if copy and key_added is None:
        raise ValueError("copy=True writes the table into a copy; pass a `key_added`.")
    if key_added is not None:
        check_free(data, {"uns": [key_added]}, overwrite)
    table = model.get_gene_attributions(
        data, proteins=proteins, method=method, indices=indices, batch_size=batch_size
    )
    table = table.iloc[_gene_rows(table.index, genes)]
    if key_added is not None:
        annotated = target(data, copy)
        annotated.uns[key_added] = table
        if copy:
            return annotated
    return table


def _gene_rows(panel: pd.Index, genes: Sequence[str] | None) -> np.ndarray:
    if genes is None:
        return np.arange(len(panel))
    genes = list(genes)
    missing = [g for g in genes if g not in panel]
    if missing:
        raise ValueError(
            f"{len(missing)} genes are not in the data's genes known to the model: {missing[:5]}."
        )
    return panel.get_indexer(genes)
