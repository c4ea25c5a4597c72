"""Interval calibration: conformal prediction intervals and the novelty of cells.

Fits, after each training, on the validation cells (or on the paired cells given to
``SCTRANSLATOR.calibrate``): per-protein error scales and conformal scores of held-out
predictions, with the training cells' latents as the anchors of novelty. Changes nothing in
the predictions; ``SCTRANSLATOR.predict_protein_interval`` and ``get_novelty`` read it.
Saved as ``calibration.safetensors`` in the model folder.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class IntervalCalibration(nn.Module):
    """Adaptive split-conformal intervals for standardised protein predictions.

    The conformity score of a measured value ``y`` (cell ``c``, protein ``p``, standardised
    scale) with prediction ``ŷ`` is ``|y - ŷ| / (protein_scale[p] * difficulty(c))``. The
    difficulty of a cell is its **novelty**: the mean distance of its latent representation to
    its ``n_neighbors`` nearest training cells (``anchors``), divided by the median of that
    distance over the calibration cells (``typical_distance``), so 1 is a typical held-out
    cell. The interval at level ``1 - α`` is ``ŷ ± q * protein_scale[p] * difficulty(c)`` with
    ``q`` the ``⌈(n + 1)(1 - α)⌉``-th smallest of the ``n`` calibration ``scores``.

    Buffers (None until :meth:`fit`): ``protein_scale`` ``(proteins,)``, ``scores`` (sorted),
    ``anchors`` ``(cells, n_hidden)``, ``typical_distance`` (scalar) and
    ``novelty_reference``, the sorted novelty of the calibration cells.
    """

    STATE = ("protein_scale", "scores", "anchors", "typical_distance", "novelty_reference")

    def __init__(self, n_neighbors: int = 10, min_measured: int = 3):
        super().__init__()
        self.n_neighbors = n_neighbors
        self.min_measured = min_measured
        for name in self.STATE:
            self.register_buffer(name, None)

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has set the conformal scores."""
        return self.scores is not None

    @torch.no_grad()
    def copy_from(self, other: IntervalCalibration, positions: list[int]) -> None:
        """Take ``other``'s calibration, for a module whose predictions equal ``other``'s.

        Protein ``j`` gets the scale of ``other``'s protein ``positions[j]``; ``-1`` (a protein
        ``other`` does not predict) gets NaN: no calibrated interval.
        """
        if not other.fitted:
            self.clear()
            return
        for name in self.STATE:
            setattr(self, name, getattr(other, name).clone())
        index = torch.as_tensor(positions, device=other.protein_scale.device)
        scale = other.protein_scale[index.clamp_min(0)]
        self.protein_scale = torch.where(index >= 0, scale, torch.nan)

    def clear(self) -> None:
        """Remove the calibration."""
        for name in self.STATE:
            setattr(self, name, None)

    def distance(self, z: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
        """Mean distance of each latent ``z`` to its nearest ``anchors`` (default: stored)."""
        anchors = self.anchors if anchors is None else anchors
        k = min(self.n_neighbors, len(anchors))
        return torch.cdist(z, anchors).topk(k, dim=1, largest=False).values.mean(1)

    def novelty(self, z: torch.Tensor) -> torch.Tensor:
        """Distance to the training cells over the calibration cells' median (1: typical)."""
        return self.distance(z) / self.typical_distance

    @torch.no_grad()
    def fit(
        self,
        z: torch.Tensor,
        predicted: torch.Tensor,
        measured: torch.Tensor,
        anchors: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """Calibrate on held-out cells: latents ``z``, standardised ``predicted`` and ``measured``.

        ``measured`` is NaN where a protein was not measured. The cells are split at random in
        two halves: the per-protein scale (mean of ``|y - ŷ| / difficulty`` over the first
        half, the median over proteins for those measured in fewer than ``min_measured`` of
        its cells) is fitted on one and the scores are taken on the other, so that the scores
        are exchangeable with those of new cells.
        """
        distance = self.distance(z, anchors)
        typical = distance.quantile(0.5).clamp_min(torch.finfo(distance.dtype).tiny)
        difficulty = distance / typical
        order = torch.randperm(len(z), generator=generator).to(z.device)
        first, second = order[: len(z) // 2], order[len(z) // 2 :]
        error = (measured - predicted).abs() / difficulty[:, None]
        half = error[first]
        counted = (~half.isnan()).sum(0)
        scale = half.nan_to_num().sum(0) / counted.clamp_min(1)
        usable = (counted >= self.min_measured) & (scale > 0)
        if not bool(usable.any()):
            raise ValueError(
                "Too few measured proteins to calibrate: each protein needs at least "
                f"{self.min_measured} measured values in half of the calibration cells."
            )
        scale = torch.where(usable, scale, scale[usable].median())
        scores = (error[second] / scale).flatten()
        self.protein_scale = scale
        self.scores = scores[~scores.isnan()].sort().values
        self.anchors = anchors
        self.typical_distance = typical
        self.novelty_reference = difficulty.sort().values

    def quantile(self, level: float) -> torch.Tensor:
        """Return the conformal quantile of the scores for coverage ``level``."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), not {level!r}.")
        n = len(self.scores)
        rank = math.ceil((n + 1) * level)
        if rank > n:
            raise ValueError(
                f"level {level} needs more than the {n} calibration scores (at most "
                f"{n / (n + 1):.4f}); calibrate on more cells or ask for a lower level."
            )
        return self.scores[rank - 1]
