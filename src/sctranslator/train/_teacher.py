"""The k-nearest-neighbour teacher of target smoothing."""

from __future__ import annotations

import torch

from sctranslator.module import principal_axes


class NeighborTeacher:
    """Blend each training target with the mean target of the cell's nearest training cells.

    Fitted at the start of each training on some training cells by
    :class:`~sctranslator.train.DataInitialization` and used by
    :class:`~sctranslator.train.TranslatorTrainingPlan` on each training minibatch, before
    :meth:`~sctranslator.module.TranslatorModule.loss`. Cells are compared in the joint space
    of the principal components of their normalised RNA and of their standardised proteins,
    so the teacher averages out the protein noise of single cells. It is never saved.

    Parameters
    ----------
    smoothing
        Weight of the neighbours' mean in each target, in ``[0, 1]``; 0 turns it off.
    n_neighbors
        Number of nearest teacher cells averaged (at most 5 % of the teacher cells).
    n_pcs
        Principal components of the RNA and of the proteins.
    """

    def __init__(self, smoothing: float = 0.0, n_neighbors: int = 15, n_pcs: int = 50):
        if not 0 <= smoothing <= 1:
            raise ValueError(f"target_smoothing must be in [0, 1], not {smoothing}.")
        if n_neighbors < 1:
            raise ValueError(f"smoothing_neighbors must be positive, not {n_neighbors}.")
        self.smoothing = smoothing
        self.n_neighbors = n_neighbors
        self.n_pcs = n_pcs
        self.clear()

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` found teacher cells."""
        return self.targets is not None

    def clear(self) -> None:
        """Forget the teacher cells: :meth:`smooth` then returns the targets unchanged."""
        self.axes = self.scales = self.coordinates = self.targets = None

    @torch.no_grad()
    def fit(self, rna: torch.Tensor, target: torch.Tensor) -> None:
        """Fit the teacher to some training cells.

        ``rna``: normalised RNA (NaN as 0); ``target``: standardised proteins, NaN where
        unmeasured. Keeps the cells with a measured protein, their targets and their
        coordinates on the top ``n_pcs`` principal components of their RNA and of their
        targets (unmeasured values count as the mean), each part divided by its total spread
        so that both weigh the same. With fewer than two such cells there is no teacher.
        """
        self.clear()
        measured = ~target.isnan().all(dim=1)
        if measured.sum() < 2:
            return
        target, rna = target[measured], rna[measured]
        self.axes = (
            principal_axes(rna, self.n_pcs),
            principal_axes(torch.nan_to_num(target), self.n_pcs),
        )
        scores = self._scores(rna, target)
        spread = torch.stack([part.var(0).sum().sqrt() for part in scores])
        self.scales = spread.clamp_min(1e-8)
        self.coordinates = self._space(scores)
        self.targets = target

    @torch.no_grad()
    def smooth(self, rna: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Blend ``target`` with the mean target of each cell's nearest teacher cells.

        ``(1 - smoothing) * target + smoothing * teacher``, the teacher being the mean target
        of the ``n_neighbors`` (at most 5 % of the teacher cells, at least one) nearest
        teacher cells (the cell itself among them when it is one). Unmeasured targets stay
        NaN; where no neighbour measured a protein, the cell's own value is kept. Unfitted or
        without smoothing, returns ``target``. Arguments as in :meth:`fit`.
        """
        if self.smoothing == 0 or not self.fitted:
            return target
        coordinates = self._space(self._scores(rna, target))
        distances = torch.cdist(coordinates, self.coordinates)
        # At most 5 % of the teacher cells, so a few cells are not smoothed towards their mean.
        k = min(self.n_neighbors, max(1, len(self.targets) // 20))
        nearest = distances.topk(k, dim=1, largest=False).indices
        teacher = torch.nanmean(self.targets[nearest], dim=1)
        blended = torch.lerp(target, teacher, self.smoothing)
        return torch.where(torch.isnan(teacher), target, blended)

    def _scores(self, rna: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Scores of cells on the RNA and protein principal components."""
        (rna_center, rna_loadings), (protein_center, protein_loadings) = self.axes
        return [
            (rna - rna_center) @ rna_loadings,
            (torch.nan_to_num(target) - protein_center) @ protein_loadings,
        ]

    def _space(self, scores: list[torch.Tensor]) -> torch.Tensor:
        """Coordinates: each part of the scores divided by its spread over the teacher cells."""
        parts = [part / scale for part, scale in zip(scores, self.scales, strict=True)]
        return torch.cat(parts, 1)
