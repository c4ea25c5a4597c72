"""Fine-tuning that cannot drift far from its reference: weight interpolation chosen by CV."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sctranslator.metrics import per_protein_pearson

from ._held_out import measured_proteins

INTERPOLATION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def starting_parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copy the module's parameters (the transferred start of a fine-tuning)."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@torch.no_grad()
def interpolate_parameters(
    module: torch.nn.Module, start: dict[str, torch.Tensor], weight: float
) -> None:
    """Set every parameter to ``start + weight * (trained - start)`` (WiSE-FT).

    ``weight=0`` gives back the transferred start (the reference's predictions of the
    proteins it shares), ``weight=1`` the fine-tuned model.
    """
    for name, parameter in module.named_parameters():
        parameter.copy_(torch.lerp(start[name], parameter, weight))


def choose_interpolation(
    n_cells: int,
    fit_fold: Callable[[np.ndarray], tuple[object, dict[str, torch.Tensor]]],
    n_folds: int,
    seed: int,
) -> tuple[float, dict[float, float], np.ndarray]:
    """Pick the interpolation weight with the best out-of-fold mean per-protein Pearson.

    Returns the weight, the mean score of every weight, and the per-protein out-of-fold
    Pearson at the chosen weight.

    ``fit_fold(train_rows)`` fine-tunes on those cells and returns the model (registered on
    all cells) and its starting parameters; each held-out fold is predicted at every weight of
    :data:`INTERPOLATION_GRID`, and the out-of-fold predictions of all cells are scored
    together. Ties go to the smaller weight (closer to the reference).
    """
    folds = np.array_split(np.random.default_rng(seed).permutation(n_cells), n_folds)
    predictions = {w: [] for w in INTERPOLATION_GRID}
    measured, order = [], []
    for held_out in folds:
        held_out = np.sort(held_out)
        model, start = fit_fold(np.setdiff1d(np.arange(n_cells), held_out))
        trained = starting_parameters(model.module)
        for weight in INTERPOLATION_GRID:
            interpolate_parameters(model.module, start, weight)
            predictions[weight].append(model.predict_protein(indices=held_out).to_numpy())
            for name, parameter in model.module.named_parameters():
                parameter.data.copy_(trained[name])
        measured.append(measured_proteins(model, held_out))
        order.append(held_out)
    truth = np.concatenate(measured)
    per_protein = {
        w: per_protein_pearson(np.concatenate(p), truth) for w, p in predictions.items()
    }
    scores = {w: float(np.nanmean(r)) for w, r in per_protein.items()}
    best = max(INTERPOLATION_GRID, key=lambda w: (round(scores[w], 4), -w))
    return best, scores, per_protein[best]
