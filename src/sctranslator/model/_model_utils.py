"""Small helpers of the model: devices, epochs, protein positions, training-data checks."""

from __future__ import annotations

import numpy as np
import torch
from scvi import REGISTRY_KEYS

from sctranslator.data import check_unique, check_values, iter_row_chunks


def torch_device(accelerator: str, device: int | str) -> torch.device:
    """Return the torch device of Lightning-style ``accelerator`` and ``device`` arguments."""
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda" if device == "auto" else f"cuda:{device}")


def registered_positions(model, names, token_ids) -> np.ndarray:
    """Position of each protein among ``model``'s registered proteins (``-1``: none).

    Proteins are matched by name, then by token id.
    """
    by_name, by_token = {}, {}
    registered = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    for j, (name, token) in enumerate(
        zip(registered, model.module.protein_ids.tolist(), strict=True)
    ):
        by_name.setdefault(str(name), j)
        by_token.setdefault(int(token), j)
    return np.array(
        [
            by_name.get(str(name), by_token.get(int(token), -1))
            for name, token in zip(names, token_ids, strict=True)
        ],
        dtype=np.int64,
    )


def default_max_epochs(n_cells: int, cell_passes: int = 300_000) -> int:
    """Epochs for about ``cell_passes`` cells seen in training, between 10 and 400.

    Examples
    --------
    >>> default_max_epochs(400), default_max_epochs(5000), default_max_epochs(10**6)
    (400, 60, 10)
    """
    return int(np.clip(np.ceil(cell_passes / max(n_cells, 1)), 10, 400))


def validate_training_data(
    rna, obs_names, gene_names, proteins, protein_names, missing_genes: bool = False
) -> None:
    """Check the names and values of paired training RNA and proteins."""
    check_unique(gene_names, what="gene")
    check_unique(protein_names, what="protein")
    check_values(
        rna,
        what="the RNA counts",
        obs_names=obs_names,
        allow_nan=missing_genes,
        require_nonempty=True,
    )
    check_values(proteins, what="the protein counts", obs_names=obs_names, allow_nan=True)
    measured = sum(int((~np.isnan(b)).sum()) for _, b in iter_row_chunks(proteins))
    if measured == 0:
        raise ValueError("The protein matrix has no measured value (all NaN).")
