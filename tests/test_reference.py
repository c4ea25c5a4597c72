"""The shipped PBMC reference: loads offline, matches its recipe, and translates any panel."""

import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import batch

import sctranslator as sct


@pytest.fixture(scope="module")
def reference():
    return sct.SCTRANSLATOR.load_pretrained("pbmc")


def test_shipped_reference_matches_its_recipe(reference, pbmc):
    assert sct.model.shipped_references() == ["pbmc"]
    assert reference.adata is None and reference.is_trained
    genes = reference.registry_["field_registries"]["X"]["state_registry"]["column_names"]
    assert list(genes) == list(pbmc["rna"].var_names)
    assert list(reference.protein_reliability.index) == list(pbmc["prot"].var_names)
    card = reference.model_card()
    assert "GSE164378" in card and "MIT" in card and "PBMC only" in card
    reliability = reference.protein_reliability
    assert reliability.notna().sum() > 150 and reliability.median() > 0.2
    flags = sct.model._card.noise_flags(
        pd.Index(["IgG1_control_TotalSeqB", "CD3", "CD5"]),
        np.array([0.7, 0.5, 1.0]),
        np.array([True, True, True]),
    )
    assert list(flags) == ["isotype control", "", "constant in training"]


def test_extra_query_genes_never_change_predictions(reference, pbmc):
    query = batch(pbmc, "p1_0")["rna"]
    counts = sp.csr_matrix(query.layers["counts"])
    rng = np.random.default_rng(0)
    extra = sp.random(query.n_obs, 30_000, density=0.02, random_state=0, format="csr")
    extra.data = np.ceil(extra.data * 50)  # whole counts
    wide = ad.AnnData(
        sp.hstack([extra, counts]).tocsr().astype(np.float32),
        obs=query.obs[[]],
        var=pd.DataFrame(index=[f"EXTRA{i}" for i in range(30_000)] + list(query.var_names)),
    )
    wide = wide[:, rng.permutation(wide.n_vars)].copy()
    narrow = ad.AnnData(counts.astype(np.float32), obs=query.obs[[]], var=query.var[[]])
    expected = reference.predict_protein(narrow)
    pd.testing.assert_frame_equal(reference.predict_protein(wide), expected, atol=1e-4, rtol=1e-4)


def test_reference_errors_name_the_problem_and_write_nothing(reference, pbmc, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"shipped references: \['pbmc'\]"):
        sct.SCTRANSLATOR.load_pretrained("lung")
    folder = tmp_path / "copy"
    reference.save(folder)
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ValueError, match="corrupted"):
        sct.SCTRANSLATOR.load(folder)
    assert sorted(p.name for p in folder.iterdir()) == before
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        sct.SCTRANSLATOR.load(folder)
    shutil.rmtree(folder)

    few = batch(pbmc, "p4_0")[:20].copy()
    renamed = few.copy()
    renamed["rna"].var_names = [f"G{i}" for i in range(renamed["rna"].n_vars)]
    renamed.update()
    with pytest.raises(ValueError, match="None of the 500 genes"):
        reference.fine_tune(renamed)
    unknown = few.copy()
    unknown["prot"].var_names = [f"P{i}" for i in range(unknown["prot"].n_vars)]
    unknown.update()
    with pytest.raises(ValueError, match="None of the 224 proteins"):
        reference.fine_tune(unknown)
    assert renamed["rna"].uns == {} and "_scvi_manager_uuid" not in renamed["rna"].uns


def test_a_cell_outside_the_reference_world_is_flagged_never_a_crash(reference, pbmc):
    query = batch(pbmc, "p4_0")["rna"][:40]
    counts = query.layers["counts"].toarray()
    unknown = np.random.default_rng(0).poisson(3.0, size=(40, 20)).astype(np.float32) + 1
    outside = [3, 17]
    counts[outside] = 0  # their counts are all in genes the reference does not read
    cells = ad.AnnData(
        np.hstack([counts, unknown]).astype(np.float32),
        obs=query.obs[[]],
        var=pd.DataFrame(index=list(query.var_names) + [f"NOTAGENE{i}" for i in range(20)]),
    )
    message = r"2 cells have no counts in the 500 genes this model reads \(e\.g\. p4_0_"
    with pytest.warns(UserWarning, match=message):
        predicted = reference.predict_protein(cells)
    inside = np.setdiff1d(np.arange(40), outside)
    mean = reference.panel_statistics.mean.numpy()
    np.testing.assert_allclose(
        predicted.iloc[outside].to_numpy(), np.tile(mean, (2, 1)), rtol=1e-5
    )
    pd.testing.assert_frame_equal(
        predicted.iloc[inside], reference.predict_protein(cells[inside].copy()), atol=1e-5
    )
    with pytest.warns(UserWarning, match="no counts in the 500 genes"):
        novelty = reference.get_novelty(cells)
    assert np.isinf(novelty.iloc[outside]).all() and np.isfinite(novelty.iloc[inside]).all()
    with pytest.warns(UserWarning, match="no counts in the 500 genes"):
        lower, upper = reference.predict_protein_interval(cells)
    assert (lower.iloc[outside] == -np.inf).all().all()
    assert (upper.iloc[outside] == np.inf).all().all()
    assert np.isfinite(upper.iloc[inside].to_numpy()).all()

    empty = cells.copy()
    empty.X[5] = 0  # no counts at all: refused, with the fix
    with pytest.raises(
        ValueError, match=r"1 cells have no counts in the RNA counts.*filter_cells"
    ):
        reference.predict_protein(empty)
