"""Which predictions to trust: prediction intervals, novelty and recalibration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData

from sctranslator._docstrings import model_dsp

from . import _held_out
from ._prediction import encode


class IntervalMixin:
    """:meth:`predict_protein_interval`, :meth:`get_novelty` and :meth:`calibrate`.

    Needs from the model class: a fitted ``calibration``
    (:class:`~sctranslator.components.IntervalCalibration`), ``module``,
    ``reference_mapping``, ``_query`` (the cells to predict from) and ``_requested``
    (protein names and tokens).
    """

    @torch.inference_mode()
    @model_dsp.dedent
    def predict_protein_interval(
        self,
        adata: AnnData | MuData | None = None,
        *,
        level: float = 0.9,
        proteins: Sequence[str] | None = None,
        batch_size: int | None = None,
        indices: Sequence[int] | None = None,
        return_prediction: bool = False,
    ) -> tuple[pd.DataFrame, ...]:
        """Predict proteins with intervals that cover ``level`` of measured values.

        Adaptive cross-conformal intervals from the :attr:`calibration` (the validation cells
        of :meth:`train`, or the cells given to :meth:`calibrate`): on the standardised
        scale, protein ``p`` of cell ``c`` is predicted ± ``q * scale[p] * d[c]``, where
        ``d`` grows with the cell's novelty (:meth:`get_novelty`) as the calibration cells'
        errors do (novelty to a fitted power, about 0.2 on PBMC batches) and in proportion
        to novelty beyond the calibration cells' 90th percentile
        (:meth:`~sctranslator.components.IntervalCalibration.difficulty`). Coverage holds on
        average for cells exchangeable with the
        calibration cells; for cells of another tissue or assay it cannot be guaranteed, and
        a warning says when more than half of the cells are more novel than 90 % of the
        calibration cells. A cell with no counts in the genes the model reads gets the
        interval ``(-inf, inf)``.

        Parameters
        ----------
        %(param_query)s
        level
            Coverage, in ``(0, 1)``.
        proteins
            Protein names or tokens; the registered proteins by default. Proteins the
            calibration cells did not measure get the median protein scale.
        %(param_batch_size)s
        %(param_indices)s
        return_prediction
            Also return the prediction (as :meth:`predict_protein`), first.

        Returns
        -------
        ``(lower, upper)``, or ``(prediction, lower, upper)``: DataFrames of cells by
        proteins on the scale of :meth:`predict_protein`; NaN for a protein without a
        calibrated scale.

        Raises
        ------
        ValueError
            When the model is not calibrated (see :meth:`calibrate`) or ``level`` is not in
            ``(0, 1)``.

        Examples
        --------
        >>> lower, upper = model.predict_protein_interval(query["rna"], level=0.9)
        """
        self._check_if_trained(warn=True)
        names, protein_ids = self._requested(proteins)
        query = self._query(adata, indices)
        frames = _held_out.intervals(self, query, names, protein_ids, level, batch_size)
        index = pd.Index(query.obs_names)
        frames = frames if return_prediction else frames[1:]
        return tuple(pd.DataFrame(f, index=index, columns=names) for f in frames)

    @torch.inference_mode()
    @model_dsp.dedent
    def get_novelty(
        self,
        adata: AnnData | MuData | None = None,
        *,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.Series:
        """How far each cell is from the training cells, relative to held-out cells.

        The cell's distance to the training cells over the median of that distance among
        the calibration cells: 1 is a typical held-out cell. The distance is the mean
        distance of the cell's latent representation to its 10 nearest training cells
        times the mean distance of its expression profile (unit vectors of ``log1p`` counts
        per 10,000 on the genes the model reads) to its 10 nearest training cells': the
        latent keeps what predicts proteins, the profile what the network discarded, so a
        cell of a tissue the model never saw stands out even when it encodes near a blood
        cell (``benchmarks/novelty.py``). A cell with counts, but none in the genes the
        model reads, has novelty ``inf`` (with a warning). Models calibrated before the
        profiles were stored use the latent distance alone. Intervals widen with novelty
        (:meth:`predict_protein_interval`).

        Parameters
        ----------
        %(param_query)s
        %(param_indices)s
        %(param_batch_size)s

        Returns
        -------
        Series of novelty, indexed by ``obs_names``.

        Examples
        --------
        >>> (model.get_novelty(query["rna"]) > 2).mean()
        """
        self._check_if_trained(warn=True)
        calibration = _held_out.fitted_calibration(self.calibration)
        query = self._query(adata, indices)
        novelty = [
            _held_out.cell_novelty(calibration, encoded).cpu().numpy()
            for encoded in encode(self.module, query, batch_size)
        ]
        return pd.Series(np.concatenate(novelty), index=pd.Index(query.obs_names), name="novelty")

    def calibrate(self, adata: AnnData | MuData) -> None:
        """Calibrate the prediction intervals on paired cells the model did not train on.

        Replaces the :attr:`calibration` of :meth:`train`, e.g. after
        ``train(train_size=1.0)`` or to calibrate on cells like the query. The cells may be an
        AnnData (proteins in ``obsm``) or a MuData (RNA and protein modalities), with counts
        in ``X`` or in the layers the model was set up with, with or without its batch
        column (without it, they are one batch); ``adata`` is not changed. A protein zero in
        every cell of a batch counts as unmeasured there, as in training. The novelty anchors
        are the registered training cells, or the stored ones of a model loaded without data.

        Parameters
        ----------
        adata
            Paired RNA and protein counts, at least 10 cells with measured proteins.

        Raises
        ------
        ValueError
            With too few measured cells, or no training cells to measure novelty from.

        Examples
        --------
        >>> model.train(train_size=1.0)
        >>> model.calibrate(paired_mdata)
        """
        self._check_if_trained(warn=False)
        _held_out.calibrate_on(self, adata)
