"""Which predictions to trust: conformal prediction intervals and the novelty of cells."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings

from sctranslator.data import get_matrix, get_modality
from sctranslator.module._calibration import Calibration

from ._model_utils import MAX_HELD_OUT, protein_names, registered_positions, sample_rows

if TYPE_CHECKING:
    from ._prediction_mixin import _Query

# Fewest held-out cells (with a measured protein) that calibrate intervals.
MIN_CALIBRATION_CELLS = 10
# Training cells whose latents are the anchors of novelty (a random subset of larger sets).
MAX_ANCHORS = 2048
# Warn when more than this fraction of cells is more novel than 99 % of the calibration cells.
NOVEL_FRACTION = 0.25


class IntervalMixin:
    """Split-conformal prediction intervals, recalibration and per-cell novelty."""

    @torch.inference_mode()
    def predict_protein_interval(
        self,
        adata: AnnData | MuData | None = None,
        level: float = 0.9,
        proteins: Sequence[str] | None = None,
        batch_size: int | None = None,
        indices: Sequence[int] | None = None,
        return_prediction: bool = False,
    ) -> tuple[pd.DataFrame, ...]:
        """Predict proteins with prediction intervals that cover ``level`` of measured values.

        Adaptive split-conformal intervals, calibrated on cells the model did not train on
        (the validation cells of :meth:`train`, or the cells given to :meth:`calibrate`): on
        the standardised scale, the interval of protein ``p`` in cell ``c`` is the prediction
        ± ``q * scale[p] * novelty[c]``, where ``scale`` is the protein's typical held-out
        error, ``novelty`` the cell's distance to the training cells (:meth:`get_novelty`)
        and ``q`` the conformal quantile of the calibration errors. Coverage is guaranteed on
        average over cells and proteins for cells exchangeable with the calibration cells;
        another batch, lab or tissue may be covered less. When more than a quarter of the cells
        are more novel than 99 % of the calibration cells, a warning says so. Prediction and
        intervals come from one pass over the cells.

        Parameters
        ----------
        adata
            As in :meth:`predict_protein`.
        level
            Coverage, in ``(0, 1)``.
        proteins
            Protein names or tokens; the registered proteins by default. Proteins the
            calibration cells did not measure get the median protein scale.
        batch_size
            Cells per batch.
        indices
            Cells to predict; all by default.
        return_prediction
            Also return the prediction (as :meth:`predict_protein`), first.

        Returns
        -------
        ``(lower, upper)``, or ``(prediction, lower, upper)`` with ``return_prediction``:
        DataFrames of cells by proteins on the scale of :meth:`predict_protein`, with
        ``lower <= prediction <= upper``; NaN for a protein without a calibrated scale (a new
        protein of a model made by :meth:`fine_tune` at weight 0).

        Raises
        ------
        ValueError
            When the model is not calibrated (trained with ``train_size=1.0``, or saved
            before calibration existed; see :meth:`calibrate`) or ``level`` is not in
            ``(0, 1)``.

        Examples
        --------
        >>> lower, upper = model.predict_protein_interval(query["rna"], level=0.9)
        >>> pred, lower, upper = model.predict_protein_interval(query, return_prediction=True)
        """
        self._check_if_trained(warn=True)
        calibration = self._fitted_calibration()
        q = float(calibration.quantile(level))
        names, protein_ids = self._requested_proteins(proteins)
        mean, std = self._protein_scale(names, protein_ids)
        width = q * self._interval_scale(names, protein_ids) * std
        query = self._query(adata, indices)
        values, halves, novelty = [], [], []
        for encoded, predicted in self._predicted_blocks(
            query, protein_ids, None, batch_size, None
        ):
            cell = calibration.novelty(encoded["z"]).cpu().numpy()
            values.append(predicted.cpu().numpy() * std + mean)
            halves.append(cell[:, None] * width)
            novelty.append(cell)
        self._warn_if_novel(np.concatenate(novelty))
        value, half = np.concatenate(values), np.concatenate(halves)
        frames = [value, value - half, value + half][0 if return_prediction else 1 :]
        index = pd.Index(query.obs_names)
        return tuple(pd.DataFrame(f, index=index, columns=names) for f in frames)

    @torch.inference_mode()
    def get_novelty(
        self,
        adata: AnnData | MuData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.Series:
        """How far each cell is from the training cells, relative to held-out cells.

        The mean distance of the cell's latent representation
        (:meth:`get_latent_representation`) to its 10 nearest training cells, divided by the
        median of that distance over the calibration cells: 1 is a typical held-out cell,
        2 twice as far. Intervals widen in proportion (:meth:`predict_protein_interval`).

        Parameters
        ----------
        adata
            As in :meth:`predict_protein`.
        indices
            Cells; all by default.
        batch_size
            Cells per batch.

        Returns
        -------
        Series of novelty, indexed by ``obs_names``.

        Examples
        --------
        >>> novelty = model.get_novelty(query["rna"])
        >>> (novelty > 2).mean()
        """
        self._check_if_trained(warn=True)
        calibration = self._fitted_calibration()
        query = self._query(adata, indices)
        novelty = [
            calibration.novelty(encoded["z"]).cpu().numpy()
            for encoded in self._encode(query, batch_size)
        ]
        return pd.Series(np.concatenate(novelty), index=pd.Index(query.obs_names), name="novelty")

    def calibrate(self, adata: AnnData | MuData) -> None:
        """Calibrate the prediction intervals on paired cells the model did not train on.

        Replaces the calibration of :meth:`train` (its validation cells), e.g. for a model
        trained on every cell (``train_size=1.0``) or to calibrate on cells like the query
        (another batch or lab). The cells need RNA and measured proteins, laid out as the
        training data (the same modalities, layers or ``obsm`` key); a protein that is zero in
        every cell of a batch counts as unmeasured there, as in training. The novelty anchors
        are the training cells of the registered data, or the stored ones for a model loaded
        without data.

        Parameters
        ----------
        adata
            Paired RNA and protein data, at least 10 cells with measured proteins.

        Raises
        ------
        ValueError
            With too few measured cells, or without training cells to measure novelty from.

        Examples
        --------
        >>> model.train(train_size=1.0)
        >>> model.calibrate(paired_mdata)
        >>> lower, upper = model.predict_protein_interval(query["rna"])
        """
        self._check_if_trained(warn=False)
        has_data = self.adata is not None or self._store is not None
        if has_data and self.train_indices is not None:
            anchors = self._training_anchors()[1]
        elif self.module.calibration.anchors is not None:
            anchors = self.module.calibration.anchors
        else:
            raise ValueError(
                "calibrate needs the training cells to measure novelty: load the model with "
                "its training data, `SCTRANSLATOR.load(path, adata=training_data)`."
            )
        self._warn_if_training_cells(adata)
        measured = self._paired_proteins(adata)
        rows = np.flatnonzero(~measured.isnan().all(1).cpu().numpy())
        if len(rows) < MIN_CALIBRATION_CELLS:
            raise ValueError(
                f"calibrate needs at least {MIN_CALIBRATION_CELLS} paired cells with measured "
                f"proteins; `adata` has {len(rows)}."
            )
        self._fit_calibration(self._query(adata, rows), measured[rows], anchors)

    # ------------------------------------------------------------------------- internals
    @torch.no_grad()  # not inference mode: the buffers set here are restored in place
    def _calibrate_on_validation_cells(self, anchors: torch.Tensor | None) -> None:
        """Calibrate on the validation cells of the last training, or clear the calibration.

        ``anchors`` are the training cells' latents (:meth:`_training_anchors`); ``None``
        when there are no validation cells.
        """
        self.module.calibration.clear()
        if anchors is None:
            return
        rows = sample_rows(self.validation_indices, MAX_HELD_OUT)
        measured = self._standardized_proteins(rows)
        keep = ~measured.isnan().all(1)
        if int(keep.sum()) < MIN_CALIBRATION_CELLS:
            return
        rows = rows[keep.cpu().numpy()]
        self._fit_calibration(self._query(None, rows), measured[keep], anchors)

    @torch.no_grad()  # not inference mode: the buffers set here are restored in place
    def _fit_calibration(
        self, query: _Query, measured: torch.Tensor, anchors: torch.Tensor
    ) -> None:
        """Fit :class:`~sctranslator.module._calibration.Calibration` on the cells of ``query``."""
        z, predicted = self._latents_and_predictions(query)
        generator = torch.Generator().manual_seed(settings.seed or 0)  # seed may be unset
        self.module.calibration.fit(z, predicted, measured, anchors, generator)

    def _training_anchors(self) -> tuple[np.ndarray, torch.Tensor]:
        """Rows and latent representations of (at most ``MAX_ANCHORS``) training cells."""
        rows = sample_rows(self.train_indices, MAX_ANCHORS)
        latents = self.get_latent_representation(indices=rows)
        return rows, torch.as_tensor(latents, device=self.device)

    def _fitted_calibration(self) -> Calibration:
        calibration = self.module.calibration
        if not calibration.fitted:
            raise ValueError(
                "The model has no calibration for prediction intervals: it was trained "
                f"without validation cells (train_size=1.0, or fewer than "
                f"{MIN_CALIBRATION_CELLS}), or saved before calibration existed. Call "
                "`model.calibrate(paired_mdata)` with paired RNA and protein cells it did "
                "not train on."
            )
        return calibration

    def _interval_scale(self, names: Sequence[str], protein_ids: np.ndarray) -> np.ndarray:
        """Calibrated scale of each requested protein; the median scale for the others."""
        scale_all = self.module.calibration.protein_scale.cpu().numpy()
        positions = registered_positions(self, names, protein_ids)
        scale = np.where(positions >= 0, scale_all[positions.clip(0)], np.nanmedian(scale_all))
        return scale.astype(np.float32)

    def _warn_if_novel(self, novelty: np.ndarray) -> None:
        reference = self.module.calibration.novelty_reference.cpu().numpy()
        threshold = float(np.quantile(reference, 0.99))
        fraction = float((novelty > threshold).mean())
        if fraction > NOVEL_FRACTION:
            warnings.warn(
                f"{fraction:.0%} of the {len(novelty)} cells are farther from the training "
                f"cells than 99% of the calibration cells (novelty > {threshold:.2f}): their "
                "intervals are widened, but coverage is guaranteed only for cells like the "
                "calibration cells. See `model.get_novelty`, or calibrate on paired cells like "
                "these with `model.calibrate`.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )

    def _warn_if_training_cells(self, adata: AnnData | MuData) -> None:
        if self.adata is None or self.train_indices is None:
            return
        trained = np.asarray(self._rna_data(self.adata).obs_names)[self.train_indices]
        shared = np.isin(np.asarray(self._rna_data(adata).obs_names), trained).sum()
        if shared:
            warnings.warn(
                f"{shared} calibration cells are named like training cells; calibrating on "
                "cells the model trained on makes intervals too narrow.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )

    def _paired_proteins(self, adata: AnnData | MuData) -> torch.Tensor:
        """Standardised registered proteins of ``adata``'s cells (NaN where unmeasured)."""
        args = self.registry_["setup_args"]
        names = protein_names(adata, self.registry_)
        if isinstance(adata, MuData):
            modalities = args.get("modalities") or {}
            modality = get_modality(adata, modalities.get("protein_layer"), "the proteins")
            counts = get_matrix(modality, args.get("protein_layer"), "the proteins")
            obs = (
                adata.obs
                if modalities.get("batch_key") is None
                else (adata.mod[modalities["batch_key"]].obs)
            )
        else:
            counts = adata.obsm[args["protein_expression_obsm_key"]]
            obs = adata.obs
        counts = counts.to_numpy() if isinstance(counts, pd.DataFrame) else counts
        counts = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
        counts = np.asarray(counts, dtype=np.float32)
        batch_key = args.get("batch_key")
        groups = obs[batch_key].to_numpy() if batch_key in obs else np.zeros(len(counts))
        for group in pd.unique(groups):
            cells = groups == group
            counts[np.ix_(cells, (np.nan_to_num(counts[cells]) == 0).all(0))] = np.nan
        normalized = self.module.normalize_protein(torch.as_tensor(counts, device=self.device))
        column = {name: j for j, name in enumerate(names)}
        registered = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        values = torch.full((len(counts), len(registered)), torch.nan, device=self.device)
        for i, name in enumerate(registered):
            if name in column:
                values[:, i] = normalized[:, column[name]]
        return (values - self.module.protein_mean) / self.module.protein_std
