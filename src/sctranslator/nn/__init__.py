"""Reusable torch layers."""

from ._attention import AttentionBlock, MultiHeadAttention
from ._embedding import TokenValueEmbedding
from ._normalization import PROTEIN_NORMALIZATIONS, RNA_NORMALIZATIONS, get_normalization

__all__ = [
    "AttentionBlock",
    "MultiHeadAttention",
    "PROTEIN_NORMALIZATIONS",
    "RNA_NORMALIZATIONS",
    "TokenValueEmbedding",
    "get_normalization",
]
