"""Per-cell normalisations of RNA and protein counts, as torch functions.

Every function maps a ``(cells, features)`` tensor of raw counts to the same shape. NaN marks
an unmeasured value: it is ignored by the per-cell statistics and stays NaN in the output.
No function divides by zero: a constant or empty row maps to zeros, never to NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Normalization = Callable[[torch.Tensor], torch.Tensor]


def log1p_cp10k(x: torch.Tensor) -> torch.Tensor:
    """``log1p`` of counts per 10,000 (scanpy's ``normalize_total`` then ``log1p``)."""
    total = torch.nansum(x, dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.log1p(x / total * 1e4)


def log1p(x: torch.Tensor) -> torch.Tensor:
    """``log1p`` of raw counts."""
    return torch.log1p(x)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Per-cell min-max scaling to ``[0, 1]`` (the original scTranslator's scheme)."""
    observed = ~torch.isnan(x)
    low = torch.where(observed, x, torch.inf).amin(dim=-1, keepdim=True)
    high = torch.where(observed, x, -torch.inf).amax(dim=-1, keepdim=True)
    span = (high - low).clamp_min(1e-8)
    return torch.where(observed, (x - low) / span, torch.nan)


def clr(x: torch.Tensor) -> torch.Tensor:
    """Per-cell centred log-ratio, as ``muon.prot.pp.clr(axis=1)``: ``log1p(x / g(x))``.

    ``g(x)`` is the geometric mean of ``1 + x`` over the measured features of the cell.
    """
    geometric = torch.exp(torch.nanmean(torch.log1p(x), dim=-1, keepdim=True))
    return torch.log1p(x / geometric)


RNA_NORMALIZATIONS: dict[str, Normalization] = {
    "log1p_cp10k": log1p_cp10k,
    "log1p": log1p,
    "minmax": minmax,
}
PROTEIN_NORMALIZATIONS: dict[str, Normalization] = {
    "clr": clr,
    "log1p": log1p,
    "minmax": minmax,
}


def get_normalization(name: str, options: dict[str, Normalization], what: str) -> Normalization:
    """Look up a normalisation by name, with an error listing the choices."""
    if name not in options:
        raise ValueError(f"Unknown {what} normalization {name!r}; choose from {list(options)}.")
    return options[name]
