import json
import logging
import os

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch
from helpers import batch
from scvi import REGISTRY_KEYS

import sctranslator as sct


@pytest.fixture(scope="module")
def query(pbmc):
    return batch(pbmc, "p4_0")["rna"].copy()


def test_model_is_an_scvi_tools_model(trained, capsys):
    from scvi.model.base import BaseModelClass
    from scvi.module.base import BaseModuleClass

    assert isinstance(trained, BaseModelClass) and isinstance(trained.module, BaseModuleClass)
    print(trained)
    assert "500 genes -> 224 proteins" in capsys.readouterr().out
    assert trained.is_trained
    history = trained.history
    for key in ("pearson_validation", "mse_validation", "mse_train", "train_loss"):
        assert key in history and len(history[key]) == 3
    assert sct.SCTRANSLATOR is sct.model.SCTRANSLATOR


def test_predictions_are_a_dataframe_of_cells_by_proteins(trained, query):
    pred = trained.predict_protein(query)
    assert pred.shape == (400, 224)
    assert (pred.index == query.obs_names).all()
    assert list(pred.columns) == list(trained.adata["prot"].var_names)
    assert np.isfinite(pred.to_numpy()).all()
    assert pred.std().mean() > 0
    subset = trained.predict_protein(query, indices=[5, 1], proteins=["CD4-1", "PD-1"])
    assert list(subset.index) == [query.obs_names[5], query.obs_names[1]]
    np.testing.assert_allclose(subset["CD4-1"], pred["CD4-1"].iloc[[5, 1]], rtol=1e-5, atol=1e-5)
    latent = trained.get_latent_representation(query)
    assert latent.shape == (400, 32)


def test_gene_order_does_not_matter(trained, query):
    permuted = query[:, np.random.default_rng(0).permutation(query.n_vars)].copy()
    pd.testing.assert_frame_equal(
        trained.predict_protein(query), trained.predict_protein(permuted), atol=1e-4, rtol=1e-4
    )


def test_gene_subsets_and_unknown_genes_are_reported(trained, query, caplog):
    subset = query[:, :400].copy()
    renamed = subset.var_names.tolist()
    renamed[:3] = ["NOT_A_GENE_1", "NOT_A_GENE_2", "NOT_A_GENE_3"]
    subset.var_names = renamed
    with caplog.at_level(logging.WARNING):
        pred = trained.predict_protein(subset)
    assert "3 of 400 genes are not in the model's vocabulary" in caplog.text
    assert "NOT_A_GENE_1" in caplog.text
    assert pred.shape == (400, 224) and np.isfinite(pred.to_numpy()).all()
    unknown = query.copy()
    unknown.var_names = [f"X{i}" for i in range(query.n_vars)]
    with pytest.raises(ValueError, match="None of the 500 genes"):
        trained.predict_protein(unknown)


def test_any_number_of_proteins_in_one_call(trained, query):
    names = list(trained.adata["prot"].var_names) * 6
    pred = trained.predict_protein(query[:20], proteins=names)
    assert pred.shape == (20, 1344)
    np.testing.assert_allclose(pred.iloc[:, 0], pred.iloc[:, 224], rtol=1e-5)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        trained.predict_protein(query, proteins=["CD4-1", "NOT_A_PROTEIN"])


def test_query_errors_name_the_problem(trained, query):
    bad = query[:10].copy()
    counts = bad.layers["counts"].toarray()
    counts[2, 4] = np.nan
    bad.layers["counts"] = counts
    with pytest.raises(ValueError, match="NaN"):
        trained.predict_protein(bad)
    empty = query[:10].copy()
    empty.layers["counts"] = sp.csr_matrix(empty.shape, dtype=np.float32)
    with pytest.raises(ValueError, match="10 cells have no counts"):
        trained.predict_protein(empty)
    no_layer = query[:10].copy()
    no_layer.X = no_layer.layers.pop("counts")
    expected = trained.predict_protein(query[:10])
    pd.testing.assert_frame_equal(trained.predict_protein(no_layer), expected)  # counts in X
    no_layer.X = no_layer.X / 3.0  # not counts: the missing layer is an error
    with pytest.raises(KeyError, match="'counts' not found"):
        trained.predict_protein(no_layer)
    with pytest.raises(ValueError, match="not a training batch"):
        trained.predict_protein(query, transform_batch="p9")


def test_query_is_not_modified(trained, query):
    before = query.copy()
    trained.predict_protein(query)
    assert set(query.uns) == set(before.uns)
    assert (query.layers["counts"] != before.layers["counts"]).nnz == 0


def test_fill_protein_writes_an_aligned_modality_that_round_trips(trained, pbmc, tmp_path):
    query = batch(pbmc, "p4_0")
    sct.tl.fill_protein(query, trained, key_added="prot_pred")
    filled = query["prot_pred"]
    assert (filled.obs_names == query["rna"].obs_names).all()
    assert filled.shape == (400, 224)
    assert filled.var.loc["CD3-1", "token"] == "CD3E"
    assert filled.uns["sctranslator"]["protein_normalization"] == "clr"
    with pytest.raises(ValueError, match="already exists"):
        sct.tl.fill_protein(query, trained, key_added="prot_pred")
    sct.tl.fill_protein(query, trained, key_added="prot_pred", proteins=["CD4-1"], overwrite=True)
    assert query["prot_pred"].shape == (400, 1)
    query.write_h5mu(tmp_path / "q.h5mu")
    back = md.read_h5mu(tmp_path / "q.h5mu")
    np.testing.assert_allclose(back["prot_pred"].X, query["prot_pred"].X)
    assert back["prot_pred"].uns["sctranslator"]["model"] == "SCTRANSLATOR"


def test_save_load_restores_identical_predictions(trained, query, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(path)
    (path / "notes.txt").write_text("mine")
    trained.save(path, overwrite=True)
    assert (path / "notes.txt").read_text() == "mine"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    expected = trained.predict_protein(query)
    fitted = {
        "panel.safetensors": True,
        "mapping.safetensors": trained.reference_mapping.fitted,
        "calibration.safetensors": trained.calibration.fitted,
    }
    assert sorted(os.listdir(path)) == sorted(
        ["MODEL_CARD.md", "model.json", "notes.txt", "weights.safetensors"]
        + [name for name, saved in fitted.items() if saved]
    )
    loaded = sct.SCTRANSLATOR.load(path, adata=None)
    pd.testing.assert_frame_equal(loaded.predict_protein(query), expected)
    reloaded = sct.SCTRANSLATOR.load(path, adata=batch(trained.adata, "p3_0"))
    pd.testing.assert_frame_equal(reloaded.predict_protein(query), expected)
    assert loaded.vocabulary == trained.vocabulary


def test_mosaic_training_masks_missing_proteins(pbmc):
    from helpers import setup

    mdata = setup(pbmc[pbmc.obs["batch"].isin(["p1_0", "p3_0"])].copy())
    model = sct.SCTRANSLATOR(mdata, n_hidden=16, max_genes=64)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert np.isfinite(model.history["mse_train"].to_numpy(dtype=float)).all()
    assert np.isfinite(model.history["pearson_validation"].to_numpy(dtype=float)).all()


def test_batch_with_all_zero_protein_counts_as_unmeasured(pbmc):
    from helpers import setup

    mdata = pbmc[pbmc.obs["batch"].isin(["p3_0", "p4_0"])].copy()
    counts = mdata["prot"].layers["counts"]
    counts[(mdata.obs["batch"] == "p4_0").to_numpy(), 0] = 0
    mdata.obs["batch"] = mdata.obs["batch"].cat.remove_unused_categories()
    model = sct.SCTRANSLATOR(setup(mdata), n_hidden=16)
    model.train(max_epochs=1, enable_progress_bar=False)
    mask = model.panel_statistics.measured
    assert mask.shape == (2, 224) and not mask[1, 0] and mask[0, 0] and mask[:, 1:].all()


def test_validation_cells_never_shape_the_model(pbmc):
    """Scaling only the validation cells' proteins leaves every prediction unchanged."""
    from helpers import setup

    def fit(mdata):
        scvi.settings.seed = 0
        model = sct.SCTRANSLATOR(setup(mdata), n_hidden=16, max_genes=64)
        model.train(
            max_epochs=2,
            train_size=0.75,
            early_stopping=False,
            restore_best_weights=False,
            reference_mapping=False,  # chosen on the validation cells by design
            enable_progress_bar=False,
        )
        return model

    data = batch(pbmc, "p3_0")
    model = fit(data.copy())
    validation = np.setdiff1d(np.arange(data.n_obs), model.train_indices)
    assert len(validation) > 0 and np.array_equal(validation, np.sort(model.validation_indices))
    changed = data.copy()
    scale = np.random.default_rng(1).uniform(0.1, 10.0, changed["prot"].n_vars)
    changed["prot"].layers["counts"][validation] *= scale
    other = fit(changed)
    assert np.array_equal(other.train_indices, model.train_indices)
    torch.testing.assert_close(
        other.panel_statistics.mean, model.panel_statistics.mean, rtol=0, atol=0
    )
    query = batch(pbmc, "p4_0")["rna"]
    pd.testing.assert_frame_equal(other.predict_protein(query), model.predict_protein(query))


def test_first_training_starts_from_the_training_rna_once(pbmc):
    from helpers import setup

    model = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=16, max_genes=64)
    module = model.module
    assert not bool(module.initialized)
    random_identity = module.embedding.identity.weight.detach().clone()
    model.train(max_epochs=1, enable_progress_bar=False)
    assert bool(module.initialized)
    genes = module.gene_ids
    started = module.embedding.identity.weight[genes].detach()
    assert not np.allclose(started, random_identity[genes])
    trained_identity = module.embedding.identity.weight.detach().clone()
    model.train(max_epochs=1, plan_kwargs={"lr": 0.0}, enable_progress_bar=False)
    np.testing.assert_array_equal(module.embedding.identity.weight.detach(), trained_identity)


def test_protein_axes_are_the_principal_axes_of_the_standardised_proteins(trained):
    axes = trained.trainer.lightning_module.protein_axes.numpy()
    assert axes.shape == (224, 32)
    np.testing.assert_allclose(axes.T @ axes, np.eye(32), atol=1e-4)
    counts = trained.adata["prot"].layers["counts"]
    panel = trained.panel_statistics
    values = panel.normalize(torch.as_tensor(np.asarray(counts), dtype=torch.float32))
    standardized = ((values - panel.mean) / panel.std).numpy()
    first = np.linalg.svd(np.nan_to_num(standardized), full_matrices=False)[2][0]
    assert abs(first @ axes[:, 0]) > 0.99


def test_each_training_fits_the_neighbour_teacher_to_its_training_cells(pbmc):
    from helpers import setup

    model = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=16, max_genes=64)
    module = model.module
    model.train(max_epochs=1, train_size=0.5, enable_progress_bar=False)
    teacher = model.trainer.lightning_module.teacher
    assert teacher.smoothing == 0.5 and teacher.n_neighbors == 15
    n_train = len(model.train_indices)
    assert teacher.targets.shape == (n_train, 224)
    assert teacher.coordinates.shape == (n_train, 50 + 50)
    rows = np.sort(model.train_indices)
    proteins = torch.as_tensor(model.adata["prot"].layers["counts"][rows], dtype=torch.float32)
    batches = model.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)
    batch_index = torch.as_tensor(np.asarray(batches)[rows])
    standardized = model.panel_statistics.standardize(proteins, batch_index)
    torch.testing.assert_close(teacher.targets, standardized, equal_nan=True)
    assert not any("neighbor" in name for name in module.state_dict())  # never saved
    off = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=16)
    off.train(max_epochs=1, plan_kwargs={"target_smoothing": 0.0}, enable_progress_bar=False)
    assert not off.trainer.lightning_module.teacher.fitted and bool(off.module.initialized)
    with pytest.raises(ValueError, match="target_smoothing must be in"):
        off.train(max_epochs=1, plan_kwargs={"target_smoothing": 2.0})


def test_reference_mapping_is_fitted_on_validation_cells_and_saved(pbmc, tmp_path):
    from helpers import setup

    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(setup(batch(pbmc, "p3_0")), n_hidden=16, max_genes=64)
    model.train(max_epochs=2, enable_progress_bar=False)  # the mapping is on by default
    mapping = model.reference_mapping
    query = batch(pbmc, "p4_0")["rna"][:50]
    if not mapping.fitted:  # the validation cells preferred the network alone
        mapping.set(
            torch.randn(5, 16), torch.randn(5, 224), model.module.protein_ids, 0.1, 1.0, 0.5
        )
    assert len(mapping.anchors) <= len(model.train_indices)
    mapped = model.predict_protein(query)
    model.save(tmp_path / "mapped")
    loaded = sct.SCTRANSLATOR.load(tmp_path / "mapped")
    pd.testing.assert_frame_equal(loaded.predict_protein(query), mapped, atol=1e-5, rtol=1e-5)
    mapping.clear()
    assert not np.allclose(model.predict_protein(query).to_numpy(), mapped.to_numpy())


def test_a_folder_of_another_format_version_is_refused_with_the_fix(trained, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    settings = json.loads((path / "model.json").read_text())
    for version, advice in ((1, "train the model again"), (99, "upgrade sctranslator")):
        settings["format_version"] = version
        (path / "model.json").write_text(json.dumps(settings))
        with pytest.raises(ValueError, match=f"model format {version} .*{advice}"):
            sct.SCTRANSLATOR.load(path)
