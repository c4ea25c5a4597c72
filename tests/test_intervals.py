"""Prediction intervals, calibration, novelty, and their place in MuData and plots."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import scvi
import torch
from helpers import batch, setup
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from safetensors.torch import load_file, save_file

import sctranslator as sct
from sctranslator.components import IntervalCalibration
from sctranslator.components._calibration import log_profile


@pytest.fixture(scope="module")
def model(pbmc):
    """A small model trained on p3_0; its 40 validation cells calibrate the intervals."""
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=32, max_genes=96)
    model.train(max_epochs=15, batch_size=32, plan_kwargs={"lr": 3e-3}, enable_progress_bar=False)
    return model


@pytest.fixture(scope="module")
def query(pbmc):
    """Batch p4_0: cells of another batch, with measured CLR proteins."""
    cells = batch(pbmc, "p4_0")
    return cells, sct.pp.normalize_protein(cells["prot"], layer="counts")


def _coverage(measured, lower, upper):
    values = measured.loc[lower.index, lower.columns].to_numpy()
    inside = (values >= lower.to_numpy()) & (values <= upper.to_numpy())
    return inside[~np.isnan(values)].mean()


def test_intervals_cover_held_out_cells_and_bracket_the_prediction(model, query):
    cells, measured = query
    predicted = model.predict_protein(cells["rna"])
    for level, band in ((0.5, (0.35, 0.65)), (0.9, (0.8, 0.97))):
        lower, upper = model.predict_protein_interval(cells["rna"], level=level)
        assert lower.shape == upper.shape == predicted.shape
        assert (lower.index == predicted.index).all() and (
            lower.columns == predicted.columns
        ).all()
        assert (lower.to_numpy() <= predicted.to_numpy()).all()
        assert (predicted.to_numpy() <= upper.to_numpy()).all()
        assert band[0] < _coverage(measured, lower, upper) < band[1], level
    same, *_ = model.predict_protein_interval(cells["rna"], return_prediction=True)
    np.testing.assert_array_equal(same.to_numpy(), predicted.to_numpy())


def test_width_grows_with_level_and_adapts_per_protein_and_cell(model, query):
    rna = query[0]["rna"]
    widths = [
        np.subtract(*model.predict_protein_interval(rna, level=lv)[::-1])
        for lv in (0.5, 0.8, 0.9, 0.95)
    ]
    for narrow, wide in zip(widths, widths[1:], strict=False):
        assert (wide.to_numpy() > narrow.to_numpy()).all()
    width = widths[2].to_numpy()
    assert width.std(0).mean() > 0 and width.std(1).mean() > 0  # not one constant width
    subset = model.predict_protein_interval(rna, proteins=["CD19", "CD14"], indices=[0, 5])
    full = model.predict_protein_interval(rna)[0].iloc[[0, 5]][["CD19", "CD14"]]
    np.testing.assert_allclose(subset[0], full, atol=1e-4)  # batches round differently


def test_bad_level_is_refused(model, query):
    for level in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="level must be in"):
            model.predict_protein_interval(query[0]["rna"], level=level)


def test_save_load_round_trip_keeps_intervals(model, query, tmp_path):
    rna = query[0]["rna"]
    expected = model.predict_protein_interval(rna, level=0.8)
    model.save(tmp_path / "model")
    loaded = sct.SCTRANSLATOR.load(tmp_path / "model")
    for before, after in zip(
        expected, loaded.predict_protein_interval(rna, level=0.8), strict=True
    ):
        np.testing.assert_array_equal(before.to_numpy(), after.to_numpy())
    np.testing.assert_array_equal(model.get_novelty(rna), loaded.get_novelty(rna))
    # a calibration saved before the anchors' profiles were stored: latent novelty alone
    path = tmp_path / "model" / "calibration.safetensors"
    state = {k: v for k, v in load_file(path).items() if not k.startswith("profile")}
    save_file(state, path)
    older = sct.SCTRANSLATOR.load(tmp_path / "model")
    assert older.calibration.profiles is None
    latent = (
        older.calibration.distance(torch.as_tensor(older.get_latent_representation(rna)))
        / older.calibration.typical_distance
    )
    np.testing.assert_allclose(older.get_novelty(rna), latent.numpy(), rtol=1e-5)
    assert (older.predict_protein_interval(rna)[1].notna()).all().all()


def test_the_shipped_reference_gives_intervals(query):
    reference = sct.SCTRANSLATOR.load_pretrained("pbmc")  # calibrated on its validation cells
    rna = query[0]["rna"]
    prediction = reference.predict_protein(rna)
    lower, upper = reference.predict_protein_interval(rna, level=0.8)
    assert (lower.to_numpy() <= prediction.to_numpy()).all()
    assert (prediction.to_numpy() <= upper.to_numpy()).all()
    reference.calibrate(query[0])  # recalibrated on a lab's own paired cells
    recalibrated = reference.predict_protein_interval(rna, level=0.8)
    assert not np.allclose(recalibrated[1].to_numpy(), upper.to_numpy())
    assert (recalibrated[0].to_numpy() <= recalibrated[1].to_numpy()).all()


def test_novelty_is_one_for_typical_cells_and_warns_for_novel_ones(model, pbmc, query):
    train = model.adata
    validation = model.get_novelty(train, indices=np.sort(model.validation_indices))
    assert validation.median() == pytest.approx(1.0, rel=1e-5)
    # training cells are typical too (about 1), whatever the seed
    assert model.get_novelty(train, indices=np.sort(model.train_indices)).median() < 1.1
    scrambled = query[0]["rna"].copy()  # every gene's counts under another gene's name
    scrambled.var_names = np.random.default_rng(0).permutation(scrambled.var_names)
    assert model.get_novelty(scrambled).median() > 1.25  # typical held-out cells: 1
    with pytest.warns(UserWarning, match="farther from the training cells") as caught:
        far = model.predict_protein_interval(scrambled)
    assert sum("farther from the training" in str(w.message) for w in caught) == 1
    near = model.predict_protein_interval(query[0]["rna"])
    assert np.median(far[1] - far[0]) > np.median(near[1] - near[0])


def test_calibrate_a_model_trained_on_every_cell(pbmc, query):
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=32, max_genes=96)
    model.train(max_epochs=3, train_size=1.0, enable_progress_bar=False)
    cells, measured = query
    with pytest.raises(ValueError, match=r"train_size=1\.0.*model\.calibrate\(paired_mdata\)"):
        model.predict_protein_interval(cells["rna"])
    with pytest.raises(ValueError, match="at least 10 paired cells"):
        model.calibrate(cells[:5].copy())
    with pytest.warns(UserWarning, match="named like training cells"):
        model.calibrate(model.adata[:20].copy())
    model.calibrate(cells[:200].copy())  # half of the other batch calibrates
    lower, upper = model.predict_protein_interval(cells["rna"][200:].copy(), level=0.9)
    assert 0.8 < _coverage(measured, lower, upper) < 0.97
    # a transferred model starts from the weights only, not from the reference's calibration
    transferred = sct.SCTRANSLATOR.load_query_data(cells[:50].copy(), model)
    assert not transferred.calibration.fitted


def test_conformal_quantile_covers_exchangeable_data():
    generator = torch.Generator().manual_seed(0)
    calibration = IntervalCalibration()
    anchors = torch.randn(200, 4, generator=generator)

    def cells(n):
        z = torch.randn(n, 4, generator=generator) * torch.rand(n, 1, generator=generator) * 3
        sigma = torch.linspace(0.5, 2, 30) * (1 + z.norm(dim=1, keepdim=True))
        return z, torch.zeros(n, 30), torch.randn(n, 30, generator=generator) * sigma

    calibration.set_anchors(anchors)
    z, predicted, measured = cells(400)
    calibration.fit(calibration.distance(z), predicted, measured, generator)
    assert len(calibration.scores) == 400 * 30  # cross-conformal: every cell gives scores
    assert 0 < calibration.novelty_power <= 1  # errors grow with novelty, here less than 1:1
    z, predicted, measured = cells(2000)
    for level in (0.5, 0.9):
        half = (
            calibration.quantile(level)
            * calibration.protein_scale
            * calibration.difficulty(calibration.novelty(z))[:, None]
        )
        assert abs(((measured - predicted).abs() <= half).float().mean() - level) < 0.03
    n = len(calibration.scores)
    assert calibration.quantile(0.9) == calibration.scores[math.ceil((n + 1) * 0.9) - 1]
    with pytest.raises(ValueError, match="calibration scores"):
        calibration.quantile(1 - 1 / (2 * n))


def test_widths_grow_with_novelty_as_held_out_errors_do():
    generator = torch.Generator().manual_seed(0)
    calibration = IntervalCalibration()
    calibration.set_anchors(torch.zeros(50, 2))
    distance = torch.exp(torch.randn(400, generator=generator) * 0.5)  # novelty spread
    for power in (0.0, 0.5, 1.0):
        noise = torch.randn(400, 20, generator=generator)
        measured = noise * distance[:, None] ** power * torch.linspace(0.5, 2, 20)
        calibration.fit(distance, torch.zeros(400, 20), measured, generator)
        assert abs(float(calibration.novelty_power) - power) < 0.1, power
    far = calibration.novelty_reference[-1] * torch.tensor([1.0, 2.0, torch.inf])
    widths = calibration.difficulty(far)  # beyond the calibration cells: in proportion
    torch.testing.assert_close(widths[1], 2 * widths[0])
    assert torch.isinf(widths[2])


def test_profiles_of_a_large_panel_keep_its_most_variable_genes():
    mdata = sct.datasets.synthetic_cite(n_cells=300, n_genes=1500, n_proteins=10, n_batches=2)
    setup(mdata)
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(mdata, n_hidden=16, n_heads=2, max_genes=32)
    model.train(max_epochs=1, enable_progress_bar=False)
    calibration = model.calibration
    assert calibration.profiles.shape == (len(calibration.anchors), 1024)
    genes = model.vocabulary.lookup_genes(mdata["rna"].var_names)
    assert set(calibration.profile_genes.tolist()) <= set(genes.tolist())
    novelty = model.get_novelty(mdata, indices=np.sort(model.validation_indices))
    assert novelty.median() == pytest.approx(1.0, rel=1e-5)


def test_novelty_sees_an_expression_profile_the_latent_discards():
    generator = torch.Generator().manual_seed(0)
    genes = torch.arange(100, 150)  # tokens of the 50 genes the model reads
    blood = torch.zeros(50).index_fill(0, torch.arange(20), 5.0)  # expressed: genes 0-19
    anchors = torch.randn(200, 4, generator=generator)
    counts = torch.poisson(blood.expand(200, 50), generator=generator)
    calibration = IntervalCalibration()
    calibration.set_anchors(anchors, log_profile(counts, genes, genes)[0], genes)
    held_out = torch.poisson(blood.expand(40, 50), generator=generator)
    z = anchors[:40] + 0.1 * torch.randn(40, 4, generator=generator)
    calibration.fit(
        calibration.distance(z, held_out, genes), torch.zeros(40, 3), torch.randn(40, 3), generator
    )
    other = torch.zeros(50).index_fill(0, torch.arange(30, 50), 5.0)  # other genes expressed
    tissue = torch.poisson(other.expand(40, 50), generator=generator)
    typical = calibration.novelty(z, held_out, genes)
    novel = calibration.novelty(z, tissue, genes)  # the same latents: the profile tells
    assert typical.quantile(0.5) == pytest.approx(1.0, rel=1e-5)
    assert novel.median() > 2 * typical.median()
    order = torch.randperm(50, generator=generator)  # any column order, genes by token
    torch.testing.assert_close(calibration.novelty(z, tissue[:, order], genes[order]), novel)
    with pytest.raises(ValueError, match="pass `counts`"):
        calibration.novelty(z)


def test_fill_protein_writes_interval_layers(model, query, tmp_path):
    cells = query[0].copy()
    sct.tl.fill_protein(cells, model, interval=0.9)
    filled = cells["prot_pred"]
    assert set(filled.layers) == {"lower", "upper"}
    assert (filled.layers["lower"] <= filled.X).all() and (
        filled.X <= filled.layers["upper"]
    ).all()
    np.testing.assert_allclose(filled.X, model.predict_protein(cells).to_numpy(), atol=1e-6)
    assert filled.var["reliability"].notna().sum() > 150
    with pytest.raises(ValueError, match="not written to an `output` file"):
        sct.tl.fill_protein(
            cells, model, key_added="other", interval=0.9, output=tmp_path / "p.h5ad"
        )


def test_reliability_and_interval_plots(model, query, tmp_path):
    cells, measured = query
    ax = sct.pl.protein_reliability(model, show=False, save=tmp_path / "reliability.png")
    assert isinstance(ax, Axes) and (tmp_path / "reliability.png").stat().st_size > 0
    assert len(ax.collections[0].get_offsets()) == model.protein_reliability.notna().sum()
    ax = sct.pl.protein_reliability(model.protein_reliability, proteins=["CD19", "CD14"])
    assert len(ax.texts) == 2
    predicted, lower, upper = model.predict_protein_interval(cells["rna"], return_prediction=True)
    fig = sct.pl.predicted_vs_measured(
        predicted, measured, proteins=["CD19"], lower=lower, upper=upper, show=False
    )
    assert isinstance(fig, Figure) and "in interval" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="both `lower` and `upper`"):
        sct.pl.predicted_vs_measured(predicted, measured, proteins=["CD19"], lower=lower)
