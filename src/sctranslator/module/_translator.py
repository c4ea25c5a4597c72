"""The torch module: a Perceiver-style gene-token encoder and a protein-query read-out."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn
from torch.utils.checkpoint import checkpoint

from sctranslator.nn import (
    RNA_NORMALIZATIONS,
    AttentionBlock,
    MultiHeadAttention,
    TokenValueEmbedding,
    get_normalization,
)

from ._weights import WeightsMixin

# How a cell with more than max_genes expressed genes chooses its tokens (select_genes).
CONTEXTS = ("informative", "expressed")


class TranslatorModule(WeightsMixin, BaseModuleClass):
    """Predict protein abundances from a cell's RNA, read as a set of (gene token, value) pairs.

    Each expressed gene becomes a token: the embedding of its identity plus an embedding of
    its normalised expression. A cell token, the expression-weighted sum of the gene
    identities (a linear view of the whole profile, standardised by a learned scale and
    shift), and ``n_latents`` learned latent tokens **read** the gene tokens through one
    cross-attention block (as in Perceiver), then a transformer encoder mixes these few
    tokens. Each requested protein becomes a query (its token's embedding plus a learned
    "protein" vector) that attends to the encoded tokens; its value is the dot product of the
    protein token's identity embedding with the cell token plus what the query attended to
    and the batch embedding, plus a per-token bias.

    Before the first training, :meth:`initialize_from_data` sets the gene identities to the
    loadings of a PCA of the training RNA, so the cell token starts as the cell's principal
    components (the representation on which ridge and kNN regressions do well with few
    cells), and standardises it.

    Cost per cell is linear in its number of tokens (read-in) and in the number of proteins
    (read-out), with no per-protein feed-forward network; there is no positional encoding,
    so the gene order does not matter, and queries never attend to each other, so any set of
    proteins can be asked for.

    The read-out predicts each protein standardised (the model's
    :class:`~sctranslator.components.PanelStatistics` give the scale), so every protein
    weighs the same in the loss, whose targets the training plan provides. The module holds
    the network's parameters and, as buffers, the gene weights of its context rule
    (:meth:`set_gene_weights`) and whether it was started from data (``initialized``);
    everything else fitted around training belongs to the model
    (:mod:`sctranslator.components`).

    Parameters
    ----------
    n_tokens
        Size of the token vocabulary.
    gene_ids
        Token ids of the registered genes, in ``var`` order; a negative id marks a gene that is
        not read (see :meth:`read_registered_genes`).
    protein_ids
        Token ids of the registered proteins, in column order.
    n_batch
        Number of batches; each gets an embedding added to the cell state.
    n_hidden
        Width of every token.
    n_heads
        Attention heads.
    n_latents
        Latent tokens that read a cell's gene tokens.
    n_encoder_layers
        Transformer encoder layers over the cell token and the latents.
    dropout
        Dropout rate.
    max_genes
        Context limit: a cell's tokens are its expressed genes, at most ``max_genes`` of
        them, the most expressed first (see :meth:`select_genes`).
    context
        ``"informative"``: "most expressed" weighs values by :attr:`gene_weight`, fitted
        before the first training; ``"expressed"``: the weights stay 1.
    gene_dropout
        During training, each expressed gene of a cell is left out of its context with this
        probability (the most expressed one always stays): an augmentation that makes the
        model robust to gene panels and detection depth.
    rna_normalization
        Per-cell normalisation of RNA counts, one of
        :data:`~sctranslator.nn.RNA_NORMALIZATIONS`.
    gradient_checkpointing
        In training, attention blocks recompute their activations in the backward pass
        (:func:`torch.utils.checkpoint.checkpoint`) instead of storing them: less memory,
        about a third more compute.

    Attributes
    ----------
    initialized
        Boolean buffer, True once :meth:`initialize_from_data` has run (saved with the
        weights and copied by :meth:`transfer_from`, so training never restarts from the
        data over learnt weights).
    """

    def __init__(
        self,
        n_tokens: int,
        gene_ids: torch.Tensor,
        protein_ids: torch.Tensor,
        n_batch: int = 1,
        n_hidden: int = 64,
        n_heads: int = 4,
        n_latents: int = 16,
        n_encoder_layers: int = 2,
        dropout: float = 0.1,
        max_genes: int = 128,
        context: str = "informative",
        gene_dropout: float = 0.0,
        rna_normalization: str = "log1p_cp10k",
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}.")
        self.max_genes = max_genes
        self.context = context
        self.gene_dropout = gene_dropout
        self.gradient_checkpointing = gradient_checkpointing
        self.normalize_rna = get_normalization(rna_normalization, RNA_NORMALIZATIONS, "RNA")
        self.register_buffer("gene_ids", torch.as_tensor(gene_ids), persistent=False)
        self.register_buffer("protein_ids", torch.as_tensor(protein_ids), persistent=False)
        self.register_buffer("initialized", torch.tensor(False))
        # How informative each token is; ranks a cell's genes for its context (select_genes).
        self.register_buffer("gene_weight", torch.ones(n_tokens))

        self.embedding = TokenValueEmbedding(n_tokens, n_hidden)
        self.cell_scale = nn.Parameter(torch.ones(()))
        self.cell_shift = nn.Parameter(torch.zeros(n_hidden))
        self.latents = nn.Parameter(torch.randn(n_latents, n_hidden) * 0.02)
        self.reader = AttentionBlock(n_hidden, n_heads, dropout, cross=True)
        self.encoder = nn.ModuleList(
            [AttentionBlock(n_hidden, n_heads, dropout) for _ in range(n_encoder_layers)]
        )
        self.encoder_norm = nn.LayerNorm(n_hidden)
        self.query_token = nn.Parameter(torch.randn(n_hidden) * 0.02)
        self.protein_attention = MultiHeadAttention(n_hidden, n_heads)
        self.batch_embedding = nn.Embedding(n_batch, n_hidden)
        nn.init.zeros_(self.batch_embedding.weight)
        self.protein_bias = nn.Embedding(n_tokens, 1)
        nn.init.zeros_(self.protein_bias.weight)

    def select_genes(
        self, gene_ids: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply the context rule: a cell's tokens are its expressed genes, at most ``max_genes``.

        A gene is a token of a cell when its normalised value is positive. Zero (not detected,
        or knocked out) and NaN (not measured in the cell, e.g. another panel of a
        :func:`sctranslator.pp.concat_panels` collection) are not tokens. A cell with more
        expressed genes keeps the ``max_genes`` most expressed, ties broken by token id, so the
        rule does not depend on the gene order. Cost per cell is bounded by ``max_genes``.
        "Most expressed" weighs each value by the token's :attr:`gene_weight` (with
        ``context="informative"``, how strongly the gene tracks the proteins in the first
        training cells, see :func:`~sctranslator.components.fit_gene_weights`), so housekeeping
        genes expressed everywhere give way to informative ones.

        Returns
        -------
        Token ids, values and a mask of the present tokens, each ``(cells, width)`` where
        ``width`` is the largest number of tokens of a cell in the batch; a cell's unused slots
        are masked out (value 0, mask False).
        """
        expressed = values > 0
        width = int(expressed.sum(1).max().clamp(1, self.max_genes))
        rank_by = torch.where(expressed, values * self.gene_weight[gene_ids], -torch.inf)
        # One exact int64 key per gene, the float's bits (ordered like the floats, as these are
        # >= 0 or -inf) and then the lower token id: its top `width` are those of a stable sort
        # by token id, found without sorting (or reordering) every gene.
        lower_id_first = torch.empty_like(gene_ids)
        lower_id_first[torch.argsort(gene_ids)] = torch.arange(
            len(gene_ids) - 1, -1, -1, device=gene_ids.device
        )
        key = (rank_by.float().view(torch.int32).long() << 32) | lower_id_first
        keep = torch.topk(key, width, dim=1).indices
        present = expressed.gather(1, keep)
        return gene_ids[keep], torch.where(present, values.gather(1, keep), 0.0), present

    def read_registered_genes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the counts and token ids of the registered genes the vocabulary has.

        A registered gene whose id is negative (a transferred model that keeps genes the
        reference never learnt out of its vocabulary) is not read at all: not a token and
        not part of the normalisation, exactly as in prediction.
        """
        known = self.gene_ids >= 0
        if bool(known.all()):
            return x, self.gene_ids
        return x[:, known], self.gene_ids[known]

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        gene_ids: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Encode RNA counts ``x`` ``(cells, genes)`` of genes ``gene_ids`` (default: registered).

        Only expressed genes are tokens (see :meth:`select_genes`): zero and NaN (not
        measured) values are masked out of the read-in attention and of the cell token.
        Genes left out by gene dropout in training are made up for by scaling the cell
        token's sum by ``1 / (1 - gene_dropout)``, as in inverted dropout.

        Returns
        -------
        ``context``: the encoded cell token and latents ``(cells, 1 + n_latents, n_hidden)``;
        ``z``: the cell token, the cell's latent representation; ``tokens`` and ``present``:
        the gene tokens of each cell and their mask, ``(cells, width)``. With
        ``return_attention``, also ``attention``: the read-in weights of the cell token and
        latents over the cell token and genes ``(cells, 1 + n_latents, 1 + width)``.
        """
        if gene_ids is None:
            x, gene_ids = self.read_registered_genes(x)
        token_ids, values, present = self.select_genes(gene_ids, self.normalize_rna(x))
        dropping = self.training and self.gene_dropout > 0
        if dropping:
            kept = torch.rand(present.shape, device=present.device) >= self.gene_dropout
            kept[:, 0] = True  # the most expressed gene stays, so no cell is left empty
            present = present & kept
            values = torch.where(present, values, 0.0)
        tokens, pooled = self.embedding(token_ids, values)
        if dropping:
            pooled = pooled / (1 - self.gene_dropout)
        cell = (pooled * self.cell_scale + self.cell_shift).unsqueeze(1)
        genes = torch.cat([cell, tokens], dim=1)
        key_mask = torch.cat([torch.ones_like(present[:, :1]), present], dim=1)
        context = torch.cat([cell, self.latents + cell], dim=1)
        context, attention = self._run_block(
            self.reader, context, genes, return_attention, key_mask=key_mask
        )
        for block in self.encoder:
            context, _ = self._run_block(block, context)
        context = self.encoder_norm(context)
        outputs = {"context": context, "z": context[:, 0], "tokens": token_ids, "present": present}
        if return_attention:
            outputs["attention"] = attention
        return outputs

    def _run_block(
        self, block: nn.Module, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Call an attention block, through gradient checkpointing when it is on."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False, **kwargs)
        return block(*args, **kwargs)

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {
            "context": inference_outputs["context"],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
        }

    def query_batch_embedding(
        self, batch_index: torch.Tensor | None, n_cells: int
    ) -> torch.Tensor:
        """Batch embedding per cell; the mean of the training batches' without ``batch_index``."""
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
        queries' head-averaged weights over the cell token and latents
        ``(cells, proteins, 1 + n_latents)``.
        """
        protein_ids = self.protein_ids if protein_ids is None else protein_ids
        identity = self.embedding.identity(protein_ids)
        query = (identity + self.query_token).unsqueeze(0)
        attention_block = self.protein_attention
        attended, attention = attention_block(query, context, return_attention, project=False)
        cell = context[:, 0] + self.query_batch_embedding(batch_index, len(context))
        # Read-out <e, cell + out(attended)> with e the protein's identity embedding; the
        # linear projection ``out`` is folded into the protein weights so that it is applied
        # once per protein, not per cell.
        out = attention_block.out
        protein = (
            cell @ identity.T
            + torch.einsum("cpd,pd->cp", attended, identity @ out.weight)
            + identity @ out.bias
        )
        bias = self.protein_bias(protein_ids).squeeze(1)
        protein = protein / identity.shape[1] ** 0.5 + bias
        outputs = {"protein": protein}
        if return_attention:
            outputs["attention"] = attention
        return outputs

    @torch.no_grad()
    def set_gene_weights(self, weights: torch.Tensor, gene_ids: torch.Tensor) -> None:
        """Set the context rule's weights of tokens ``gene_ids`` (see :meth:`select_genes`).

        ``weights`` come from :func:`~sctranslator.components.fit_gene_weights`; tokens not
        given keep their weight (1 for a new model).
        """
        self.gene_weight[gene_ids] = weights.to(self.gene_weight)

    @torch.inference_mode()
    def gene_attention(
        self, x: torch.Tensor, gene_ids: torch.Tensor, protein_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention of each protein query on each gene token of each cell.

        The queries' weights over the cell token and latents times those tokens' read-in
        weights over the genes (attention flow through the read-in; the encoder's mixing of
        the latents is left out).

        Returns
        -------
        Weights ``(cells, proteins, width)``, the cells' gene tokens and their mask
        ``(cells, width)``.
        """
        encoded = self.inference(x, gene_ids=gene_ids, return_attention=True)
        queried = self.generative(encoded["context"], None, protein_ids, return_attention=True)
        flow = queried["attention"] @ encoded["attention"]
        return flow[:, :, 1:], encoded["tokens"], encoded["present"]

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
        target: torch.Tensor | None = None,
        masked_genes: tuple[torch.Tensor, torch.Tensor] | None = None,
        masked_weight: float = 1.0,
    ) -> LossOutput:
        """Mean squared error over the measured proteins, plus that of masked genes if given.

        ``target``: standardised proteins ``(cells, proteins)``, NaN where unmeasured, given
        by the training plan (:class:`~sctranslator.train.TranslatorTrainingPlan`), which
        knows the panel statistics. ``masked_genes``: token ids ``(k,)`` of genes hidden from
        every cell's context and their normalised values ``(cells, k)`` (NaN where a cell's
        panel lacks the gene); the read-out predicts them from the rest of the cell, as it
        predicts proteins, and their mean squared error, times ``masked_weight``, joins the
        loss. It needs no protein, so it is how RNA-only cells teach the encoder.

        Raises
        ------
        ValueError
            Without ``target``.
        """
        if target is None:
            raise ValueError(
                "TranslatorModule.loss needs `target` (standardised proteins); train through "
                "sctranslator.train.TranslatorTrainingPlan, which passes it."
            )
        mse, per_cell = _masked_mse(generative_outputs["protein"], target)
        loss, extra = mse, {"mse": mse.detach()}
        if masked_genes is not None:
            token_ids, values = masked_genes
            predicted = self.generative(
                inference_outputs["context"], tensors[REGISTRY_KEYS.BATCH_KEY], token_ids
            )["protein"]
            gene_mse, _ = _masked_mse(predicted, values)
            loss = loss + masked_weight * gene_mse
            extra["mse_masked_genes"] = gene_mse.detach()
        return LossOutput(
            loss=loss,
            reconstruction_loss=per_cell,
            n_obs_minibatch=len(target),
            extra_metrics=extra,
        )

    @torch.inference_mode()
    def sample(self, *args, **kwargs):
        """Not defined: the model is a deterministic regressor."""
        raise NotImplementedError("TranslatorModule predicts means; it has no sampling.")


def _masked_mse(
    predicted: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error over the non-NaN targets, overall and per cell."""
    measured = ~torch.isnan(target)
    error = torch.where(measured, predicted - target, 0.0) ** 2
    n_measured = measured.sum(dim=1)
    per_cell = error.sum(dim=1) / n_measured.clamp_min(1)
    return error.sum() / n_measured.sum().clamp_min(1), per_cell
