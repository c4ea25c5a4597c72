"""Streaming per-protein Pearson correlation as a torchmetrics metric."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MaskedPearson(Metric):
    """Mean over proteins of the Pearson correlation across cells, ignoring NaN targets.

    Sums are accumulated batch by batch (and summed across processes under DDP), so the
    value is exact for the whole epoch. Proteins with fewer than three measured cells or no
    variance are left out of the mean.

    Parameters
    ----------
    n_proteins
        Number of protein columns.
    """

    full_state_update = False

    def __init__(self, n_proteins: int):
        super().__init__()
        for name in ("n", "x", "y", "xx", "yy", "xy"):
            self.add_state(
                name, torch.zeros(n_proteins, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of ``(cells, proteins)`` predictions and targets (NaN = unmeasured)."""
        measured = ~torch.isnan(target)
        x = torch.where(measured, prediction, 0.0).double()
        y = torch.where(measured, target, 0.0).double()
        self.n += measured.sum(0)
        self.x += x.sum(0)
        self.y += y.sum(0)
        self.xx += (x * x).sum(0)
        self.yy += (y * y).sum(0)
        self.xy += (x * y).sum(0)

    def compute(self) -> torch.Tensor:
        """Mean per-protein Pearson correlation."""
        n = self.n.clamp_min(1)
        cov = self.xy - self.x * self.y / n
        var_x = self.xx - self.x**2 / n
        var_y = self.yy - self.y**2 / n
        valid = (self.n >= 3) & (var_x > 1e-12) & (var_y > 1e-12)
        if not valid.any():
            return torch.tensor(0.0)
        r = cov[valid] / torch.sqrt(var_x[valid] * var_y[valid])
        return r.mean().float()
