"""Interval calibration: conformal prediction intervals and the novelty of cells.

Fits, after each training, on the validation cells (or on the paired cells given to
``SCTRANSLATOR.calibrate``): per-protein error scales and conformal scores of held-out
predictions, with the training cells as the anchors of novelty (their latents, and their
expression profiles on the genes the model reads). Changes nothing in the predictions;
``SCTRANSLATOR.predict_protein_interval`` and ``get_novelty`` read it. Saved as
``calibration.safetensors`` in the model folder.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def log_profile(
    counts: torch.Tensor, gene_ids: torch.Tensor, genes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expression profiles of cells on ``genes``: unit vectors of ``log1p`` counts per 10,000.

    Parameters
    ----------
    counts
        Raw counts ``(cells, len(gene_ids))`` (NaN: not measured, read as 0).
    gene_ids
        The token of each column of ``counts``.
    genes
        The tokens of the profile.

    Returns
    -------
    The profiles ``(cells, k)`` on the ``k`` genes of ``genes`` that ``gene_ids`` holds, and
    their positions in ``genes``. The library size is the cell's counts in ``gene_ids``; a
    cell without counts in those genes has a zero profile.

    Examples
    --------
    >>> values, columns = log_profile(x, gene_ids, calibration.profile_genes)
    """
    counts = counts.nan_to_num().float()
    values = torch.log1p(counts / counts.sum(1, keepdim=True).clamp_min(1) * 1e4)
    size = int(max(int(gene_ids.max()), int(genes.max()))) + 1
    position = torch.full((size,), -1, dtype=torch.long, device=counts.device)
    position[gene_ids.to(counts.device)] = torch.arange(len(gene_ids), device=counts.device)
    where = position[genes.to(counts.device)]
    columns = torch.nonzero(where >= 0).flatten()
    return _unit(values[:, where[columns]]), columns


PROPORTIONAL_BEYOND = 0.9
"""Quantile of the calibration cells' novelty beyond which widths grow in proportion to it.

Chosen among 0.5, 0.75, 0.9 and 1 with ``benchmarks/intervals.py`` (PBMC batches both ways
and a shifted synthetic query); 1 (the most novel calibration cell) under-covered the shifted
query (0.84 at 0.9), proportional widening everywhere over-covered the PBMC batches."""


def _difficulty(novelty: torch.Tensor, power: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``novelty ** power`` up to ``top``, then in proportion to novelty (``inf`` stays)."""
    top = top.clamp_min(torch.finfo(novelty.dtype).tiny)
    inside = novelty.clamp_max(top).pow(power)
    return torch.where(novelty <= top, inside, top.pow(power) * novelty / top)


def _unit(values: torch.Tensor) -> torch.Tensor:
    return values / values.norm(dim=1, keepdim=True).clamp_min(1e-12)


class IntervalCalibration(nn.Module):
    """Adaptive cross-conformal intervals for standardised protein predictions.

    The **novelty** of a cell is its distance to the training cells (the ``anchors``) over the
    median of that distance among the calibration cells (``typical_distance``), so 1 is a
    typical held-out cell. The distance is the mean distance of the cell's latent to its
    ``n_neighbors`` nearest anchors' latents, times, when ``profiles`` are stored, the mean
    distance of its expression profile (:func:`log_profile` on ``profile_genes``) to its
    ``n_neighbors`` nearest anchors' profiles. The latent says how far the cell is in what
    the network kept; the profile sees what it discarded (a pancreas cell's genes can
    encode near a blood cell's).

    The conformity score of a measured value ``y`` (cell ``c``, protein ``p``, standardised
    scale) with prediction ``ŷ`` is ``|y - ŷ| / (protein_scale[p] * difficulty(c))``, with
    :meth:`difficulty` the cell's novelty to the power errors grow with (fitted, see
    :meth:`fit`). The interval at level ``1 - α`` is
    ``ŷ ± q * protein_scale[p] * difficulty(c)`` with ``q`` the ``⌈(n + 1)(1 - α)⌉``-th
    smallest of the ``n`` calibration ``scores``.

    Buffers (None until :meth:`fit`): ``protein_scale`` ``(proteins,)``, ``scores`` (sorted),
    ``anchors`` ``(cells, n_hidden)``, ``typical_distance`` (scalar), ``novelty_reference``,
    the sorted novelty of the calibration cells, ``novelty_power`` (scalar),
    ``profile_genes`` (tokens) and ``profiles`` ``(cells, genes)``, float16. Calibrations
    saved before profiles and power were stored have neither: their novelty is the latent
    distance alone and their intervals widen in proportion to it.
    """

    STATE = (
        "protein_scale",
        "scores",
        "anchors",
        "typical_distance",
        "novelty_reference",
        "profile_genes",
        "profiles",
        "novelty_power",
    )

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
            value = getattr(other, name)
            setattr(self, name, None if value is None else value.clone())
        index = torch.as_tensor(positions, device=other.protein_scale.device)
        scale = other.protein_scale[index.clamp_min(0)]
        self.protein_scale = torch.where(index >= 0, scale, torch.nan)

    def clear(self) -> None:
        """Remove the calibration."""
        for name in self.STATE:
            setattr(self, name, None)

    def set_anchors(
        self,
        anchors: torch.Tensor,
        profiles: torch.Tensor | None = None,
        profile_genes: torch.Tensor | None = None,
    ) -> None:
        """Set the training cells novelty is measured from: latents and expression profiles.

        ``profiles`` are :func:`log_profile` of the anchors on ``profile_genes``; without
        them novelty is the latent distance alone.

        Examples
        --------
        >>> calibration.set_anchors(latents, log_profile(counts, gene_ids, genes)[0], genes)
        """
        self.anchors = anchors
        if profiles is None:
            self.profiles = self.profile_genes = None
        else:
            self.profiles = profiles.to(anchors.device, torch.float16)
            self.profile_genes = profile_genes.to(anchors.device, torch.long)

    def _nearest(self, points: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        k = min(self.n_neighbors, len(anchors))
        return torch.cdist(points, anchors).topk(k, dim=1, largest=False).values.mean(1)

    def latent_distance(self, z: torch.Tensor) -> torch.Tensor:
        """Mean distance of each latent ``z`` to its ``n_neighbors`` nearest anchors' latents.

        Examples
        --------
        >>> calibration.latent_distance(encoded["z"])
        """
        return self._nearest(z, self.anchors.to(z.dtype))

    def distance(
        self,
        z: torch.Tensor,
        counts: torch.Tensor | None = None,
        gene_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Distance of cells to the anchors: latent, times expression profile when stored.

        Parameters
        ----------
        z
            Latents ``(cells, n_hidden)``.
        counts, gene_ids
            The cells' raw counts and the token of each column (the genes the model reads);
            needed when :attr:`profiles` are stored.

        Examples
        --------
        >>> calibration.distance(encoded["z"], encoded["counts"], encoded["gene_ids"])
        """
        distance = self.latent_distance(z)
        if self.profiles is None:
            return distance
        if counts is None or gene_ids is None:
            raise ValueError("This calibration measures novelty on counts too: pass `counts`.")
        values, columns = log_profile(counts.to(z.device), gene_ids, self.profile_genes)
        anchors = _unit(self.profiles[:, columns].float())
        return distance * self._nearest(values, anchors)

    def novelty(
        self,
        z: torch.Tensor,
        counts: torch.Tensor | None = None,
        gene_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Distance to the training cells over the calibration cells' median (1: typical).

        Examples
        --------
        >>> calibration.novelty(encoded["z"], encoded["counts"], encoded["gene_ids"])
        """
        return self.distance(z, counts, gene_ids) / self.typical_distance

    def difficulty(self, novelty: torch.Tensor) -> torch.Tensor:
        """How much wider than a typical cell's each cell's interval is, from its novelty.

        ``novelty ** novelty_power`` up to the novelty of the calibration cells' 90th
        percentile (:data:`PROPORTIONAL_BEYOND`), in proportion to novelty beyond it: few
        held-out cells say how errors grow there, and cells of another batch or tissue are
        mostly there; ``inf`` for an infinite novelty. Calibrations saved before the power was
        fitted use ``novelty``.

        Examples
        --------
        >>> half_width = q * calibration.protein_scale * calibration.difficulty(novelty)[:, None]
        """
        if self.novelty_power is None:
            return novelty
        top = self.novelty_reference.quantile(PROPORTIONAL_BEYOND)
        return _difficulty(novelty, self.novelty_power, top)

    @torch.no_grad()
    def fit(
        self,
        distance: torch.Tensor,
        predicted: torch.Tensor,
        measured: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """Calibrate on held-out cells: their :meth:`distance`, ``predicted`` and ``measured``.

        Call :meth:`set_anchors` first. ``predicted`` and ``measured`` are standardised,
        ``measured`` NaN where a protein was not measured. Novelty is the distance over its
        median here. Two things are fitted on cells, and the conformal scores are taken on
        other cells (cross-conformal over two random halves, so every cell gives scores):

        - the **power** of novelty that errors grow with: the least-squares slope of the log
          of a cell's mean relative error (each protein's error over its mean error) on its
          log novelty, within ``[0, 1]`` (PBMC batches: about 0.2; 1 would widen intervals in
          proportion to novelty, more than errors grow), applied up to the 90th percentile
          of novelty and in proportion to novelty beyond (:meth:`difficulty`);
        - the per-protein **scale**: the mean of ``|y - ŷ| / difficulty`` (the median over
          proteins for those measured in fewer than ``min_measured`` cells).

        Each half's scores use the power and scales of the other half; the power and scales
        kept for prediction are fitted on all the cells.
        """
        typical = distance.quantile(0.5).clamp_min(torch.finfo(distance.dtype).tiny)
        novelty = distance / typical
        error = (measured - predicted).abs()
        order = torch.randperm(len(distance), generator=generator).to(distance.device)
        halves = order[: len(distance) // 2], order[len(distance) // 2 :]
        scores = []
        for fitted_on, scored in (halves, halves[::-1]):
            power, scale = self._power_and_scale(novelty[fitted_on], error[fitted_on])
            top = novelty[fitted_on].quantile(PROPORTIONAL_BEYOND)
            difficulty = _difficulty(novelty[scored], power, top)
            scores.append((error[scored] / difficulty[:, None] / scale).flatten())
        power, scale = self._power_and_scale(novelty, error)
        scores = torch.cat(scores)
        self.protein_scale = scale
        self.novelty_power = power
        self.scores = scores[~scores.isnan()].sort().values
        self.typical_distance = typical
        self.novelty_reference = novelty.sort().values

    def _power_and_scale(
        self, novelty: torch.Tensor, error: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        counted = (~error.isnan()).sum(0)
        mean_error = error.nan_to_num().sum(0) / counted.clamp_min(1)
        relative = (error / mean_error.clamp_min(torch.finfo(error.dtype).tiny)).nanmean(1)
        usable = (relative > 0) & relative.isfinite() & (novelty > 0) & novelty.isfinite()
        power = torch.ones((), device=novelty.device)
        if int(usable.sum()) >= 3:
            x, y = novelty[usable].log(), relative[usable].log()
            x = x - x.mean()
            if float(x.square().sum()) > 0:
                power = ((x * (y - y.mean())).sum() / x.square().sum()).clamp(0, 1)
        difficulty = _difficulty(novelty, power, novelty.quantile(PROPORTIONAL_BEYOND))
        error = error / difficulty[:, None]
        scale = error.nan_to_num().sum(0) / counted.clamp_min(1)
        usable = (counted >= self.min_measured) & (scale > 0)
        if not bool(usable.any()):
            raise ValueError(
                "Too few measured proteins to calibrate: each protein needs at least "
                f"{self.min_measured} measured values in half of the calibration cells."
            )
        return power, torch.where(usable, scale, scale[usable].median())

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
