"""The torch module: a gene-token encoder and protein-query cross-attention decoder."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from sctranslator.nn import (
    PROTEIN_NORMALIZATIONS,
    RNA_NORMALIZATIONS,
    AttentionBlock,
    TokenValueEmbedding,
    get_normalization,
)


class TranslatorModule(BaseModuleClass):
    """Predict protein abundances from a cell's RNA, read as a set of (gene token, value) pairs.

    Each gene becomes a token: the embedding of its identity plus an embedding of its
    normalised expression. A transformer encoder mixes the gene tokens and a cell token, which
    starts as the expression-weighted sum of the gene identities (a linear view of the whole
    profile). Each requested protein becomes a query (the embedding of its token, a learned
    "protein" vector, the encoded cell token and the batch embedding) that cross-attends to the
    encoded genes; a linear head reads one value per query. There is no positional encoding, so the gene order does
    not matter, and queries never attend to each other, so any set of proteins can be asked
    for.

    The head predicts the protein's normalised value standardised by the training mean and
    standard deviation of that protein (``protein_mean``, ``protein_std``), so every protein
    weighs the same in the loss.

    Parameters
    ----------
    n_tokens
        Size of the token vocabulary.
    gene_ids
        Token ids of the registered genes, in ``var`` order.
    protein_ids
        Token ids of the registered proteins, in column order.
    n_batch
        Number of batches; each gets an embedding added to the protein queries.
    n_hidden
        Width of every token.
    n_heads
        Attention heads.
    n_encoder_layers
        Transformer encoder layers over the gene tokens.
    n_decoder_layers
        Cross-attention layers of the protein queries.
    dropout
        Dropout rate.
    max_genes
        Context limit. A cell with more genes keeps its ``max_genes`` most expressed ones
        (ties broken by token id, so the rule does not depend on the gene order).
    rna_normalization
        Per-cell normalisation of RNA counts, one of
        :data:`~sctranslator.nn.RNA_NORMALIZATIONS`.
    protein_normalization
        Per-cell normalisation of protein counts, one of
        :data:`~sctranslator.nn.PROTEIN_NORMALIZATIONS`.
    """

    def __init__(
        self,
        n_tokens: int,
        gene_ids: torch.Tensor,
        protein_ids: torch.Tensor,
        n_batch: int = 1,
        n_hidden: int = 64,
        n_heads: int = 4,
        n_encoder_layers: int = 2,
        n_decoder_layers: int = 2,
        dropout: float = 0.1,
        max_genes: int = 256,
        rna_normalization: str = "log1p_cp10k",
        protein_normalization: str = "clr",
    ):
        super().__init__()
        self.max_genes = max_genes
        self.normalize_rna = get_normalization(rna_normalization, RNA_NORMALIZATIONS, "RNA")
        self.normalize_protein = get_normalization(
            protein_normalization, PROTEIN_NORMALIZATIONS, "protein"
        )
        n_proteins = len(protein_ids)
        self.register_buffer("gene_ids", torch.as_tensor(gene_ids), persistent=False)
        self.register_buffer("protein_ids", torch.as_tensor(protein_ids), persistent=False)
        self.register_buffer("protein_mean", torch.zeros(n_proteins))
        self.register_buffer("protein_std", torch.ones(n_proteins))
        self.register_buffer(
            "protein_batch_mask", torch.ones(n_batch, n_proteins, dtype=torch.bool), persistent=False
        )

        self.embedding = TokenValueEmbedding(n_tokens, n_hidden)
        self.cell_norm = nn.LayerNorm(n_hidden)
        self.cell_to_query = nn.Linear(n_hidden, n_hidden)
        self.query_token = nn.Parameter(torch.randn(n_hidden) * 0.02)
        self.batch_embedding = nn.Embedding(n_batch, n_hidden)
        nn.init.zeros_(self.batch_embedding.weight)
        self.encoder = nn.ModuleList(
            [AttentionBlock(n_hidden, n_heads, dropout) for _ in range(n_encoder_layers)]
        )
        self.encoder_norm = nn.LayerNorm(n_hidden)
        self.decoder = nn.ModuleList(
            [AttentionBlock(n_hidden, n_heads, dropout, cross=True) for _ in range(n_decoder_layers)]
        )
        self.head = nn.Sequential(nn.LayerNorm(n_hidden), nn.Linear(n_hidden, 1))

    def select_genes(
        self, gene_ids: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the context limit: per cell, the ``max_genes`` most expressed genes.

        Returns
        -------
        Token ids and values, both ``(cells, min(genes, max_genes))``.
        """
        n_cells, n_genes = values.shape
        if n_genes <= self.max_genes:
            return gene_ids.expand(n_cells, n_genes), values
        canonical = torch.argsort(gene_ids)
        gene_ids, values = gene_ids[canonical], values[:, canonical]
        keep = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.max_genes]
        return gene_ids[keep], values.gather(1, keep)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    @auto_move_data
    def inference(
        self, x: torch.Tensor, gene_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode RNA counts ``x`` ``(cells, genes)`` of genes ``gene_ids`` (default: registered).

        Returns
        -------
        ``context``: the encoded tokens ``(cells, 1 + genes, n_hidden)``, the cell token first;
        ``z``: the cell token, the cell's latent representation.
        """
        gene_ids = self.gene_ids if gene_ids is None else gene_ids
        token_ids, values = self.select_genes(gene_ids, self.normalize_rna(x))
        tokens = self.embedding(token_ids, values)
        cell = self.cell_norm(self.embedding.pool(token_ids, values)).unsqueeze(1)
        context = torch.cat([cell, tokens], dim=1)
        for block in self.encoder:
            context, _ = block(context)
        context = self.encoder_norm(context)
        return {"context": context, "z": context[:, 0]}

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {
            "context": inference_outputs["context"],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
        }

    def query_batch_embedding(self, batch_index: torch.Tensor | None, n_cells: int) -> torch.Tensor:
        """Batch embedding per cell; the mean over training batches where ``batch_index`` is None."""
        if batch_index is None:
            return self.batch_embedding.weight.mean(0).expand(n_cells, -1)
        return self.batch_embedding(batch_index.long().view(-1))

    @auto_move_data
    def generative(
        self,
        context: torch.Tensor,
        batch_index: torch.Tensor | None = None,
        protein_ids: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predict standardised protein values for the queries ``protein_ids``.

        Returns
        -------
        ``protein``: ``(cells, proteins)``; with ``return_attention``, also ``attention``: the
        last layer's head-averaged weights ``(cells, proteins, 1 + genes)``.
        """
        protein_ids = self.protein_ids if protein_ids is None else protein_ids
        n_cells = len(context)
        cell = self.cell_to_query(context[:, 0]) + self.query_batch_embedding(batch_index, n_cells)
        query = self.embedding.identity(protein_ids) + self.query_token
        query = query.unsqueeze(0) + cell.unsqueeze(1)
        attention = None
        for block in self.decoder:
            query, attention = block(query, context, return_attention)
        outputs = {"protein": self.head(query).squeeze(-1)}
        if return_attention:
            outputs["attention"] = attention
        return outputs

    def standardized_target(
        self, protein: torch.Tensor, batch_index: torch.Tensor
    ) -> torch.Tensor:
        """Normalised, standardised protein targets; NaN where unmeasured.

        A protein is unmeasured where its count is NaN, and in every cell of a batch where it
        is zero throughout (:attr:`protein_batch_mask`).
        """
        measured = self.protein_batch_mask[batch_index.long().view(-1)]
        protein = torch.where(measured, protein, torch.nan)
        return (self.normalize_protein(protein) - self.protein_mean) / self.protein_std

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
    ) -> LossOutput:
        """Mean squared error over the measured proteins; unmeasured ones are masked out."""
        target = self.standardized_target(
            tensors[REGISTRY_KEYS.PROTEIN_EXP_KEY], tensors[REGISTRY_KEYS.BATCH_KEY]
        )
        measured = ~torch.isnan(target)
        error = torch.where(measured, generative_outputs["protein"] - target, 0.0) ** 2
        n_measured = measured.sum(dim=1)
        per_cell = error.sum(dim=1) / n_measured.clamp_min(1)
        mse = error.sum() / n_measured.sum().clamp_min(1)
        return LossOutput(
            loss=mse,
            reconstruction_loss=per_cell,
            n_obs_minibatch=len(target),
            extra_metrics={"mse": mse.detach()},
        )

    @torch.inference_mode()
    def sample(self, *args, **kwargs):
        """Not defined: the model is a deterministic regressor."""
        raise NotImplementedError("TranslatorModule predicts means; it has no sampling.")
