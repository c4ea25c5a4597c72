"""Accuracy of predicted protein abundances, on one documented scale for every method.

Every function takes ``prediction`` and ``truth`` as ``(cells, proteins)`` arrays or
DataFrames on the same scale; NaN in ``truth`` marks unmeasured values, which are ignored.

One convention for a correlation, here and wherever sctranslator reports one (the
validation Pearson of training, :class:`~sctranslator.train.MaskedPearson`, follows it):
NaN where the truth is constant (all its measured values equal) or has fewer than 3 measured
values, since there is then no variation to predict; 0 where only the prediction is constant
(e.g. the average-profile control), since it carries no information about the variation.
Means over proteins or cells leave NaN out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sctranslator._docstrings import metrics_dsp


def _as_arrays(prediction, truth) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if prediction.shape != truth.shape:
        raise ValueError(f"Shapes differ: prediction {prediction.shape}, truth {truth.shape}.")
    return prediction, truth


def _pearson_along(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    """Pearson correlation along ``axis``, with the module's convention.

    NaN where the truth is constant or has fewer than 3 measured values; 0 where only the
    prediction is constant. Constant means that all the measured values are equal.
    """
    measured = ~np.isnan(y)
    n = measured.sum(axis)
    prediction_constant = _constant(x, measured, axis)
    truth_constant = _constant(y, measured, axis)
    x = np.where(measured, x, 0.0)
    y = np.where(measured, y, 0.0)
    safe_n = np.maximum(n, 1)
    mx = x.sum(axis) / safe_n
    my = y.sum(axis) / safe_n
    dx = np.where(measured, x - np.expand_dims(mx, axis), 0.0)
    dy = np.where(measured, y - np.expand_dims(my, axis), 0.0)
    cov = (dx * dy).sum(axis)
    var_x, var_y = (dx**2).sum(axis), (dy**2).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(var_x * var_y > 0, cov / np.sqrt(var_x * var_y), 0.0)
    r = np.where(prediction_constant, 0.0, r)
    return np.where((n >= 3) & ~truth_constant, r, np.nan)


def _constant(values: np.ndarray, measured: np.ndarray, axis: int) -> np.ndarray:
    """Whether all measured values along ``axis`` are equal (False without any)."""
    high = np.where(measured, values, -np.inf).max(axis)
    low = np.where(measured, values, np.inf).min(axis)
    return high == low


@metrics_dsp.dedent
def per_protein_pearson(prediction, truth) -> np.ndarray:
    """Pearson correlation across cells, one value per protein.

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    Array ``(proteins,)``; NaN where the truth is constant or has fewer than 3 measured
    values, 0 where only the prediction is constant (the convention of the module).

    Examples
    --------
    >>> r = sct.metrics.per_protein_pearson(predicted, measured)
    >>> np.nanmean(r)  # the mean over proteins, as training reports it
    """
    return _pearson_along(*_as_arrays(prediction, truth), axis=0)


@metrics_dsp.dedent
def per_protein_spearman(prediction, truth) -> np.ndarray:
    """Spearman correlation across cells, one value per protein.

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    Array ``(proteins,)``.

    Examples
    --------
    >>> rho = sct.metrics.per_protein_spearman(predicted, measured)
    """
    prediction, truth = _as_arrays(prediction, truth)
    measured = ~np.isnan(truth)
    ranks_truth = np.where(measured, rankdata(np.where(measured, truth, np.inf), axis=0), np.nan)
    ranks_pred = rankdata(np.where(measured, prediction, np.inf), axis=0)
    return _pearson_along(ranks_pred, ranks_truth, axis=0)


@metrics_dsp.dedent
def per_cell_pearson(prediction, truth) -> np.ndarray:
    """Pearson correlation across proteins, one value per cell.

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    Array ``(cells,)``.

    Examples
    --------
    >>> r = sct.metrics.per_cell_pearson(predicted, measured)
    """
    return _pearson_along(*_as_arrays(prediction, truth), axis=1)


@metrics_dsp.dedent
def per_cell_cosine(prediction, truth) -> np.ndarray:
    """Cosine similarity across proteins, one value per cell (not a correlation).

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    Array ``(cells,)``; NaN for a cell whose vectors are zero.

    Examples
    --------
    >>> cosine = sct.metrics.per_cell_cosine(predicted, measured)
    """
    prediction, truth = _as_arrays(prediction, truth)
    measured = ~np.isnan(truth)
    x, y = np.where(measured, prediction, 0.0), np.where(measured, truth, 0.0)
    norm = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (x * y).sum(1) / norm, np.nan)


@metrics_dsp.dedent
def rmse(prediction, truth) -> float:
    """Root mean squared error over measured values.

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    The RMSE, a float.

    Examples
    --------
    >>> error = sct.metrics.rmse(predicted, measured)
    """
    prediction, truth = _as_arrays(prediction, truth)
    measured = ~np.isnan(truth)
    return float(np.sqrt(np.mean((prediction[measured] - truth[measured]) ** 2)))


@metrics_dsp.dedent
def evaluate(prediction, truth) -> pd.Series:
    """Summarise accuracy: per-protein Pearson and Spearman, per-cell Pearson, cosine, RMSE.

    Per-protein correlations as mean and median over proteins, per-cell ones as means.

    Parameters
    ----------
    %(param_prediction)s
    %(param_truth)s

    Returns
    -------
    Series with ``protein_pearson_mean``, ``protein_pearson_median``,
    ``protein_spearman_mean``, ``cell_pearson_mean``, ``cell_cosine_mean`` and ``rmse``.

    Examples
    --------
    >>> sct.metrics.evaluate(predicted_df, measured_df)
    """
    protein_r = per_protein_pearson(prediction, truth)
    return pd.Series(
        {
            "protein_pearson_mean": np.nanmean(protein_r),
            "protein_pearson_median": np.nanmedian(protein_r),
            "protein_spearman_mean": np.nanmean(per_protein_spearman(prediction, truth)),
            "cell_pearson_mean": np.nanmean(per_cell_pearson(prediction, truth)),
            "cell_cosine_mean": np.nanmean(per_cell_cosine(prediction, truth)),
            "rmse": rmse(prediction, truth),
        }
    )
