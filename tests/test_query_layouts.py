"""Any paired query fine-tunes and calibrates: counts in X or a layer, with or without batch."""

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from helpers import batch

import sctranslator as sct
from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import registered_layout


def plain(pbmc, name: str, cells: slice) -> md.MuData:
    """Paired cells as many users hold them: counts in X of 'rna' and 'prot', nothing else."""
    source = batch(pbmc, name)[cells]
    rna = ad.AnnData(
        X=source["rna"].layers["counts"].copy(),
        obs=pd.DataFrame(index=source["rna"].obs_names),
        var=pd.DataFrame(index=source["rna"].var_names),
    )
    prot = ad.AnnData(
        X=np.asarray(source["prot"].layers["counts"], dtype=np.float32).copy(),
        obs=pd.DataFrame(index=source["prot"].obs_names),
        var=pd.DataFrame(index=source["prot"].var_names),
    )
    with no_pull(), shared_var_names(None):
        return md.MuData({"rna": rna, "prot": prot})


def snapshot(mdata: md.MuData) -> dict:
    """What a user would notice changing in their MuData."""
    return {
        "obs": list(mdata.obs.columns),
        "mods": {
            key: (list(m.obs.columns), list(m.layers), list(m.uns), m.X.sum())
            for key, m in mdata.mod.items()
        },
        "uns": list(mdata.uns),
    }


@pytest.fixture(scope="module")
def reference():
    return sct.SCTRANSLATOR.load_pretrained("pbmc")


@pytest.fixture(scope="module")
def store_model(store):
    """A tiny model trained on a cell store: proteins in obsm, batches in obs['batch']."""
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(store, n_hidden=16, n_heads=2, max_genes=48)
    model.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False)
    return model


def test_the_readme_fine_tune_call_on_a_plain_mudata(reference, pbmc, caplog):
    twenty_labelled_cells = plain(pbmc, "p4_0", slice(0, 20))
    before = snapshot(twenty_labelled_cells)
    scvi.settings.seed = 0
    with caplog.at_level(logging.INFO, logger="sctranslator"):
        tuned = reference.fine_tune(twenty_labelled_cells, max_epochs=3, n_folds=2)
    assert snapshot(twenty_labelled_cells) == before  # the user's object is not changed
    assert tuned.adata is not twenty_labelled_cells
    assert tuned.adata.obs["batch"].astype(str).unique().tolist() == ["query"]
    logged = [r.getMessage() for r in caplog.records if "no obs['batch']" in r.getMessage()]
    assert logged and "one new batch, 'query'" in logged[0]
    assert any(
        "read from X (there is no layer 'counts')" in r.getMessage() for r in caplog.records
    )
    predicted = tuned.predict_protein(plain(pbmc, "p4_0", slice(20, 60)))
    assert predicted.shape == (40, 224) and np.isfinite(predicted.to_numpy()).all()

    query = sct.SCTRANSLATOR.load_query_data(twenty_labelled_cells, reference)
    assert query.adata["rna"].layers["counts"].sum() == twenty_labelled_cells["rna"].X.sum()
    assert snapshot(twenty_labelled_cells) == before

    recalibrated = sct.SCTRANSLATOR.load_pretrained("pbmc")
    paired = plain(pbmc, "p4_0", slice(100, 160))
    recalibrated.calibrate(paired)
    assert snapshot(paired)["mods"]["rna"][1] == []  # no layer added to the user's cells
    lower, upper = recalibrated.predict_protein_interval(plain(pbmc, "p4_0", slice(200, 240)))
    assert (lower.to_numpy() < upper.to_numpy()).all()
    assert not np.allclose(
        recalibrated.calibration.scores[:10].numpy(), reference.calibration.scores[:10].numpy()
    )


def test_an_anndata_with_proteins_in_obsm_for_a_mudata_reference(reference, pbmc):
    cells = plain(pbmc, "p3_0", slice(0, 30))
    adata = cells["rna"].copy()
    adata.obsm["protein_expression"] = cells["prot"].to_df()
    model = sct.SCTRANSLATOR.load_query_data(adata, reference)
    assert isinstance(model.adata, md.MuData) and set(model.adata.mod) == {"rna", "prot"}
    np.testing.assert_array_equal(
        model.adata["prot"].layers["counts"], adata.obsm["protein_expression"].to_numpy()
    )
    assert "batch" not in adata.obs and not adata.layers  # unchanged


def test_a_store_trained_model_accepts_the_same_queries(store_model, pbmc, caplog):
    assert store_model.registry_["setup_method_name"] == "setup_anndata"
    twenty = plain(pbmc, "p4_0", slice(0, 20))
    before = snapshot(twenty)
    with caplog.at_level(logging.INFO, logger="sctranslator"):
        tuned = store_model.fine_tune(twenty, max_epochs=2, interpolation=1.0)
    assert snapshot(twenty) == before
    assert isinstance(tuned.adata, ad.AnnData)
    assert tuned.adata.obs["batch"].astype(str).unique().tolist() == ["query"]
    assert any("obsm['protein_expression']" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(
        tuned.adata.obsm["protein_expression"].to_numpy(), twenty["prot"].X
    )
    paired = plain(pbmc, "p4_0", slice(100, 160))
    store_model.calibrate(paired)
    lower, upper = store_model.predict_protein_interval(plain(pbmc, "p4_0", slice(200, 240)))
    assert lower.shape == (40, store_model.summary_stats.n_proteins)
    assert (lower.to_numpy() <= upper.to_numpy()).all()
    in_layers = batch(pbmc, "p4_0")[200:240]  # counts in layers["counts"], X as well
    np.testing.assert_allclose(
        store_model.predict_protein(in_layers).to_numpy(),
        store_model.predict_protein(plain(pbmc, "p4_0", slice(200, 240))).to_numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_laid_out_data_is_returned_itself_and_missing_counts_name_the_fix(reference, pbmc):
    args = reference.registry_["setup_args"]
    registered = batch(pbmc, "p3_0")
    with no_pull(), shared_var_names(registered.mod.values()):
        registered = registered[:30].copy()
    same, changes = registered_layout(registered, "setup_mudata", args)
    assert same is registered and changes == []
    normalized = plain(pbmc, "p3_0", slice(0, 30))
    normalized["rna"].X = normalized["rna"].X.astype(np.float32) / 3.7
    with pytest.raises(KeyError, match=r"has no layer 'counts'.*put the raw counts"):
        registered_layout(normalized, "setup_mudata", args)
    cells = plain(pbmc, "p3_0", slice(0, 30))
    with no_pull(), shared_var_names(None):
        shuffled = md.MuData({"rna": cells["rna"], "prot": cells["prot"][::-1].copy()})
    with pytest.raises(ValueError, match="pair_modalities"):
        registered_layout(shuffled, "setup_mudata", args)
