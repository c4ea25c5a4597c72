"""Pre-training on several panels, zero-shot prediction and few-shot fine-tuning."""

from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from helpers import MODALITIES, batch, setup

import sctranslator as sct
from sctranslator.data import PANELS_KEY
from sctranslator.module import FREEZE_PRESETS

CPTAC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cptac_ucec_bulk"
TINY = {"n_hidden": 16, "n_heads": 2, "max_genes": 48}
UNSEEN = ["CD45RA", "HLA-DR"]  # proteins left out of pre-training


def _panel(mdata, genes=slice(None), proteins=slice(None)):
    rna, prot = mdata["rna"][:, genes].copy(), mdata["prot"][:, proteins].copy()
    out = md.MuData({"rna": rna, "prot": prot})
    out.obs = mdata.obs.copy()
    return out


@pytest.fixture(scope="module")
def reference(pbmc):
    """A tiny model pre-trained on p3_0 without the proteins UNSEEN."""
    p3 = batch(pbmc, "p3_0")
    keep = ~p3["prot"].var_names.isin(UNSEEN)
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(setup(_panel(p3, proteins=keep)), **TINY)
    model.train(max_epochs=2, enable_progress_bar=False)
    return model


@pytest.fixture(scope="module")
def p4(pbmc):
    return batch(pbmc, "p4_0")


def test_training_on_two_datasets_with_different_panels(pbmc, p4):
    p3 = batch(pbmc, "p3_0")
    first = _panel(p3[:200], genes=slice(0, 300), proteins=slice(0, 150))
    second = _panel(p3[200:], genes=slice(200, 500), proteins=slice(100, 224))
    both = sct.pp.concat_panels({"a": first, "b": second})
    rna = both["rna"].to_df(layer="counts")
    genes = p3["rna"].var_names
    assert both.shape == (400, 500 + 224)
    assert rna.loc[first.obs_names, genes[300:]].isna().all().all()
    assert rna.loc[second.obs_names, genes[:200]].isna().all().all()
    np.testing.assert_array_equal(
        rna.loc[first.obs_names, genes[:300]], first["rna"].layers["counts"].toarray()
    )
    prot = both["prot"].to_df(layer="counts")
    assert prot.loc[first.obs_names, p3["prot"].var_names[150:]].isna().all().all()
    assert both.obs["dataset"].tolist() == ["a"] * 200 + ["b"] * 200
    assert PANELS_KEY not in first["rna"].uns  # inputs unchanged

    setup(both)
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(both, **TINY)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert np.isfinite(model.history["pearson_validation"].to_numpy().astype(float)).all()
    predicted = model.predict_protein(p4["rna"])
    assert predicted.shape == (400, 224) and np.isfinite(predicted.to_numpy()).all()

    # NaN in RNA that did not come from concat_panels is still refused
    del both["rna"].uns[PANELS_KEY]
    with pytest.raises(ValueError, match="NaN"):
        setup(both)


def test_unmeasured_genes_are_absent_tokens_not_zeros(reference, p4):
    module = reference.module.eval()
    x = torch.as_tensor(p4["rna"].layers["counts"][:30].toarray())
    gene_ids = module.gene_ids
    dropped = torch.arange(0, 500, 3)
    kept = torch.as_tensor(np.setdiff1d(np.arange(500), dropped.numpy()))
    for max_genes in (16, 1000):  # with and without the context limit
        module.max_genes = max_genes
        with torch.no_grad():
            with_nan = module.inference(x.index_fill(1, dropped, torch.nan))
            without = module.inference(x[:, kept], gene_ids=gene_ids[kept])
            masked = module.generative(with_nan["context"])
            plain = module.generative(without["context"])
        torch.testing.assert_close(with_nan["z"], without["z"])
        torch.testing.assert_close(masked["protein"], plain["protein"])
    module.max_genes = TINY["max_genes"]


def test_zero_shot_from_a_saved_model_on_a_permuted_gene_subset(reference, p4, tmp_path):
    reference.save(tmp_path / "pretrained")
    loaded = sct.SCTRANSLATOR.load_pretrained(tmp_path / "pretrained")
    assert loaded.adata is None
    assert loaded.vocabulary == reference.vocabulary
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(500, 300, replace=False))
    query = p4["rna"][:, subset].copy()
    shuffled = p4["rna"][:, rng.permutation(subset)].copy()
    ordered = loaded.predict_protein(query)
    permuted = loaded.predict_protein(shuffled)
    assert np.isfinite(ordered.to_numpy()).all()
    np.testing.assert_allclose(permuted.to_numpy(), ordered.to_numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        reference.predict_protein(query).to_numpy(), ordered.to_numpy(), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(FileNotFoundError, match="No saved model"):
        sct.SCTRANSLATOR.load_pretrained(tmp_path / "missing")


def test_new_protein_tokens_start_from_their_coding_genes(reference, p4):
    few = p4[:20].copy()
    model = sct.SCTRANSLATOR.load_query_data(few, reference, freeze=None)
    assert "HLA-DR" in model.vocabulary and "HLA-DR" not in reference.vocabulary
    assert model.vocabulary.tokens[: len(reference.vocabulary)] == reference.vocabulary.tokens
    ref_identity = reference.module.embedding.identity.weight
    identity = model.module.embedding.identity.weight
    genes = reference.vocabulary.lookup_genes(["HLA-DRA", "HLA-DRB1"])
    (row,) = model.vocabulary.lookup_proteins(["HLA-DR"])
    torch.testing.assert_close(identity[row], ref_identity[genes].mean(0))
    torch.testing.assert_close(identity[: len(ref_identity)], ref_identity)
    assert bool(model.module.initialized)  # training continues from the reference's weights
    with pytest.raises(ValueError, match="Cannot freeze"):
        sct.SCTRANSLATOR.load_query_data(few, reference, freeze="nonsense")


def test_fine_tuning_on_20_cells_with_a_protein_unseen_in_pretraining(reference, p4, tmp_path):
    snapshot = {k: v.clone() for k, v in reference.module.state_dict().items()}
    few, held = p4[:20].copy(), p4[20:].copy()
    scvi.settings.seed = 0
    tuned = reference.fine_tune(few, max_epochs=3, interpolation=1.0)
    assert tuned is not reference and tuned.module is not reference.module
    with pytest.raises(ValueError, match=r"model\.calibrate\(paired_mdata\)"):
        tuned.predict_protein_interval(held["rna"])  # fine-tuned weights: not calibrated
    for name, value in reference.module.state_dict().items():
        assert torch.equal(value, snapshot[name]), f"reference weight {name} changed"
    new_state = tuned.module.state_dict()
    frozen = [n for n, p in tuned.module.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(FREEZE_PRESETS["encoder"]) for n in frozen)
    for name in frozen:  # frozen weights are the reference's, bit for bit, after training
        assert torch.equal(new_state[name], snapshot[name]), name
    reference_bias = snapshot["protein_bias.weight"]
    assert not torch.equal(new_state["protein_bias.weight"][: len(reference_bias)], reference_bias)

    predicted = tuned.predict_protein(held["rna"])
    assert {"CD45RA", "HLA-DR"} <= set(predicted.columns)
    assert np.isfinite(predicted.to_numpy()).all() and predicted["CD45RA"].std() > 0

    tuned.save(tmp_path / "tuned")
    loaded = sct.SCTRANSLATOR.load_pretrained(tmp_path / "tuned")
    assert loaded.vocabulary == tuned.vocabulary and "CD45RA" in loaded.vocabulary
    assert not any(p.requires_grad for n, p in loaded.module.named_parameters() if n in frozen)
    np.testing.assert_allclose(
        loaded.predict_protein(held["rna"][:50]).to_numpy(),
        predicted.to_numpy()[:50],
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.skipif(not CPTAC.is_dir(), reason=f"{CPTAC} not available")
def test_bulk_cptac_pretraining_then_single_cell_stage(pbmc):
    genes = list(pbmc["rna"].var_names)
    bulk = sct.datasets.cptac_ucec_bulk(CPTAC, genes=genes, proteins=genes + ["CD4", "SEPTIN7"])
    assert bulk.n_obs == 115 and bulk["rna"].n_vars == 472
    rna, log2 = bulk["rna"].X, bulk["rna"].layers["log2"]
    np.testing.assert_allclose(rna, np.exp2(log2) - 1, rtol=1e-5)
    prot = bulk["prot"].layers["counts"]
    assert np.isnan(prot).any() and (prot[~np.isnan(prot)] > 0).all()
    assert {"CD4", "SEPTIN7"} <= set(bulk["prot"].var_names)  # SEPTIN7 is 'SEPT7' in the file

    sct.SCTRANSLATOR.setup_mudata(
        bulk, rna_layer="counts", protein_layer="counts", modalities=MODALITIES
    )
    scvi.settings.seed = 0
    stage1 = sct.SCTRANSLATOR(bulk, protein_normalization="log1p", **TINY)
    stage1.train(max_epochs=2, enable_progress_bar=False)
    stage2 = sct.SCTRANSLATOR.load_query_data(
        batch(pbmc, "p3_0")[:100].copy(), stage1, freeze=None, protein_normalization="clr"
    )
    assert stage2.init_params_["non_kwargs"]["protein_normalization"] == "clr"
    assert stage2.vocabulary.tokens[: len(stage1.vocabulary)] == stage1.vocabulary.tokens
    torch.testing.assert_close(
        stage2.module.encoder[0].attention.query.weight,
        stage1.module.encoder[0].attention.query.weight,
    )
    with pytest.raises(FileNotFoundError, match="lacks the CPTAC files"):
        sct.datasets.cptac_ucec_bulk(CPTAC.parent)


def test_fine_tuning_interpolates_back_towards_the_reference(reference, p4):
    few, held = p4[:20].copy(), p4[20:120].copy()
    expected = reference.predict_protein(held["rna"])
    scvi.settings.seed = 0
    assert reference.reference_mapping.fitted  # kept by fine-tuning below
    kept = reference.fine_tune(few.copy(), max_epochs=3, interpolation=0.0)
    shared = [p for p in kept.protein_reliability.index if p in expected.columns]
    assert len(shared) > 100
    # weight 0: the reference's weights and protein scale, so its predictions, on shared proteins
    pd.testing.assert_frame_equal(
        kept.predict_protein(held["rna"], proteins=shared), expected[shared], atol=1e-4, rtol=1e-4
    )
    # so its intervals are the reference's; new proteins have no calibrated interval
    for mine, theirs in zip(
        kept.predict_protein_interval(held["rna"], proteins=shared),
        reference.predict_protein_interval(held["rna"], proteins=shared),
        strict=True,
    ):
        pd.testing.assert_frame_equal(mine, theirs, atol=1e-4, rtol=1e-4)
    lower, _ = kept.predict_protein_interval(held["rna"])
    assert lower[UNSEEN].isna().all().all() and lower[shared].notna().all().all()
    tuned = reference.fine_tune(few.copy(), max_epochs=3, n_folds=2)
    chosen = tuned.fine_tuning_
    assert chosen["interpolation"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert set(chosen["cv_scores"]) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert chosen["cv_scores"][chosen["interpolation"]] >= max(chosen["cv_scores"].values()) - 1e-4
    assert tuned.protein_reliability.notna().sum() > 100  # out-of-fold Pearson per protein
    with pytest.raises(ValueError, match="interpolation"):
        reference.fine_tune(few.copy(), interpolation=2.0)


def test_query_genes_join_the_vocabulary_only_with_add_new_genes(reference, p4):
    query = _panel(p4[:60])
    query.mod["rna"].var_names = [
        f"NEWGENE{i}" if i < 5 else name for i, name in enumerate(query["rna"].var_names)
    ]
    kept = sct.SCTRANSLATOR.load_query_data(setup(query.copy()), reference)
    assert "NEWGENE0" not in kept.vocabulary.tokens
    assert (kept.module.gene_ids[:5] < 0).all()  # not read at all
    grown = sct.SCTRANSLATOR.load_query_data(setup(query.copy()), reference, add_new_genes=True)
    assert grown.vocabulary.tokens[: len(reference.vocabulary)] == reference.vocabulary.tokens
    assert {f"NEWGENE{i}" for i in range(5)} <= set(grown.vocabulary.tokens)
    assert (grown.module.gene_ids >= 0).all()
