import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from helpers import batch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread

import sctranslator as sct


@pytest.fixture(scope="module")
def cells(pbmc, trained):
    """Held-out p4_0 cells: predictions filled in by the `trained` model (``prot_pred``) and
    the measured proteins on the same scale (CLR) in ``prot.layers["clr"]``; the same two as
    tables."""
    cells = batch(pbmc, "p4_0")
    sct.tl.fill_protein(cells, trained)
    measured = sct.pp.normalize_protein(cells["prot"], method="clr", layer="counts")
    cells["prot"].layers["clr"] = measured.to_numpy()
    predicted = trained.predict_protein(cells["rna"])
    return cells, predicted, measured


def _png(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not blank
    return image


def _heights(ax):
    return [p.get_height() for p in ax.patches]


def test_protein_correlation_bars(cells, tmp_path):
    mdata, predicted, measured = cells
    ax = sct.pl.protein_correlation(
        mdata, "prot", layer="clr", n_top=12, show=False, save=tmp_path / "r.png"
    )
    assert isinstance(ax, Axes) and len(ax.patches) == 12
    heights = _heights(ax)
    assert heights == sorted(heights, reverse=True)
    r = sct.metrics.per_protein_pearson(
        predicted, measured.loc[predicted.index, predicted.columns]
    )
    assert heights[0] == pytest.approx(np.nanmax(r), abs=1e-5)
    assert f"{np.nanmean(r):.2f}" in ax.get_title()
    _png(tmp_path / "r.png")
    # the tables the model and sct.pp return give the same bars
    tables = sct.pl.protein_correlation(predicted, measured, n_top=12, show=False)
    np.testing.assert_allclose(_heights(tables), heights, atol=1e-5)
    with pytest.raises(FileExistsError, match="save to another path or remove it"):
        sct.pl.protein_correlation(mdata, layer="clr", show=False, save=tmp_path / "r.png")
    _, own = plt.subplots()
    assert (
        sct.pl.protein_correlation(
            mdata, layer="clr", proteins=["CD4-1", "CD8"], method="spearman", ax=own, show=False
        )
        is own
    )
    assert [t.get_text() for t in own.get_xticklabels()] == ["CD4-1", "CD8"]
    with pytest.raises(ValueError, match="not measured"):
        sct.pl.protein_correlation(predicted.assign(NEW=0.0), measured, show=False)
    with pytest.raises(KeyError, match="'prot_x'.*fill_protein"):
        sct.pl.protein_correlation(mdata, key="prot_x", show=False)
    with pytest.raises(TypeError, match="measured values as a table"):
        sct.pl.protein_correlation(predicted, "prot", show=False)
    with pytest.raises(TypeError, match="positional argument"):
        sct.pl.protein_correlation(mdata, "prot", "prot_pred")
    plt.close("all")


def test_predicted_vs_measured_reads_the_filled_modality(cells, tmp_path):
    mdata, predicted, measured = cells
    fig = sct.pl.predicted_vs_measured(
        mdata, "prot", layer="clr", proteins=["CD19", "CD14"], show=False, save=tmp_path / "s.png"
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_title().startswith("CD19  r = ")
    np.testing.assert_allclose(
        fig.axes[0].collections[0].get_offsets()[:, 0], predicted["CD19"], atol=1e-5
    )
    _png(tmp_path / "s.png")
    same = sct.pl.predicted_vs_measured(predicted, measured, proteins=["CD19"], show=False)
    assert same.axes[0].get_title() == fig.axes[0].get_title()
    # intervals: the layers that fill_protein(interval=...) writes are drawn when present
    with_intervals = mdata.copy()
    filled = with_intervals["prot_pred"]
    filled.layers["lower"], filled.layers["upper"] = filled.X - 1, filled.X + 1
    fig = sct.pl.predicted_vs_measured(
        with_intervals, "prot", layer="clr", proteins=["CD19"], show=False
    )
    assert "in interval" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="both `lower` and `upper`"):
        sct.pl.predicted_vs_measured(predicted, measured, lower=predicted, show=False)
    plt.close("all")


def test_protein_reliability_of_data_and_model(cells, trained, tmp_path):
    mdata, _, _ = cells
    reliability = mdata["prot_pred"].var["reliability"]
    ax = sct.pl.protein_reliability(mdata, show=False, save=tmp_path / "rel.png")
    assert len(ax.collections[0].get_offsets()) == reliability.notna().sum() > 0
    _png(tmp_path / "rel.png")
    from_model = sct.pl.protein_reliability(trained, show=False)
    np.testing.assert_allclose(
        from_model.collections[0].get_offsets(), ax.collections[0].get_offsets()
    )
    shown = sct.pl.protein_reliability(mdata["prot_pred"], proteins=["CD19", "CD14"], show=False)
    assert len(shown.texts) == 2
    with pytest.raises(KeyError, match="'other'.*fill_protein"):
        sct.pl.protein_reliability(mdata, key="other", show=False)
    plt.close("all")


INTERACTIONS = pd.DataFrame(
    [[0.1, 0.0], [0.0, 0.3], [0.2, 0.05], [0.01, 0.02]],
    index=pd.Index(["MS4A1", "CD8A", "CD79B", "LYZ"]),
    columns=["CD20", "CD8"],
)


def test_interaction_heatmap_reads_what_tl_interactions_wrote(tmp_path):
    data = AnnData(np.zeros((3, 4)), uns={"sct_interactions": INTERACTIONS})
    ax = sct.pl.interaction_heatmap(data, n_top=2, show=False, save=tmp_path / "h.png")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CD79B", "MS4A1", "CD8A"]
    assert ax.images[0].get_cmap().name == "viridis"
    _png(tmp_path / "h.png")
    data.uns["signed"] = INTERACTIONS - 0.1
    signed = sct.pl.interaction_heatmap(
        data, key="signed", genes=["LYZ"], proteins=["CD8"], show=False
    )
    assert signed.images[0].get_cmap().name == "RdBu_r"
    assert signed.images[0].get_array().shape == (1, 1)
    table = sct.pl.interaction_heatmap(INTERACTIONS, n_top=2, show=False)  # the returned table
    np.testing.assert_array_equal(table.images[0].get_array(), ax.images[0].get_array())
    with pytest.raises(ValueError, match="not in the table"):
        sct.pl.interaction_heatmap(data, proteins=["CD4"], show=False)
    with pytest.raises(KeyError, match="run sct.tl.interactions first"):
        sct.pl.interaction_heatmap(data, key="other", show=False)
    plt.close("all")


def test_perturbation_effect_reads_what_tl_perturb_wrote(tmp_path):
    table = pd.DataFrame(
        {
            "group": ["B", "B", "T", "T"],
            "protein": ["CD20", "CD8", "CD20", "CD8"],
            "shift": [-0.5, 0.01, -0.02, 0.2],
        }
    )
    data = AnnData(np.zeros((3, 4)), uns={"sct_perturb": {"params": {}, "mean_shift": table}})
    ax = sct.pl.perturbation_effect(data, n_top=1, show=False, save=tmp_path / "p.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CD20"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "T"]
    np.testing.assert_allclose(ax.images[0].get_array().ravel(), [-0.5, -0.02])
    assert ax.images[0].norm.vmin == -0.5 and ax.images[0].norm.vmax == 0.5
    _png(tmp_path / "p.png")
    same = sct.pl.perturbation_effect(table, n_top=1, show=False)  # the returned table
    np.testing.assert_array_equal(same.images[0].get_array(), ax.images[0].get_array())
    with pytest.raises(ValueError, match="lacks columns"):
        sct.pl.perturbation_effect(table.drop(columns="shift"), show=False)
    with pytest.raises(KeyError, match="run sct.tl.perturb first"):
        sct.pl.perturbation_effect(data, key="ko", show=False)
    with pytest.raises(TypeError, match="positional argument"):
        sct.pl.perturbation_effect(data, "sct_perturb")
    plt.close("all")


def test_embedding_delegates_to_scanpy(pbmc, tmp_path):
    mdata = pbmc.copy()
    mdata.obsm["X_test"] = np.random.default_rng(0).normal(size=(mdata.n_obs, 3))
    axes = sct.pl.embedding(
        mdata, basis="X_test", color=["celltype", "batch"], show=False, save=tmp_path / "e.png"
    )
    assert len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    assert axes[0].get_title() == "celltype"
    _png(tmp_path / "e.png")
    assert "celltype_colors" not in mdata.uns  # the user's object is left as it was
    _, own = plt.subplots()
    assert (
        sct.pl.embedding(
            mdata, basis="X_test", color="batch", components="2,3", ax=own, show=False
        )
        is own
    )
    with pytest.raises(KeyError, match="obsm\\['X_umap'\\] not found"):
        sct.pl.embedding(mdata, basis="X_umap", show=False)
    with pytest.raises(KeyError, match="obs columns \\['donor'\\]"):
        sct.pl.embedding(mdata, basis="X_test", color="donor", show=False)
    plt.close("all")


def test_confusion_matrix(pbmc, tmp_path):
    from mudata import MuData

    mdata = MuData({"rna": pbmc["rna"].copy()})
    mdata.obs = pbmc.obs[["batch", "celltype"]].copy()
    mdata.obs["known"] = mdata.obs["celltype"].where(mdata.obs["batch"] != "p1_0")
    sct.tl.classify(mdata, label_key="known", protein=None, cv=3)
    ax = sct.pl.confusion_matrix(mdata, show=False, save=tmp_path / "cv.png")
    classes = mdata.uns["sct_classify"]["classes"]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    values = ax.images[0].get_array()
    np.testing.assert_allclose(values.sum(1), 1)  # rows are fractions of the true class
    assert np.diag(values).mean() == pytest.approx(
        mdata.uns["sct_classify"]["cv_scores"].loc["rna", "balanced_accuracy"]
    )
    _png(tmp_path / "cv.png")
    hidden = sct.pl.confusion_matrix(mdata, truth="celltype", normalize=False, show=False)
    assert hidden.images[0].get_array().sum() == (mdata.obs["batch"] == "p1_0").sum()
    assert "obs['celltype']" in hidden.get_title()
    with pytest.raises(KeyError, match="run it first"):
        sct.pl.confusion_matrix(mdata, key="other", show=False)
    with pytest.raises(KeyError, match="truth 'donor'"):
        sct.pl.confusion_matrix(mdata, truth="donor", show=False)
    plt.close("all")
