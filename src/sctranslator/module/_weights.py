"""Setting the module's weights: from data, from a reference module, and freezing them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ._translator import TranslatorModule

FREEZE_PRESETS: dict[str, tuple[str, ...]] = {
    "encoder": (
        "embedding.value",
        "cell_scale",
        "cell_shift",
        "latents",
        "reader",
        "encoder",
        "encoder_norm",
    ),
}


def principal_axes(values: torch.Tensor, n_components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and top principal axes ``(features, n)`` of ``values`` ``(cells, features)``."""
    center = values.mean(0)
    rank = min(n_components, *values.shape)
    _, _, axes = torch.svd_lowrank(values - center, q=rank, niter=4)
    return center, axes


class WeightsMixin:
    """Data-dependent start, transfer from a reference and freezing of the module."""

    def freeze(self, parts: str | Sequence[str] | None) -> list[str]:
        """Stop training the parameters of ``parts``; return the names of the frozen parameters.

        ``parts`` is a preset of :data:`FREEZE_PRESETS` (``"encoder"``: the gene encoder, i.e.
        the value embedding, the encoder layers and their norms; the token identities stay
        trainable so new tokens can learn) or submodule names such as
        ``["embedding", "encoder"]``. Frozen parameters get ``requires_grad=False`` and are left
        out of the optimiser, so they do not change at all (not even by weight decay).
        """
        if parts is None:
            return []
        prefixes = FREEZE_PRESETS.get(parts, (parts,)) if isinstance(parts, str) else tuple(parts)
        names = dict(self.named_parameters())
        frozen = [n for n in names if any(n == p or n.startswith(f"{p}.") for p in prefixes)]
        matched = {p for p in prefixes if any(n == p or n.startswith(f"{p}.") for n in frozen)}
        if set(prefixes) - matched:
            modules = sorted({n.split(".")[0] for n in names})
            raise ValueError(
                f"Cannot freeze {sorted(set(prefixes) - matched)}: no such parameters. Use "
                f"{sorted(FREEZE_PRESETS)} or submodules among {modules}."
            )
        for name in frozen:
            names[name].requires_grad_(False)
        return frozen

    @torch.no_grad()
    def initialize_from_data(self, x: torch.Tensor) -> None:
        """Start from the training RNA ``x`` (raw counts of the registered genes, some cells).

        The identities of the registered genes become the loadings of a PCA of the normalised
        RNA (scaled to the spread of a random embedding), so the cell token is the cell's
        principal-component scores; the cell token's scale and shift then standardise it over
        these cells. Called once, before the first training, by
        :class:`~sctranslator.train.DataInitialization`; sets :attr:`initialized`.
        """
        x, gene_ids = self.read_registered_genes(x)
        normalized = self.normalize_rna(x)
        values = torch.nan_to_num(normalized)
        n_genes, n_hidden = values.shape[1], self.cell_shift.shape[0]
        _, loadings = principal_axes(values, n_hidden)
        identity = torch.zeros(n_genes, n_hidden, device=values.device)
        identity[:, : loadings.shape[1]] = loadings * n_genes**0.5
        self.embedding.identity.weight[gene_ids] = identity
        _, pooled = self.embedding(*self.select_genes(gene_ids, normalized)[:2])
        spread = pooled.std(0).mean().clamp_min(1e-6)
        self.cell_scale.fill_(float(1 / spread))
        self.cell_shift.copy_(-pooled.mean(0) / spread)
        self.initialized.fill_(True)

    @torch.no_grad()
    def transfer_from(
        self,
        reference: TranslatorModule,
        new_token_sources: Sequence[Sequence[int]] = (),
    ) -> None:
        """Start from the weights of ``reference``, a module with a prefix of this vocabulary.

        The tokens of ``reference`` must be the first tokens of this module, in the same order
        (:meth:`sctranslator.data.Vocabulary.extend` guarantees it). Every weight and buffer
        is copied (the reference is not changed). Token
        ``len(reference vocabulary) + i`` starts with the mean identity and protein bias of the
        reference tokens ``new_token_sources[i]`` (e.g. an antibody's coding genes) or, without
        any, with a random identity of the reference identities' spread and no bias. Batches
        start as the mean of the reference batch embeddings.

        Raises
        ------
        ValueError
            When the architectures differ (a weight's shape does not match).
        """
        own = self.state_dict()
        source = reference.state_dict()
        n_reference = len(source["embedding.identity.weight"])
        if len(own["embedding.identity.weight"]) < n_reference:
            raise ValueError("This module's vocabulary does not extend the reference's.")
        for name, value in source.items():
            if name == "gene_weight":  # a new token starts as an average gene
                own[name][:n_reference] = value
                own[name][n_reference:] = value.mean()
            elif name in ("embedding.identity.weight", "protein_bias.weight"):
                own[name][:n_reference] = value
                spread = value.std(0)
                for offset, row in enumerate(range(n_reference, len(own[name]))):
                    has_sources = offset < len(new_token_sources)
                    sources = list(new_token_sources[offset]) if has_sources else []
                    if sources:
                        own[name][row] = value[sources].mean(0)
                    elif name == "embedding.identity.weight":  # a new bias stays at zero
                        own[name][row] = torch.randn_like(spread) * spread
            elif name == "batch_embedding.weight":
                own[name][:] = value.mean(0)
            elif name not in own or own[name].shape != value.shape:
                shape = None if name not in own else tuple(own[name].shape)
                raise ValueError(
                    f"Weight {name!r} has shape {tuple(value.shape)} in the reference but "
                    f"{shape} here: build the model with the reference's architecture."
                )
            else:
                own[name].copy_(value)
        self.load_state_dict(own)
