"""What the model fits on cells it did not train on: read-out, calibration and reliability.

After each training, :func:`after_training` reads the validation cells to choose the
:class:`~sctranslator.components.ReferenceMapping`, fit the
:class:`~sctranslator.components.IntervalCalibration` and score each protein's held-out
Pearson; :func:`calibrate_on` refits the calibration on paired cells a user gives.
"""

from __future__ import annotations

import logging
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings

from sctranslator.components import IntervalCalibration, measured_in_batches
from sctranslator.components._calibration import log_profile
from sctranslator.data import read_all_cells, sample_rows, unregistered_proteins
from sctranslator.metrics import per_protein_pearson

from ._model_utils import registered_positions
from ._prediction import (
    encode,
    latents_and_predictions,
    paired_query,
    predicted_blocks,
    protein_scale,
)

logger = logging.getLogger(__name__)

MAX_HELD_OUT = 16384
"""Most validation cells read after training (calibration, reliability)."""
MAX_ANCHORS = 2048
"""Training cells whose latents anchor the read-out and novelty."""
MAX_MAPPING_VALIDATION = 2048
"""Validation cells that choose the reference-mapping read-out."""
MAX_PROFILE_GENES = 1024
"""Most genes of the anchors' expression profiles (novelty)."""
MIN_CALIBRATION_CELLS = 10
"""Fewest held-out cells (with a measured protein) that calibrate intervals."""
NOVEL_QUANTILE = 0.9
NOVEL_FRACTION = 0.5
"""Warn when more than this fraction of cells is more novel than :data:`NOVEL_QUANTILE` of
the calibration cells (``1 - NOVEL_QUANTILE`` of them would be, for cells like them)."""


def _cells(model, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the registered protein counts and batch codes of ``rows``, on the model's device."""
    cells = read_all_cells(model._source(), rows)
    return tuple(
        torch.as_tensor(cells[key], device=model.device)
        for key in (REGISTRY_KEYS.PROTEIN_EXP_KEY, REGISTRY_KEYS.BATCH_KEY)
    )


def standardized_proteins(model, rows: np.ndarray) -> torch.Tensor:
    """Standardised registered proteins of ``rows`` (NaN where unmeasured)."""
    return model.panel_statistics.standardize(*_cells(model, rows))


def measured_proteins(model, rows: np.ndarray) -> np.ndarray:
    """Return the registered proteins of ``rows`` on the protein scale (NaN: unmeasured)."""
    return model.panel_statistics.normalized(*_cells(model, rows)).cpu().numpy()


class Anchors(NamedTuple):
    """Training cells that novelty is measured from: rows, latents and expression profiles."""

    rows: np.ndarray | None
    latents: torch.Tensor
    profiles: torch.Tensor | None
    genes: torch.Tensor | None


@torch.no_grad()  # not inference mode: the mapping's anchors take part in gradients later
def training_anchors(model) -> Anchors:
    """Rows, latents and expression profiles of (at most :data:`MAX_ANCHORS`) training cells.

    The profiles are on the genes the model reads, at most :data:`MAX_PROFILE_GENES` of them
    (the most variable among these cells).
    """
    rows = sample_rows(model.train_indices, MAX_ANCHORS)
    query = model._query(None, rows)
    latents = torch.cat([encoded["z"] for encoded in encode(model.module, query, None)])
    gene_ids = torch.as_tensor(query.gene_ids)
    genes = _profile_genes(query, gene_ids)
    profiles = torch.cat([log_profile(x, gene_ids, genes)[0] for x in query.batches(None)[1]])
    return Anchors(rows, latents.to(model.device), profiles, genes)


def _profile_genes(query, gene_ids: torch.Tensor) -> torch.Tensor:
    """Return at most :data:`MAX_PROFILE_GENES` of ``query``'s genes, the most variable."""
    if len(gene_ids) <= MAX_PROFILE_GENES:
        return gene_ids
    total = square = 0
    for x in query.batches(None)[1]:
        x = x.nan_to_num().float()
        values = torch.log1p(x / x.sum(1, keepdim=True).clamp_min(1) * 1e4)
        total, square = total + values.sum(0), square + values.square().sum(0)
    n = len(query.rows)
    variance = square / n - (total / n).square()
    return gene_ids[variance.topk(MAX_PROFILE_GENES).indices.sort().values]


def cell_novelty(calibration: IntervalCalibration, encoded: dict) -> torch.Tensor:
    """Novelty of a batch of :func:`encode`'s cells; ``inf`` where the model read nothing."""
    novelty = calibration.novelty(encoded["z"], encoded["counts"], encoded["gene_ids"])
    return novelty.masked_fill(encoded["coverage"] <= 0, torch.inf)


def after_training(model, *, reference_mapping: bool) -> None:
    """Fit the read-out and calibration and score reliability on the validation cells."""
    validation = model.validation_indices
    held_out = validation is not None and len(validation) > 0
    anchors = training_anchors(model) if held_out else None  # encoded once
    if reference_mapping and held_out and len(validation) >= 3:
        fit_reference_mapping(model, anchors.rows, anchors.latents)
    calibrate_on_validation_cells(model, anchors)
    score_validation_cells(model)


@torch.no_grad()  # not inference mode: tl.interactions takes gradients through the read-out
def fit_reference_mapping(model, rows: np.ndarray, latents: torch.Tensor) -> None:
    """Choose the reference mapping on validation cells; its anchors are ``rows``' latents."""
    validation = sample_rows(model.validation_indices, MAX_MAPPING_VALIDATION)
    targets = standardized_proteins(model, rows)
    keep = ~targets.isnan().all(1)
    measured = standardized_proteins(model, validation).cpu().numpy()
    model.module.eval()
    z, network = latents_and_predictions(
        model.module, model.reference_mapping, model._query(None, validation)
    )
    scores = model.reference_mapping.fit(
        latents[keep.to(latents.device)],
        targets[keep],
        model.module.protein_ids,
        (z, network.cpu().numpy(), measured),
    )
    if scores is not None:
        logger.info("Reference mapping: validation Pearson %.4f -> %.4f.", *scores)


@torch.no_grad()  # not inference mode: the buffers set here are restored in place
def calibrate_on_validation_cells(model, anchors: Anchors | None) -> None:
    """Calibrate on the validation cells, or clear the calibration without them."""
    model.calibration.clear()
    if anchors is None:
        return
    rows = sample_rows(model.validation_indices, MAX_HELD_OUT)
    measured = standardized_proteins(model, rows)
    keep = ~measured.isnan().all(1)
    if int(keep.sum()) < MIN_CALIBRATION_CELLS:
        return
    rows = rows[keep.cpu().numpy()]
    _fit_calibration(model, model._query(None, rows), measured[keep], anchors)


@torch.inference_mode()
def score_validation_cells(model) -> None:
    """Set ``protein_reliability_`` from the validation cells of the last training."""
    validation = model.validation_indices
    rows = sample_rows(validation if validation is not None else [], MAX_HELD_OUT)
    if len(rows) == 0:
        model.protein_reliability_ = None
        return
    names = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    prediction = model.predict_protein(indices=rows, progress_bar=False).to_numpy()
    pearson = per_protein_pearson(prediction, measured_proteins(model, rows))
    model.protein_reliability_ = {
        str(n): float(r) for n, r in zip(names, pearson, strict=True) if np.isfinite(r)
    }


@torch.no_grad()
def _fit_calibration(model, query, measured: torch.Tensor, anchors: Anchors) -> None:
    """Fit a new calibration on ``query``'s cells and their ``measured`` proteins.

    The model's calibration is replaced only once the new one is fitted. Cells whose
    counts are all in genes the model does not read are left out.
    """
    calibration = IntervalCalibration(model.calibration.n_neighbors)
    calibration.set_anchors(anchors.latents, anchors.profiles, anchors.genes)
    distance, predicted, read = [], [], []
    for encoded, values in predicted_blocks(
        model.module, model.reference_mapping, query, model.module.protein_ids.cpu().numpy()
    ):
        distance.append(calibration.distance(encoded["z"], encoded["counts"], encoded["gene_ids"]))
        predicted.append(values)
        read.append(encoded["coverage"] > 0)
    read = torch.cat(read).to(measured.device)
    generator = torch.Generator().manual_seed(settings.seed or 0)  # seed may be unset
    distance, predicted = torch.cat(distance)[read], torch.cat(predicted)[read]
    calibration.fit(distance, predicted, measured[read], generator)
    for name in IntervalCalibration.STATE:
        setattr(model.calibration, name, getattr(calibration, name))


def calibrate_on(model, adata: AnnData | MuData) -> None:
    """Refit the calibration on paired cells ``adata`` that the model did not train on."""
    has_data = model.adata is not None or model._store is not None
    stored = model.calibration
    if has_data and model.train_indices is not None:
        anchors = training_anchors(model)
    elif stored.anchors is not None:
        anchors = Anchors(None, stored.anchors, stored.profiles, stored.profile_genes)
    else:
        raise ValueError(
            "calibrate needs the training cells to measure novelty: load the model with "
            "its training data, `SCTRANSLATOR.load(path, adata=training_data)`."
        )
    adata = paired_query(model, adata)
    _warn_if_training_cells(model, adata)
    measured = _paired_standardized(model, adata)
    rows = np.flatnonzero(~measured.isnan().all(1).cpu().numpy())
    if len(rows) < MIN_CALIBRATION_CELLS:
        raise ValueError(
            f"calibrate needs at least {MIN_CALIBRATION_CELLS} paired cells with measured "
            f"proteins; `adata` has {len(rows)}."
        )
    _fit_calibration(model, model._query(adata, rows), measured[rows], anchors)


def _paired_standardized(model, adata: AnnData | MuData) -> torch.Tensor:
    """Standardised registered proteins of unregistered paired cells (NaN: unmeasured)."""
    counts, names, groups = unregistered_proteins(adata, model.registry_["setup_args"])
    codes, uniques = pd.factorize(groups)
    measured = measured_in_batches(counts, codes, len(uniques))[codes]
    panel = model.panel_statistics
    counts = torch.as_tensor(np.where(measured, counts, np.float32(np.nan)), device=model.device)
    normalized = panel.normalize(counts)
    column = {name: j for j, name in enumerate(names)}
    registered = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    values = torch.full((len(counts), len(registered)), torch.nan, device=model.device)
    for i, name in enumerate(registered):
        if name in column:
            values[:, i] = normalized[:, column[name]]
    return (values - panel.mean) / panel.std


def _warn_if_training_cells(model, adata: AnnData | MuData) -> None:
    if model.adata is None or model.train_indices is None:
        return
    trained = np.asarray(model._rna(model.adata).obs_names)[model.train_indices]
    shared = np.isin(np.asarray(model._rna(adata).obs_names), trained).sum()
    if shared:
        warnings.warn(
            f"{shared} calibration cells are named like training cells; calibrating on "
            "cells the model trained on makes intervals too narrow.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )


def fitted_calibration(calibration: IntervalCalibration) -> IntervalCalibration:
    """Return ``calibration``; raise, naming the fix, when it is not fitted."""
    if not calibration.fitted:
        raise ValueError(
            "The model has no calibration for prediction intervals: it was trained "
            f"without validation cells (train_size=1.0, or fewer than "
            f"{MIN_CALIBRATION_CELLS}). Call `model.calibrate(paired_mdata)` with paired RNA "
            "and protein cells it did not train on."
        )
    return calibration


def intervals(
    model, query, names, protein_ids: np.ndarray, level: float, batch_size: int | None
) -> list[np.ndarray]:
    """Prediction, lower and upper bounds of ``query``'s cells (one pass over the cells)."""
    calibration = fitted_calibration(model.calibration)
    q = float(calibration.quantile(level))
    mean, std = protein_scale(model, names, protein_ids)
    scale_all = calibration.protein_scale.cpu().numpy()
    positions = registered_positions(model, names, protein_ids)
    scale = np.where(positions >= 0, scale_all[positions.clip(0)], np.nanmedian(scale_all))
    width = q * scale.astype(np.float32) * std
    values, halves, novelty = [], [], []
    for encoded, predicted in predicted_blocks(
        model.module,
        model.reference_mapping,
        query,
        protein_ids,
        batch_size=batch_size,
        progress_bar=None,
    ):
        cell = cell_novelty(calibration, encoded)
        values.append(predicted.cpu().numpy() * std + mean)
        halves.append(calibration.difficulty(cell).cpu().numpy()[:, None] * width)
        novelty.append(cell.cpu().numpy())
    _warn_if_novel(calibration, np.concatenate(novelty))
    value, half = np.concatenate(values), np.concatenate(halves)
    return [value, value - half, value + half]


def _warn_if_novel(calibration: IntervalCalibration, novelty: np.ndarray) -> None:
    reference = calibration.novelty_reference.cpu().numpy()
    threshold = float(np.quantile(reference, NOVEL_QUANTILE))
    fraction = float((novelty > threshold).mean())
    if fraction > NOVEL_FRACTION:
        warnings.warn(
            f"{fraction:.0%} of the {len(novelty)} cells are farther from the training "
            f"cells than {NOVEL_QUANTILE:.0%} of the calibration cells (novelty > "
            f"{threshold:.2f}; about {1 - NOVEL_QUANTILE:.0%} would be, for cells like the "
            "training cells): they are probably of a tissue, assay or condition the model "
            "never saw. Their intervals are widened in proportion to novelty, but coverage "
            "is guaranteed only for cells like the calibration cells. See "
            "`model.get_novelty`, or calibrate on paired cells like these with "
            "`model.calibrate`.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )
