"""Gene weights: how informative each gene is, for the module's context rule.

Fits, once, before the first training of a new model (``context="informative"``), on at most
2,048 training cells: each gene's association with the standardised proteins. Changes which
expressed genes a cell with more than ``max_genes`` keeps as tokens
(:meth:`~sctranslator.module.TranslatorModule.select_genes`). The weights are the module's
``gene_weight`` buffer (the network needs them in every forward pass), set through
:meth:`~sctranslator.module.TranslatorModule.set_gene_weights`, and saved with its weights.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def fit_gene_weights(rna: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Return the weight of each gene, from training cells' RNA and proteins.

    The weight of a gene is the root mean square, over proteins, of its Pearson correlation
    with the standardised proteins (unmeasured values count as the mean) across the cells
    with any protein measured, less the chance level ``1 / (cells - 1)`` of a squared
    correlation, and scaled to a maximum of 1. A gene unrelated to the proteins, or expressed
    alike in every cell, weighs about 0.

    Parameters
    ----------
    rna
        Normalised RNA ``(cells, genes)``; NaN (unmeasured) counts as 0.
    target
        Standardised proteins ``(cells, proteins)``, NaN where unmeasured.

    Returns
    -------
    Weights ``(genes,)``, or ``None`` with fewer than 3 cells with a measured protein.
    """
    paired = ~target.isnan().all(1)
    if int(paired.sum()) < 3:
        return None
    genes = rna[paired].nan_to_num().double()
    proteins = target[paired].nan_to_num().double()
    genes = (genes - genes.mean(0)) / genes.std(0).clamp_min(1e-8)
    proteins = (proteins - proteins.mean(0)) / proteins.std(0).clamp_min(1e-8)
    correlation = genes.T @ proteins / (len(genes) - 1)
    # A correlation squared overestimates its true value by about 1 / (cells - 1), so a gene
    # unrelated to the proteins weighs about 0, whatever the number of cells.
    weight = (correlation.square().mean(1) - 1 / (len(genes) - 1)).clamp_min(0).sqrt()
    return (weight / weight.max().clamp_min(1e-8)).float()
