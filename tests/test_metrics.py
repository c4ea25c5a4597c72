import numpy as np
import pandas as pd
import pytest

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
