import numpy as np
import pandas as pd
import pytest
import torch

import sctranslator as sct


def test_perfect_and_reversed_predictions():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(30, 4))
    np.testing.assert_allclose(sct.metrics.per_protein_pearson(truth, truth), 1.0)
    np.testing.assert_allclose(sct.metrics.per_protein_pearson(-truth, truth), -1.0)
    np.testing.assert_allclose(sct.metrics.per_protein_spearman(np.exp(truth), truth), 1.0)
    assert sct.metrics.rmse(truth + 2.0, truth) == pytest.approx(2.0)


def test_constant_prediction_has_no_per_protein_correlation_and_nan_is_ignored():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(20, 3))
    truth[0, 0] = np.nan
    constant = np.tile(np.nanmean(truth, axis=0), (20, 1))
    np.testing.assert_array_equal(sct.metrics.per_protein_pearson(constant, truth), 0.0)
    assert np.isnan(sct.metrics.per_protein_pearson(truth, constant)).all()
    summary = sct.metrics.evaluate(pd.DataFrame(truth + 0.1), pd.DataFrame(truth))
    assert summary["protein_pearson_mean"] == pytest.approx(1.0)
    assert summary["rmse"] == pytest.approx(0.1)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="Shapes differ"):
        sct.metrics.per_cell_pearson(np.zeros((3, 2)), np.zeros((2, 3)))


def test_streaming_validation_pearson_follows_the_metrics_convention():
    """MaskedPearson, fed batch by batch, gives per_protein_pearson's values and their nanmean:
    NaN (left out of the mean) for a constant truth or < 3 measured cells, 0 for a constant
    prediction."""
    from sctranslator.train import MaskedPearson

    rng = np.random.default_rng(2)
    prediction = rng.normal(2.0, 1.0, size=(97, 7))
    truth = 0.6 * prediction + rng.normal(1.0, 1.0, size=(97, 7))
    truth[rng.random(truth.shape) < 0.2] = np.nan
    prediction[:, 1] = 3.7  # constant prediction: 0
    truth[:, 2] = np.where(np.isnan(truth[:, 2]), np.nan, -1.25)  # constant truth: NaN
    truth[2:, 3] = np.nan  # 2 measured cells: NaN
    truth[:, 4] = np.nan  # never measured: NaN
    truth[:, 5] = -truth[:, 5]  # negative correlation
    expected = sct.metrics.per_protein_pearson(prediction, truth)
    assert expected[1] == 0.0 and np.isnan(expected[[2, 3, 4]]).all()
    assert np.isfinite(expected[[0, 5, 6]]).all() and expected[5] < 0

    metric = MaskedPearson(7)
    for rows in np.array_split(np.arange(97), [10, 11, 40, 80]):  # one batch of a single cell
        metric.update(torch.tensor(prediction[rows]), torch.tensor(truth[rows]))
    np.testing.assert_allclose(metric.per_protein().numpy(), expected, atol=1e-6)
    assert metric.compute().item() == pytest.approx(np.nanmean(expected), abs=1e-6)
    # float32 batches, as in training, give the same to float32 precision
    metric.reset()
    metric.update(torch.tensor(prediction, dtype=torch.float32), torch.tensor(truth).float())
    np.testing.assert_allclose(metric.per_protein().numpy(), expected, atol=1e-5)
    # no protein with a correlation: 0, not NaN (training monitors it)
    metric.reset()
    metric.update(torch.tensor(prediction[:2]), torch.tensor(truth[:2]))
    assert metric.compute().item() == 0.0
