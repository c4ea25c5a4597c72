import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
from helpers import MODALITIES, batch
from mudata import MuData

import sctranslator as sct

# proteins whose own gene is in the 500-gene panel, and a few cell-type markers
PAIRS = [
    ("CD8", "CD8A"),
    ("CD20", "MS4A1"),
    ("CD79b", "CD79B"),
    ("CD16", "FCGR3A"),
    ("CD161", "KLRB1"),
    ("CD19", "CD19"),
    ("CD1c", "CD1C"),
    ("CD56-1", "NCAM1"),
]
PROTEINS = [p for p, _ in PAIRS] + ["CD3-1", "CD4-1", "CD14", "CD11c", "HLA-DR", "CD45RA", "CD27"]


def _counts_in_x(rna):
    """The RNA with its counts in X only, as a new user's AnnData."""
    rna = rna.copy()
    for layer in list(rna.layers):
        del rna.layers[layer]
    return rna


@pytest.fixture(scope="module")
def model(pbmc):
    """A small model trained on p3_0 for 15 proteins (fast), good enough for sanity checks.

    Set up on RNA counts in X (``rna_layer=None``), so every tool below reads X. Gene dropout
    is off: with 20 epochs it blurs the own-gene attributions this fixture is calibrated on
    (with the default 0.3 the median own-gene rank was 80 instead of < 75).
    """
    scvi.settings.seed = 0
    train = batch(pbmc, "p3_0")
    train.mod["rna"] = _counts_in_x(train["rna"])
    train.mod["prot"] = train["prot"][:, PROTEINS].copy()
    train.update()
    sct.SCTRANSLATOR.setup_mudata(
        train, rna_layer=None, protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    model = sct.SCTRANSLATOR(train, n_hidden=32, max_genes=64, gene_dropout=0.0)
    model.train(
        max_epochs=20, enable_progress_bar=False, early_stopping=False, plan_kwargs={"lr": 3e-3}
    )
    return model


@pytest.fixture(scope="module")
def query(pbmc, model):
    """Held-out cells of two batches (p1_0 RNA only, p4_0 paired) with predicted proteins.

    RNA counts in X only (no layer).
    """
    cells = pbmc.obs["batch"].isin(["p1_0", "p4_0"]).to_numpy()
    query = MuData({"rna": _counts_in_x(pbmc["rna"][cells])})
    query.obs = pbmc.obs.loc[cells, ["batch", "celltype"]].copy()
    sct.tl.fill_protein(query, model, key_added="prot_pred")
    return query


def _frozen(mdata):
    return {k: (v.X.copy(), list(v.obs.columns), list(v.obsm)) for k, v in mdata.mod.items()}


def _assert_unchanged(before, mdata):
    for key, (x, obs, obsm) in before.items():
        now = mdata[key].X
        assert (abs(now - x)).max() == 0 if sp.issparse(x) else np.array_equal(now, x)
        assert list(mdata[key].obs.columns) == obs and list(mdata[key].obsm) == obsm


def test_cluster_joint_and_rna_only(query):
    mdata = query.copy()
    before = _frozen(mdata)
    # "gauss" connectivities: scanpy's default "umap" compiles numba code for ~30 s
    sct.tl.cluster(
        mdata,
        protein=None,
        connectivities="gauss",
        key_added="rna_leiden",
        embedding_key="X_rna",
        neighbors_key="rna_nb",
    )
    sct.tl.cluster(mdata, connectivities="gauss")
    _assert_unchanged(before, mdata)
    for key in ("rna_leiden", "sct_leiden"):
        labels = mdata.obs[key]
        assert labels.dtype == "category" and labels.notna().all() and 3 <= labels.nunique() <= 40
        scores = sct.metrics.clustering_agreement(labels, mdata.obs["celltype"])
        assert scores["ari"] > 0.2 and scores["nmi"] > 0.4
    assert mdata.obsm["X_sct_joint"].shape == (800, 44) and mdata.obsm["X_rna"].shape == (800, 30)
    assert mdata.obsp["sct_neighbors_connectivities"].shape == (800, 800)
    assert mdata.uns["sct_neighbors"]["connectivities_key"] == "sct_neighbors_connectivities"
    assert mdata.uns["sct_leiden"]["params"]["protein"] == "prot_pred"
    # both blocks weigh the same
    joint = mdata.obsm["X_sct_joint"]
    np.testing.assert_allclose(joint[:, :30].var(0).sum(), joint[:, 30:].var(0).sum(), rtol=1e-3)
    # reproducible, and copy=True leaves the input alone
    again = sct.tl.cluster(query, connectivities="gauss", copy=True)
    assert (
        "sct_leiden" not in query.obs
        and (again.obs["sct_leiden"] == mdata.obs["sct_leiden"]).all()
    )


def test_cluster_errors(query, pbmc):
    mdata = query.copy()
    sct.tl.cluster(mdata, protein=None, connectivities="gauss")
    with pytest.raises(ValueError, match=r"obs\['sct_leiden'\] already exists"):
        sct.tl.cluster(mdata, protein=None, connectivities="gauss")
    with pytest.raises(KeyError, match="'prot_x'.*available"):
        sct.tl.cluster(query, protein="prot_x")
    with pytest.raises(ValueError, match="at least one"):
        sct.tl.cluster(query, rna=None, protein=None)
    with pytest.raises(ValueError, match="NaN"):
        sct.tl.cluster(pbmc, protein="prot", protein_layer="counts")  # p1_0 proteins are NaN
    with pytest.raises(TypeError, match="MuData"):
        sct.tl.cluster(query["rna"])


def test_cluster_reads_a_named_layer(pbmc):
    # counts in X (the default) and in a named layer give the same clusters
    cells = batch(pbmc, "p4_0")
    mdata = MuData({"rna": cells["rna"]})
    from_x = sct.tl.cluster(mdata, protein=None, connectivities="gauss", copy=True)
    mdata["rna"].X = np.log1p(mdata["rna"].X)  # X normalised, counts only in the layer
    from_layer = sct.tl.cluster(
        mdata, protein=None, rna_layer="counts", connectivities="gauss", copy=True
    )
    assert (from_x.obs["sct_leiden"] == from_layer.obs["sct_leiden"]).all()


def test_cluster_methods_and_connectivities_name_their_options(query):
    with pytest.raises(ValueError, match=r"method 'louvain'; choose one of 'concat', 'wnn'"):
        sct.tl.cluster(query, method="louvain", copy=True)
    with pytest.raises(ValueError, match=r"Unknown connectivities 'knn'; choose one of 'umap'"):
        sct.tl.cluster(query, connectivities="knn", copy=True)
    with pytest.raises(ValueError, match=r"connectivities='gauss' applies to method='concat'"):
        sct.tl.cluster(query, method="wnn", connectivities="gauss", copy=True)
    with pytest.raises(ValueError, match=r"`weights` applies to method='concat'"):
        sct.tl.cluster(query, method="wnn", weights=(1.0, 2.0), copy=True)
    assert "sct_leiden" not in query.obs
    with pytest.raises(ValueError, match=r"connectivities='gauss' sets scanpy's graph"):
        sct.tl.cluster(query, method="gauss", copy=True)
    now = sct.tl.cluster(query, method="concat", connectivities="gauss", copy=True)
    assert now.uns["sct_leiden"]["params"]["method"] == "concat"
    # one modality: both methods build scanpy's graph of its embedding
    alone = sct.tl.cluster(query, protein=None, method="wnn", connectivities="gauss", copy=True)
    concat = sct.tl.cluster(query, protein=None, connectivities="gauss", copy=True)
    assert (alone.obs["sct_leiden"] == concat.obs["sct_leiden"]).all()
    assert "sct_neighbors_weights" not in alone.obsm


@pytest.mark.slow  # muon's WNN compiles its numba kernels at every call (~40 s)
def test_cluster_wnn_writes_labels_graph_and_each_cells_modality_weights(query):
    mdata = query.copy()
    before = _frozen(mdata)
    sct.tl.cluster(mdata, method="wnn", key_added="wnn_leiden", neighbors_key="wnn")
    _assert_unchanged(before, mdata)
    labels = mdata.obs["wnn_leiden"]
    assert labels.dtype == "category" and labels.notna().all() and 3 <= labels.nunique() <= 40
    assert sct.metrics.clustering_agreement(labels, mdata.obs["celltype"])["ari"] > 0.2
    weights = mdata.obsm["wnn_weights"]
    assert list(weights.columns) == ["rna", "prot_pred"]
    assert (weights.index == mdata.obs_names).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert 0.05 < weights["prot_pred"].mean() < 0.95  # each cell weighs both modalities
    graph = mdata.obsp["wnn_connectivities"]
    assert graph.shape == (800, 800) and abs(graph - graph.T).max() < 1e-6
    assert mdata.uns["wnn"]["connectivities_key"] == "wnn_connectivities"
    assert mdata.uns["wnn_leiden"]["params"]["method"] == "wnn"
    concat = sct.tl.cluster(query, connectivities="gauss", copy=True)  # another graph
    assert (concat.obsp["sct_neighbors_connectivities"] != graph).nnz > 0


def test_fill_protein_copy(query, model):
    before = _frozen(query)
    out = sct.tl.fill_protein(query, model, key_added="again", proteins=["CD20"], copy=True)
    _assert_unchanged(before, query)
    assert "again" not in query.mod and out["again"].shape == (800, 1)
    np.testing.assert_allclose(
        out["again"].X[:, 0], query["prot_pred"][:, "CD20"].X[:, 0], atol=1e-5
    )


def test_embed_latent_and_protein(query, model):
    mdata = query.copy()
    before = _frozen(mdata)
    assert sct.tl.embed(mdata, model) is None
    _assert_unchanged(before, mdata)
    latent = mdata.obsm["X_sct_latent"]
    assert latent.shape == (800, 32)
    assert mdata.uns["X_sct_latent"]["params"]["representation"] == "latent"
    sct.tl.embed(mdata, model, representation="protein")
    assert mdata.obsm["X_sct_protein"].shape == (800, 14)
    # the embedding is scored with the metrics, next to the uncorrected RNA PCA
    scores = sct.metrics.integration_scores(latent, mdata.obs["batch"], mdata.obs["celltype"])
    assert ((scores > 0) & (scores <= 1)).all()
    # the metrics see batches: a batch-separated copy of the embedding scores lower mixing
    shifted = latent + 100 * (mdata.obs["batch"] == "p1_0").to_numpy()[:, None]
    assert sct.metrics.batch_entropy(shifted, mdata.obs["batch"]) < 0.05
    # copy=True leaves the input alone
    out = sct.tl.embed(query, model, key_added="X_copy", copy=True)
    assert "X_copy" not in query.obsm and np.array_equal(out.obsm["X_copy"], latent)
    with pytest.raises(ValueError, match=r"obsm\['X_sct_latent'\] already exists"):
        sct.tl.embed(mdata, model)
    with pytest.raises(ValueError, match="representation"):
        sct.tl.embed(mdata, model, representation="umap")
    with pytest.raises(TypeError, match="trained sctranslator.SCTRANSLATOR"):
        sct.tl.embed(mdata, None)


def test_embed_reads_the_models_registered_layer(pbmc, trained):
    # `trained` was set up on layers["counts"]: X is not read
    cells = batch(pbmc, "p4_0")["rna"]
    expected = trained.get_latent_representation(cells)
    cells.X = np.log1p(cells.X)
    sct.tl.embed(cells, trained)
    np.testing.assert_allclose(cells.obsm["X_sct_latent"], expected, atol=1e-5)


def test_interactions_gradient_ranks_own_gene_high(query, model):
    mdata = query.copy()
    proteins = [p for p, _ in PAIRS]
    cells = np.flatnonzero(mdata.obs["batch"] == "p4_0")[:200]
    table = sct.tl.interactions(mdata, model, proteins=proteins, indices=cells)
    assert table.shape == (500, 8) and list(table.columns) == proteins
    assert mdata.uns["sct_interactions"] is table
    assert (table.to_numpy() < 0).any() and (table.to_numpy() > 0).any()  # signed
    ranks = {p: int((table[p] > table.loc[g, p]).sum()) + 1 for p, g in PAIRS}
    assert np.median(list(ranks.values())) <= 75, ranks  # of 500 genes; chance is 250
    assert sum(r <= 25 for r in ranks.values()) >= 3, ranks  # top 5%
    sub = sct.tl.interactions(
        mdata, model, genes=["MS4A1", "CD8A"], proteins=["CD20"], indices=cells, key_added=None
    )
    np.testing.assert_allclose(
        sub["CD20"], table.loc[["MS4A1", "CD8A"], "CD20"], rtol=1e-4, atol=1e-7
    )
    # all registered proteins by default; copy=True returns the annotated copy
    out = sct.tl.interactions(query, model, genes=["MS4A1"], indices=cells[:20], copy=True)
    assert "sct_interactions" not in query.uns
    assert list(out.uns["sct_interactions"].columns) == PROTEINS


def test_tools_take_the_data_first_and_options_as_keywords(query, model):
    cells = np.flatnonzero(query.obs["batch"] == "p4_0")[:50]
    with pytest.raises(TypeError, match="AnnData or MuData first"):
        sct.tl.interactions(model, query, genes=["MS4A1"], indices=cells, key_added=None)
    with pytest.raises(TypeError, match="AnnData or MuData first"):
        sct.tl.perturb(model, batch(query, "p4_0"), genes="MS4A1")
    with pytest.raises(TypeError, match="AnnData or MuData first"):
        sct.tl.perturb("cells", model, genes="MS4A1")
    with pytest.raises(TypeError, match="positional argument"):
        sct.tl.perturb(query, model, "MS4A1")
    with pytest.raises(TypeError, match="positional argument"):
        sct.tl.classify(query, "celltype")
    with pytest.raises(TypeError, match="positional argument"):
        sct.tl.cluster(query, "rna")
    assert not hasattr(sct.tl, "batch_correct")


def test_interactions_attention_is_a_distribution_over_genes(query, model):
    table = sct.tl.interactions(
        query, model, proteins=["CD8", "CD20"], method="attention", key_added=None
    )
    assert table.shape == (500, 2)
    assert (
        (table.to_numpy() >= 0).all()
        and (table.sum() <= 1 + 1e-5).all()
        and (table.sum() > 0.01).all()
    )
    assert "sct_interactions" not in query.uns


def test_interactions_errors(query, model):
    with pytest.raises(ValueError, match="not in the data's genes"):
        sct.tl.interactions(query, model, genes=["NOT_A_GENE"], key_added=None)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        sct.tl.interactions(query, model, proteins=["NOT_A_PROTEIN"], key_added=None)
    with pytest.raises(ValueError, match="method"):
        sct.tl.interactions(query, model, method="shap", key_added=None)
    with pytest.raises(TypeError, match="trained"):
        sct.tl.interactions(query, "model")
    with pytest.raises(ValueError, match="pass a `key_added`"):
        sct.tl.interactions(query, model, key_added=None, copy=True)


def test_perturb_knockout_and_overexpression(query, model):
    mdata = batch(query, "p4_0")
    before = _frozen(mdata)
    effect = sct.tl.perturb(
        mdata, model, genes=["MS4A1"], groupby="celltype", proteins=["CD20", "CD8", "CD3-1"]
    )
    assert len(effect) == 8 * 3
    _assert_unchanged(before, mdata)
    assert list(effect.columns) == [
        "group",
        "protein",
        "n_cells",
        "original",
        "perturbed",
        "shift",
    ]
    np.testing.assert_allclose(
        effect["perturbed"] - effect["original"], effect["shift"], atol=1e-5
    )
    # a plain array in obsm, its columns named in uns
    shift = mdata.obsm["sct_perturb"]
    assert isinstance(shift, np.ndarray) and shift.shape == (400, 3)
    assert mdata.uns["sct_perturb"]["params"]["proteins"] == ["CD20", "CD8", "CD3-1"]
    cd20 = effect[effect["protein"] == "CD20"].set_index("group")
    assert cd20.loc["B", "shift"] < 0 and cd20.loc["B", "n_cells"] == 31
    assert cd20.loc["B", "shift"] < cd20.drop("B")["shift"].min()
    # a knockout changes nothing in cells without MS4A1 RNA (but float32 rounding: a batch's
    # padding width changes, and the reference-mapping kernel amplifies that to about 1e-5)
    counts = mdata["rna"][:, "MS4A1"].X.toarray().ravel()
    assert (counts > 0).sum() >= 10 and np.abs(shift[counts == 0]).max() < 2e-5
    assert mdata.uns["sct_perturb"]["params"]["values_set"] == [0.0]

    up = sct.tl.perturb(
        mdata, model, genes="MS4A1", mode="overexpression", proteins=["CD20"], key_added="up"
    )
    assert up["group"].tolist() == ["all cells"] and up["shift"].iloc[0] > 0
    assert mdata.uns["up"]["params"]["values_set"] == [float(counts.max())]
    # dense counts give the same answer as sparse ones
    dense = mdata["rna"].copy()
    dense.X = dense.X.toarray()
    same = sct.tl.perturb(
        dense, model, genes="MS4A1", mode="overexpression", proteins=["CD20"], key_added="up"
    )
    np.testing.assert_allclose(same["shift"], up["shift"], rtol=1e-4, atol=1e-6)
    # copy=True returns the annotated copy and leaves the input alone
    out = sct.tl.perturb(dense, model, genes="MS4A1", proteins=["CD20"], key_added="ko", copy=True)
    assert "ko" not in dense.obsm and out.obsm["ko"].shape == (400, 1)
    mean_shift = out.uns["ko"]["mean_shift"]
    assert mean_shift["protein"].tolist() == ["CD20"]
    assert mean_shift["shift"].iloc[0] == pytest.approx(out.obsm["ko"].mean(), abs=1e-6)


def test_perturb_errors(query, model):
    with pytest.raises(ValueError, match="not in the RNA var_names: \\['NOPE'\\]"):
        sct.tl.perturb(query, model, genes=["NOPE"])
    with pytest.raises(ValueError, match="mode='overexpression' only"):
        sct.tl.perturb(query, model, genes=["MS4A1"], value=3)
    with pytest.raises(ValueError, match="mode"):
        sct.tl.perturb(query, model, genes=["MS4A1"], mode="delete")
    with pytest.raises(KeyError, match="groupby 'donor'"):
        sct.tl.perturb(query, model, genes=["MS4A1"], groupby="donor")
    assert "sct_perturb" not in query.obsm


def test_classify_carries_cell_types_to_hidden_batches(query):
    mdata = query.copy()
    before = _frozen(mdata)
    # p4_0 labelled, p1_0 hidden; counts in X, proteins translated by the model
    mdata.obs["known"] = mdata.obs["celltype"].where(mdata.obs["batch"] == "p4_0")
    table = sct.tl.classify(mdata, label_key="known", cv=3)  # 3 "other" cells in p4_0
    _assert_unchanged(before, mdata)
    assert list(table.index) == ["rna", "protein", "joint"]
    assert list(table.columns) == ["balanced_accuracy", "macro_f1", "n_features"]
    assert (table["balanced_accuracy"] > 0.5).all() and (table["macro_f1"] > 0.5).all()
    assert table["n_features"].tolist() == [30, 14, 44]
    labels = mdata.obs["sct_classify"]
    hidden = mdata.obs["known"].isna().to_numpy()
    assert labels.dtype == "category" and labels.notna().all()
    assert (labels[~hidden].astype(str) == mdata.obs["known"][~hidden].astype(str)).all()
    accuracy = (labels[hidden].astype(str) == mdata.obs["celltype"][hidden].astype(str)).mean()
    assert accuracy > 0.8, accuracy  # p1_0 cells, never labelled
    uns = mdata.uns["sct_classify"]
    assert uns["params"]["features"] == "joint" and uns["params"]["n_predicted"] == 400
    probabilities = mdata.obsm["sct_classify_probabilities"]
    assert probabilities.shape == (800, len(uns["classes"]))
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (np.array(uns["classes"])[probabilities.argmax(1)][hidden] == labels[hidden]).all()
    pd.testing.assert_frame_equal(uns["cv_scores"], table)
    confusion = uns["confusion"]
    assert confusion.to_numpy().sum() == 400 and list(confusion.index) == uns["classes"]
    # the cross-validated recall of the confusion gives the balanced accuracy
    recall = np.diag(confusion.to_numpy()) / confusion.to_numpy().sum(1)
    assert recall.mean() == pytest.approx(table.loc["joint", "balanced_accuracy"])
    # copy=True: same labels, input untouched; one modality alone
    out = sct.tl.classify(query.copy(), label_key="celltype", protein=None, cv=3, copy=True)
    assert list(out.uns["sct_classify"]["cv_scores"].index) == ["rna"]


def test_classify_cross_validates_by_group(query, tmp_path):
    mdata = query.copy()
    table = sct.tl.classify(mdata, label_key="celltype", cv_key="batch", features="rna")
    assert mdata.uns["sct_classify"]["params"]["cv"] == "leave one group out"
    assert mdata.uns["sct_classify"]["params"]["n_predicted"] == 0
    assert (table["balanced_accuracy"] > 0.5).all()
    assert (mdata.obs["sct_classify"].astype(str) == mdata.obs["celltype"].astype(str)).all()
    # what it writes round-trips through an .h5mu file
    mdata.write(tmp_path / "classified.h5mu")
    back = mudata.read_h5mu(tmp_path / "classified.h5mu")
    pd.testing.assert_frame_equal(back.uns["sct_classify"]["cv_scores"], table)
    assert back.obsm["sct_classify_probabilities"].shape == (800, 8)


def test_classify_errors(query):
    mdata = query.copy()
    with pytest.raises(KeyError, match="label_key 'tissue' not found"):
        sct.tl.classify(mdata, label_key="tissue")
    mdata.obs["one"] = "a"
    with pytest.raises(ValueError, match="at least two"):
        sct.tl.classify(mdata, label_key="one")
    mdata.obs["rare"] = ["a", "b"] * 399 + ["c", "a"]
    with pytest.raises(ValueError, match="Class 'c' has a single labelled cell"):
        sct.tl.classify(mdata, label_key="rare")
    with pytest.raises(ValueError, match="features must be one of"):
        sct.tl.classify(mdata, label_key="celltype", protein=None, features="joint")
    with pytest.warns(UserWarning, match="with 3 folds instead of 5"):
        mdata.obs["small"] = ["a", "b"] * 397 + ["c"] * 3 + ["a"] * 3
        sct.tl.classify(mdata, label_key="small", protein=None)
    with pytest.raises(ValueError, match=r"obs\['sct_classify'\] already exists"):
        sct.tl.classify(mdata, label_key="celltype")
    with pytest.raises(TypeError, match="MuData"):
        sct.tl.classify(mdata["rna"], label_key="celltype")
