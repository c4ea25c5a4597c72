"""Fitting the reference-mapping read-out after training."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ._card import held_out_pearson
from ._model_utils import registered_proteins, sample_rows

logger = logging.getLogger(__name__)


class ReferenceMappingMixin:
    """Kernel ridge from the cell token, chosen and blended on the validation cells."""

    def _standardized_proteins(self, rows: np.ndarray) -> torch.Tensor:
        """Standardised registered proteins of ``rows`` (NaN where unmeasured)."""
        return self.module.standardized_target(*registered_proteins(self, rows))

    @torch.no_grad()  # not inference mode: tl.interactions takes gradients through the read-out
    def _fit_reference_mapping(
        self, train: np.ndarray, latents: torch.Tensor, max_validation: int = 2048
    ) -> None:
        """Choose and set the reference-mapping read-out on the validation cells.

        ``train`` and ``latents`` are training rows and their cell tokens
        (:meth:`_training_anchors`); those with a measured protein are the anchors.
        """
        if self.validation_indices is None or len(self.validation_indices) < 3:
            return
        validation = sample_rows(self.validation_indices, max_validation)
        targets = self._standardized_proteins(train)
        keep = ~targets.isnan().all(1)
        anchors, targets = latents[keep.to(latents.device)], targets[keep]
        measured = self._standardized_proteins(validation).cpu().numpy()
        self.module.eval()
        z, network = self._latents_and_predictions(self._query(None, validation))
        network = network.cpu().numpy()
        squared = torch.cdist(anchors, anchors) ** 2
        median = float(squared[squared > 0].median())
        query_squared = torch.cdist(z, anchors) ** 2
        eye = torch.eye(len(anchors), device=self.device)
        best = (-np.inf, None)
        for scale in (0.25, 0.5, 1.0, 2.0):
            kernel = torch.exp(-scale / median * squared)
            query_kernel = torch.exp(-scale / median * query_squared)
            for alpha in (0.1, 0.3, 1.0):
                weights = torch.linalg.solve(kernel + alpha * eye, targets.nan_to_num())
                mapped = (query_kernel @ weights).cpu().numpy()
                for blend in (0.25, 0.5, 0.75, 1.0):
                    value = np.nanmean(
                        held_out_pearson(
                            np.asarray((1 - blend) * network + blend * mapped), measured
                        )
                    )
                    if value > best[0]:
                        best = (value, (scale / median, alpha, blend))
        network_score = np.nanmean(held_out_pearson(network, measured))
        if best[1] is None or best[0] <= network_score:
            return
        gamma, alpha, blend = best[1]
        self.module.set_reference_mapping(
            anchors, targets, gamma, alpha, torch.full((len(self.module.protein_ids),), blend)
        )
        logger.info(
            "Reference mapping: validation Pearson %.4f -> %.4f (blend %.2f).",
            network_score,
            best[0],
            blend,
        )
