"""Embedding of (token, value) pairs."""

from __future__ import annotations

import torch
from torch import nn


class TokenValueEmbedding(nn.Module):
    """Embed each feature as its token's identity vector plus an embedding of its value.

    The identity table is shared by RNA genes and protein queries, so a protein can find the
    RNA of its own gene.

    Parameters
    ----------
    n_tokens
        Vocabulary size.
    n_hidden
        Width of the embeddings.
    """

    def __init__(self, n_tokens: int, n_hidden: int):
        super().__init__()
        self.identity = nn.Embedding(n_tokens, n_hidden)
        self.value = nn.Sequential(nn.Linear(1, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_hidden))

    def forward(
        self, token_ids: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed ``values`` ``(cells, features)`` of tokens ``token_ids`` ``(cells, features)``.

        Returns
        -------
        The tokens ``(cells, features, n_hidden)`` and the pooled cell vector
        ``(cells, n_hidden)``: the expression-weighted sum of the identity vectors, a linear
        read-out of the whole profile scaled by ``1 / sqrt(n)`` with ``n`` the number of
        nonzero values of the cell (zero-valued slots add nothing, so padding does not change
        it). It seeds the cell token so that the model starts from a linear view of the cell
        instead of a plateau.
        """
        identity = self.identity(token_ids)
        tokens = identity + self.value(values.unsqueeze(-1))
        n_expressed = (values != 0).sum(dim=1, keepdim=True).clamp_min(1)
        pooled = (identity * values.unsqueeze(-1)).sum(dim=1) / n_expressed**0.5
        return tokens, pooled
