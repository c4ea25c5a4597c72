"""Reference mapping: an RBF kernel ridge read-out from the cell token to the proteins.

Fits, after each training (``SCTRANSLATOR.train(reference_mapping=True)``), on at most 2,048
training cells with a measured protein (the anchors: their cell tokens and standardised
proteins); its kernel width, penalty and blend with the network are chosen on the validation
cells, and it is kept only if it raises their mean per-protein Pearson. Changes every
prediction of the proteins it knows: ``(1 - blend) * network + blend * kernel ridge``, the way
Seurat v4 maps proteins from a reference. ``fine_tune`` keeps its reference's. Saved as
``mapping.safetensors`` in the model folder.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sctranslator.metrics import per_protein_pearson

# The grid the read-out is chosen from: kernel width (times 1 / median squared distance),
# ridge penalty and blend with the network.
WIDTHS = (0.25, 0.5, 1.0, 2.0)
PENALTIES = (0.1, 0.3, 1.0)
BLENDS = (0.25, 0.5, 0.75, 1.0)


class ReferenceMapping(nn.Module):
    """Kernel ridge from cell tokens ``z`` to standardised proteins, blended with the network.

    Buffers (``None`` until fitted): ``anchors`` (training cells' ``z``), ``weights`` (the
    ridge solution), ``gamma`` (RBF width), ``blend`` per protein and ``protein_ids``, the
    tokens of the proteins it predicts. It is a torch module so that gradients flow through
    it (``tl.interactions``).
    """

    STATE = ("anchors", "weights", "gamma", "blend", "protein_ids")

    def __init__(self):
        super().__init__()
        for name in self.STATE:
            self.register_buffer(name, None)

    @property
    def fitted(self) -> bool:
        """Whether the read-out is set."""
        return self.anchors is not None

    def forward(
        self, protein: torch.Tensor, z: torch.Tensor, protein_ids: torch.Tensor
    ) -> torch.Tensor:
        """Blend the network's ``protein`` ``(cells, proteins)`` of tokens ``protein_ids``.

        Proteins the read-out does not know, and every protein when it is not fitted, are
        returned as the network predicts them.
        """
        if not self.fitted:
            return protein
        kernel = torch.exp(-self.gamma * torch.cdist(z, self.anchors) ** 2)
        match = protein_ids[:, None] == self.protein_ids[None, :]
        column = match.float().argmax(1)
        mapped = kernel @ self.weights[:, column]
        blend = torch.where(match.any(1), self.blend[column], 0.0)
        return torch.lerp(protein, mapped, blend)

    @torch.no_grad()
    def fit(
        self,
        anchors: torch.Tensor,
        targets: torch.Tensor,
        protein_ids: torch.Tensor,
        validation: tuple[torch.Tensor, np.ndarray, np.ndarray],
    ) -> tuple[float, float] | None:
        """Choose the read-out on validation cells, and keep it only if it helps them.

        Parameters
        ----------
        anchors
            Cell tokens of training cells ``(cells, n_hidden)``.
        targets
            Their standardised proteins; NaN (unmeasured) counts as the mean, 0.
        protein_ids
            Tokens of the proteins (the columns of ``targets``).
        validation
            Validation cells' cell tokens, the network's standardised predictions and the
            measured standardised proteins (NaN where unmeasured).

        Returns
        -------
        The validation mean per-protein Pearson of the network and of the blend when the
        read-out is kept; ``None`` (and no read-out) otherwise.
        """
        self.clear()
        z, network, measured = validation
        squared = torch.cdist(anchors, anchors) ** 2
        median = float(squared[squared > 0].median())
        query_squared = torch.cdist(z, anchors) ** 2
        eye = torch.eye(len(anchors), device=anchors.device)
        best = (-np.inf, None)
        for width in WIDTHS:
            kernel = torch.exp(-width / median * squared)
            query_kernel = torch.exp(-width / median * query_squared)
            for alpha in PENALTIES:
                weights = torch.linalg.solve(kernel + alpha * eye, targets.nan_to_num())
                mapped = (query_kernel @ weights).cpu().numpy()
                for blend in BLENDS:
                    mixed = np.asarray((1 - blend) * network + blend * mapped)
                    value = np.nanmean(per_protein_pearson(mixed, measured))
                    if value > best[0]:
                        best = (value, (width / median, alpha, blend))
        network_score = float(np.nanmean(per_protein_pearson(network, measured)))
        if best[1] is None or best[0] <= network_score:
            return None
        gamma, alpha, blend = best[1]
        self.set(anchors, targets, protein_ids, gamma, alpha, blend)
        return network_score, float(best[0])

    @torch.no_grad()
    def set(
        self,
        anchors: torch.Tensor,
        targets: torch.Tensor,
        protein_ids: torch.Tensor,
        gamma: float,
        alpha: float,
        blend: float | torch.Tensor,
    ) -> None:
        """Set the read-out: kernel ridge of ``targets`` on ``anchors`` (width ``gamma``)."""
        kernel = torch.exp(-gamma * torch.cdist(anchors, anchors) ** 2)
        eye = torch.eye(len(anchors), device=anchors.device, dtype=anchors.dtype)
        self.protein_ids = protein_ids.clone()
        self.anchors = anchors
        self.weights = torch.linalg.solve(kernel + alpha * eye, targets.nan_to_num())
        self.gamma = torch.tensor(float(gamma), device=anchors.device)
        blend = torch.as_tensor(blend, dtype=anchors.dtype, device=anchors.device)
        self.blend = blend.expand(len(protein_ids)).clone()

    @torch.no_grad()
    def copy_from(self, other: ReferenceMapping) -> None:
        """Take ``other``'s read-out (none if it has none); proteins are matched by token."""
        for name in self.STATE:
            value = getattr(other, name)
            setattr(self, name, None if value is None else value.clone())

    def clear(self) -> None:
        """Remove the read-out."""
        for name in self.STATE:
            setattr(self, name, None)
