"""Accuracy floor on real PBMC cells: train on batch p3_0, predict batch p4_0 from RNA."""

import numpy as np
import pytest
import scvi
from helpers import batch, setup

import sctranslator as sct
from sctranslator._baselines import average_profile


@pytest.mark.slow  # trains to convergence (about a minute on one CPU thread)
def test_model_beats_the_average_profile_on_held_out_cells(pbmc):
    scvi.settings.seed = 0
    train = setup(batch(pbmc, "p3_0"))
    test = batch(pbmc, "p4_0")
    model = sct.SCTRANSLATOR(train)
    model.train(max_epochs=120, enable_progress_bar=False)
    measured = sct.pp.normalize_protein(test["prot"], layer="counts")
    predicted = model.predict_protein(test["rna"])
    control = average_profile(
        sct.pp.normalize_protein(train["prot"], layer="counts"), test.obs_names
    )
    model_scores = sct.metrics.evaluate(predicted, measured)
    control_scores = sct.metrics.evaluate(control, measured)
    # The control's per-protein Pearson is 0 by construction; a model that ignores RNA
    # (collapsed to the mean) scores ~0.03 here, a working one ~0.3.
    assert control_scores["protein_pearson_mean"] == 0
    assert model_scores["protein_pearson_mean"] > 0.2
    assert model_scores["cell_pearson_mean"] > control_scores["cell_pearson_mean"] + 0.03
    assert model_scores["rmse"] < 0.9 * control_scores["rmse"]
    r = sct.metrics.per_protein_pearson(predicted, measured)
    assert np.nanmax(r) > 0.7
