"""Gene x protein importance from the model: attention and gradient x input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS

from sctranslator.data._vocabulary import UNKNOWN

from ._utils import check_free, check_model, data_first, target

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR

METHODS = ("gradient", "attention")


def interactions(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
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
    data. On the PBMC cells, a small model ranks the own gene of well-predicted markers high
    with it (e.g. CD79B for CD79b, KLRB1 for CD161), but over all protein-gene pairs of the
    panel it is close to chance; see ``benchmarks/downstream.py``.

    ``method="attention"``: the attention flowing from each protein query to each gene token
    (:meth:`~sctranslator.module.TranslatorModule.gene_attention`: the query's weights over
    the cell token and latents times their read-in weights over the genes, averaged over
    heads), the cell token as a key left out. A gene outside a cell's context (see
    ``max_genes``) counts 0 in that cell. Non-negative; the weights of one protein sum to at
    most 1 per cell. Attention says where the query
    reads, not how the prediction depends on a gene: on the PBMC cells it ranks own genes
    no better than chance (``benchmarks/downstream.py``).

    Parameters
    ----------
    data
        AnnData or MuData with RNA counts, as for
        :meth:`~sctranslator.SCTRANSLATOR.predict_protein` (the model's registered RNA layer,
        e.g. ``X`` for a model set up with ``rna_layer=None``). The old order
        ``interactions(model, data)`` still works for one release, with a
        :class:`FutureWarning`.
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
    """
    data, model = data_first(data, model, "interactions")
    check_model(model)
    if copy and key_added is None:
        raise ValueError("copy=True writes the table into a copy; pass a `key_added`.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if key_added is not None:
        check_free(data, {"uns": [key_added]}, overwrite)
    # private: no public method yields the model's RNA batches on its known genes
    query = model._query(data, indices)
    if proteins is None:
        proteins = model.get_state_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY).column_names
    names = [str(name) for name in proteins]
    protein_ids = model.vocabulary.lookup_proteins(names)
    if (protein_ids == UNKNOWN).any():
        unknown = [n for n, i in zip(names, protein_ids, strict=True) if i == UNKNOWN]
        raise ValueError(
            f"{len(unknown)} proteins are not in the model's vocabulary: {unknown[:5]}."
        )
    panel = pd.Index(query.var_names[query.columns])
    rows = _gene_rows(panel, genes)

    module, device = model.module, model.device
    module.eval()
    gene_ids = torch.as_tensor(query.gene_ids, device=device)
    protein_ids = torch.as_tensor(protein_ids, device=device)
    attribute = _gradient_x_input if method == "gradient" else _attention
    total = torch.zeros(len(names), len(panel), dtype=torch.float64)
    for x in query.batches(batch_size)[1]:
        total += attribute(module, x.to(device), gene_ids, protein_ids).cpu()
    table = pd.DataFrame(
        (total / len(query.rows)).numpy().T, index=panel, columns=pd.Index(names)
    ).iloc[rows]
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


@torch.inference_mode()
def _attention(
    module, x: torch.Tensor, gene_ids: torch.Tensor, protein_ids: torch.Tensor
) -> torch.Tensor:
    """Attention summed over cells, ``(proteins, genes)`` in the columns of ``x``."""
    attention, tokens, _ = module.gene_attention(x, gene_ids, protein_ids)
    position = torch.full((int(gene_ids.max()) + 1,), -1, device=x.device)
    position[gene_ids] = torch.arange(len(gene_ids), device=x.device)
    index = position[tokens].unsqueeze(1).expand(-1, len(protein_ids), -1)
    per_cell = torch.zeros(len(x), len(protein_ids), len(gene_ids), device=x.device)
    per_cell.scatter_add_(2, index, attention.float())
    return per_cell.sum(0).double()


def _gradient_x_input(
    module, x: torch.Tensor, gene_ids: torch.Tensor, protein_ids: torch.Tensor
) -> torch.Tensor:
    """Gradient x input summed over cells, ``(proteins, genes)``."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        encoded = module.inference(x, gene_ids=gene_ids)
        prediction = module.generative(encoded["context"], None, protein_ids)["protein"]
        rows = []
        for j in range(len(protein_ids)):
            (grad,) = torch.autograd.grad(
                prediction[:, j].sum(), x, retain_graph=j < len(protein_ids) - 1
            )
            rows.append((grad * x).detach().sum(0))
    return torch.stack(rows).double()
