"""Embedding of (token, value) pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        self.value = nn.Sequential(
            nn.Linear(1, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_hidden)
        )

    def forward(
        self, token_ids: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed ``values`` ``(cells, features)`` of tokens ``token_ids`` ``(cells, features)``.

        Returns
        -------
        The tokens ``(cells, features, n_hidden)`` and the pooled cell vector
        ``(cells, n_hidden)``: the expression-weighted sum of the identity vectors, a linear
        projection of the whole profile (zero-valued slots add nothing, so padding does not
        change it). When the gene identities hold the loadings of a PCA of the RNA (see
        :meth:`~sctranslator.module.TranslatorModule.initialize_from_data`), it is the
        cell's principal-component scores.
        """
        identity = self.identity(token_ids)
        if values.requires_grad:  # gradients by input value (tl.interactions)
            tokens = identity + self.value(values.unsqueeze(-1))
        else:  # counts are integers, so a batch holds few distinct values: embed each once
            distinct, where = torch.unique(values, return_inverse=True)
            tokens = identity + F.embedding(where, self.value(distinct.unsqueeze(-1)))
        pooled = (identity * values.unsqueeze(-1)).sum(dim=1)
        return tokens, pooled
