"""Multi-head attention on ``scaled_dot_product_attention`` and a pre-norm attention block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``context`` tokens.

    Uses :func:`torch.nn.functional.scaled_dot_product_attention`, which picks flash or
    memory-efficient kernels where available; there is no dropout on attention weights, so
    those kernels stay usable in training.

    Parameters
    ----------
    n_hidden
        Token width, divisible by ``n_heads``.
    n_heads
        Number of heads.
    """

    def __init__(self, n_hidden: int, n_heads: int):
        super().__init__()
        if n_hidden % n_heads:
            raise ValueError(f"n_hidden ({n_hidden}) must be divisible by n_heads ({n_heads}).")
        self.n_heads = n_heads
        self.query = nn.Linear(n_hidden, n_hidden)
        self.key_value = nn.Linear(n_hidden, 2 * n_hidden)
        self.out = nn.Linear(n_hidden, n_hidden)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        return_attention: bool = False,
        key_mask: torch.Tensor | None = None,
        project: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``(cells, queries, n_hidden)`` to ``(cells, keys, n_hidden)``.

        ``query`` may also be ``(1, queries, n_hidden)``, the same queries for every cell
        (projected once).

        ``key_mask`` ``(cells, keys)``, ``True`` where a key may be attended to, leaves out
        absent tokens (genes not measured in a cell); every row needs one ``True``. With
        ``project=False`` the heads are returned concatenated, before the output projection
        ``out`` (for a caller that folds ``out`` into a linear read-out).

        Returns
        -------
        The attended queries and, with ``return_attention``, the head-averaged weights
        ``(cells, queries, keys)``.
        """
        n_cells, n_hidden = context.shape[0], context.shape[2]
        n_queries = query.shape[1]
        head = n_hidden // self.n_heads
        q = self.query(query).view(len(query), n_queries, self.n_heads, head).transpose(1, 2)
        q = q.expand(n_cells, -1, -1, -1)
        k, v = (
            self.key_value(context).view(n_cells, -1, 2, self.n_heads, head).permute(2, 0, 3, 1, 4)
        )
        weights = None
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if return_attention:
            scores = q @ k.transpose(-2, -1) / math.sqrt(head)
            if mask is not None:
                scores = scores.masked_fill(~mask, -torch.inf)
            weights = torch.softmax(scores, dim=-1)
            attended = weights @ v
            weights = weights.mean(dim=1)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        attended = attended.transpose(1, 2).reshape(n_cells, n_queries, n_hidden)
        return (self.out(attended) if project else attended), weights


class AttentionBlock(nn.Module):
    """Pre-norm attention then feed-forward, each with a residual connection.

    Self-attention by default: the tokens attend to each other (the encoder layers of
    :class:`~sctranslator.module.TranslatorModule`, over the cell token and the latent
    tokens). With ``cross=True`` the tokens attend to a separate context and never to each
    other (the module's read-in: the cell token and the latents read the gene tokens), so the
    update of one token does not depend on which other tokens are in the block.

    Parameters
    ----------
    n_hidden
        Token width.
    n_heads
        Attention heads.
    dropout
        Dropout on the attention and feed-forward outputs.
    cross
        Cross-attention to a context instead of self-attention.

    Examples
    --------
    >>> read_in = AttentionBlock(64, 4, cross=True)
    >>> latents, _ = read_in(latents, context=gene_tokens, key_mask=present)
    >>> encoder_layer = AttentionBlock(64, 4)
    >>> latents, _ = encoder_layer(latents)
    """

    def __init__(self, n_hidden: int, n_heads: int, dropout: float = 0.1, cross: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(n_hidden)
        self.norm_context = nn.LayerNorm(n_hidden) if cross else None
        self.attention = MultiHeadAttention(n_hidden, n_heads)
        self.norm_ff = nn.LayerNorm(n_hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(n_hidden, 4 * n_hidden),
            nn.GELU(),
            nn.Linear(4 * n_hidden, n_hidden),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tokens: torch.Tensor,
        context: torch.Tensor | None = None,
        return_attention: bool = False,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Update ``tokens`` ``(cells, n, n_hidden)``; ``context`` is required with ``cross``.

        ``key_mask`` ``(cells, keys)`` marks the context tokens that may be attended to.

        Returns
        -------
        The updated tokens and, with ``return_attention``, the head-averaged attention
        weights.
        """
        normed = self.norm(tokens)
        context = normed if self.norm_context is None else self.norm_context(context)
        attended, weights = self.attention(normed, context, return_attention, key_mask)
        tokens = tokens + self.dropout(attended)
        tokens = tokens + self.dropout(self.feed_forward(self.norm_ff(tokens)))
        return tokens, weights
