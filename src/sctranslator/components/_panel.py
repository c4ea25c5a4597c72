"""Panel statistics: which proteins each batch measured, and each protein's scale.

Fits, at the start of every training, on the training cells only (read in row chunks from
the registered data or a cell store): the measured-protein rule and the mean and standard
deviation of each normalised protein. Changes the training targets (standardised, NaN where
unmeasured) and the scale of predictions (``prediction * std + mean``). A transferred model
keeps its reference's scale of the proteins they share. Saved as ``panel.safetensors`` in the
model folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sctranslator.nn import PROTEIN_NORMALIZATIONS, get_normalization

Blocks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def measured_in_batches(counts: np.ndarray, batch: np.ndarray, n_batch: int) -> np.ndarray:
    """Apply the measured-protein rule: ``(batches, proteins)``, True where measured.

    A protein is measured in a batch when it is positive in at least one of its cells there;
    NaN (not measured in a cell) and zero throughout a batch (no antibody in that panel) are
    not measured. ``counts`` ``(cells, proteins)``, ``batch`` the cells' batch codes.
    """
    measured = np.zeros((n_batch, counts.shape[1]), dtype=bool)
    np.logical_or.at(measured, np.asarray(batch, dtype=np.int64), np.nan_to_num(counts) > 0)
    return measured


class PanelStatistics(nn.Module):
    """The measured-protein rule and the per-protein scale of one registered protein panel.

    Buffers: ``measured`` ``(batches, proteins)`` (:func:`measured_in_batches` over the
    training cells), ``mean`` and ``std`` of each normalised protein over the training cells
    where it is measured, and ``fitted``, True for proteins whose scale is set.

    Parameters
    ----------
    n_proteins
        Registered proteins.
    n_batch
        Registered batches.
    normalization
        Per-cell protein normalisation, one of
        :data:`~sctranslator.nn.PROTEIN_NORMALIZATIONS`.
    """

    STATE = ("mean", "std", "fitted", "measured")

    def __init__(self, n_proteins: int, n_batch: int, normalization: str = "clr"):
        super().__init__()
        self.normalize = get_normalization(normalization, PROTEIN_NORMALIZATIONS, "protein")
        self.register_buffer("mean", torch.zeros(n_proteins))
        self.register_buffer("std", torch.ones(n_proteins))
        self.register_buffer("fitted", torch.zeros(n_proteins, dtype=torch.bool))
        self.register_buffer("measured", torch.ones(n_batch, n_proteins, dtype=torch.bool))

    @torch.no_grad()
    def fit(self, blocks: Blocks) -> np.ndarray:
        """Fit the rule and the scale of unfitted proteins to the training cells.

        ``blocks()`` yields ``(protein counts, batch codes)`` of the training cells in
        chunks; it is called twice (the rule, then the scale). Proteins already ``fitted``
        (taken from a reference by :meth:`copy_scale_from`) keep their scale.

        Returns
        -------
        Boolean mask of the proteins never measured in these cells.
        """
        measured = np.zeros(tuple(self.measured.shape), dtype=bool)
        for counts, batch in blocks():
            measured |= measured_in_batches(counts, batch, len(measured))
        self.measured = torch.as_tensor(measured, device=self.mean.device)
        n_proteins = len(self.mean)
        total, total_sq, count = (torch.zeros(n_proteins, dtype=torch.float64) for _ in range(3))
        for counts, batch in blocks():
            values = self.normalized(counts, batch).double().cpu()
            seen = ~values.isnan()
            values = values.nan_to_num()
            total += values.sum(0)
            total_sq += (values**2).sum(0)
            count += seen.sum(0)
        mean = total / count.clamp_min(1)
        std = (total_sq / count.clamp_min(1) - mean**2).clamp_min(0).sqrt()
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        new = ~self.fitted
        self.mean[new] = mean.float().to(self.mean.device)[new]
        self.std[new] = std.float().to(self.std.device)[new]
        self.fitted[:] = True
        return (count == 0).numpy()

    def normalized(self, counts, batch) -> torch.Tensor:
        """Normalised proteins of cells of training batches ``batch``; NaN where unmeasured."""
        counts = torch.as_tensor(counts, device=self.mean.device)
        batch = torch.as_tensor(batch, device=self.mean.device).long().view(-1)
        return self.normalize(torch.where(self.measured[batch], counts, torch.nan))

    def standardize(self, counts, batch) -> torch.Tensor:
        """Training targets: :meth:`normalized` minus ``mean``, over ``std``."""
        return (self.normalized(counts, batch) - self.mean) / self.std

    @torch.no_grad()
    def copy_scale_from(self, other: PanelStatistics, positions: Sequence[int]) -> None:
        """Take ``other``'s mean and std of its protein ``positions[j]`` for protein ``j``.

        ``-1`` (a protein ``other`` lacks) and proteins ``other`` has no scale for are left
        to be fitted.
        """
        for j, i in enumerate(positions):
            if i >= 0 and bool(other.fitted[i]):
                self.mean[j] = other.mean[i]
                self.std[j] = other.std[i]
                self.fitted[j] = True
