"""Streaming per-protein Pearson correlation as a torchmetrics metric."""

from __future__ import annotations

import torch
from torchmetrics import Metric

_SUMS = ("n", "x", "y", "xx", "yy", "xy")
_BOUNDS = {"x_min": "min", "x_max": "max", "y_min": "min", "y_max": "max"}


class MaskedPearson(Metric):
    """Mean over proteins of the Pearson correlation across cells, ignoring NaN targets.

    The convention is that of :func:`sctranslator.metrics.per_protein_pearson`: a protein
    whose target is constant (all its measured values equal) or measured in fewer than three
    cells has no correlation (NaN) and is left out of the mean; a protein whose prediction is
    constant over its measured cells counts 0. Sums, minima and maxima are accumulated batch
    by batch (and reduced across processes under DDP), so the value is that of the whole
    epoch: :meth:`per_protein` equals ``per_protein_pearson`` on all the cells seen, up to
    the rounding of one-pass sums.

    Parameters
    ----------
    n_proteins
        Number of protein columns.

    Examples
    --------
    >>> metric = MaskedPearson(n_proteins=3)
    >>> for prediction, target in batches:
    ...     metric.update(prediction, target)
    >>> metric.compute()  # = np.nanmean(sct.metrics.per_protein_pearson(all_pred, all_target))
    """

    full_state_update = False

    def __init__(self, n_proteins: int):
        super().__init__()
        for name in _SUMS:
            self.add_state(
                name, torch.zeros(n_proteins, dtype=torch.float64), dist_reduce_fx="sum"
            )
        for name, reduce in _BOUNDS.items():
            start = torch.inf if reduce == "min" else -torch.inf
            self.add_state(
                name, torch.full((n_proteins,), start, dtype=torch.float64), dist_reduce_fx=reduce
            )

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of ``(cells, proteins)`` predictions and targets (NaN = unmeasured)."""
        measured = ~torch.isnan(target)
        prediction, target = prediction.double(), target.double()
        x = torch.where(measured, prediction, 0.0)
        y = torch.where(measured, target, 0.0)
        self.n += measured.sum(0)
        self.x += x.sum(0)
        self.y += y.sum(0)
        self.xx += (x * x).sum(0)
        self.yy += (y * y).sum(0)
        self.xy += (x * y).sum(0)
        for name, values in (("x", prediction), ("y", target)):
            low = torch.where(measured, values, torch.inf).amin(0)
            high = torch.where(measured, values, -torch.inf).amax(0)
            setattr(self, f"{name}_min", torch.minimum(getattr(self, f"{name}_min"), low))
            setattr(self, f"{name}_max", torch.maximum(getattr(self, f"{name}_max"), high))

    def compute(self) -> torch.Tensor:
        """Mean per-protein Pearson correlation over the proteins that have one (0 if none)."""
        r = self._correlations()
        valid = ~torch.isnan(r)
        if not valid.any():
            return torch.tensor(0.0)
        return r[valid].mean().float()

    def per_protein(self) -> torch.Tensor:
        """Pearson correlation of each protein (float64; NaN where it has none).

        Examples
        --------
        >>> metric.per_protein()  # = sct.metrics.per_protein_pearson(all_pred, all_target)
        """
        with self.sync_context(should_sync=self._to_sync, should_unsync=self._should_unsync):
            return self._correlations()

    def _correlations(self) -> torch.Tensor:
        n = self.n.clamp_min(1)
        cov = self.xy - self.x * self.y / n
        var_x = self.xx - self.x**2 / n
        var_y = self.yy - self.y**2 / n
        product = var_x * var_y
        r = torch.where(product > 0, cov / product.clamp_min(1e-300).sqrt(), 0.0)
        r = torch.where(self.x_min == self.x_max, 0.0, r)
        truth_constant = self.y_min == self.y_max
        return torch.where((self.n >= 3) & ~truth_constant, r, torch.nan)
