import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from helpers import batch
from matplotlib.axes import Axes
from matplotlib.image import imread

import sctranslator as sct


@pytest.fixture(scope="module")
def cells(pbmc, trained):
    """Held-out p4_0 cells: measured CLR proteins and the `trained` model's predictions."""
    cells = batch(pbmc, "p4_0")
    predicted = trained.predict_protein(cells["rna"])
    measured = sct.pp.normalize_protein(cells["prot"], method="clr", layer="counts")
    return cells, predicted, measured


def _png(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not blank
    return image


def test_protein_correlation_bars(cells, tmp_path):
    _, predicted, measured = cells
    ax = sct.pl.protein_correlation(
        predicted, measured, n_top=12, show=False, save=tmp_path / "r.png"
    )
    assert isinstance(ax, Axes) and len(ax.patches) == 12
    heights = [p.get_height() for p in ax.patches]
    assert heights == sorted(heights, reverse=True)
    r = sct.metrics.per_protein_pearson(
        predicted, measured.loc[predicted.index, predicted.columns]
    )
    assert heights[0] == pytest.approx(np.nanmax(r))
    assert f"{np.nanmean(r):.2f}" in ax.get_title()
    _png(tmp_path / "r.png")
    with pytest.raises(FileExistsError, match="save to another path or remove it"):
        sct.pl.protein_correlation(predicted, measured, show=False, save=tmp_path / "r.png")
    _, own = plt.subplots()
    assert (
        sct.pl.protein_correlation(
            predicted, measured, proteins=["CD4-1", "CD8"], method="spearman", ax=own, show=False
        )
        is own
    )
    assert [t.get_text() for t in own.get_xticklabels()] == ["CD4-1", "CD8"]
    with pytest.raises(ValueError, match="not measured"):
        sct.pl.protein_correlation(predicted.assign(NEW=0.0), measured, show=False)
    plt.close("all")


def test_interaction_heatmap(tmp_path):
    genes = pd.Index(["MS4A1", "CD8A", "CD79B", "LYZ"])
    table = pd.DataFrame(
        [[0.1, 0.0], [0.0, 0.3], [0.2, 0.05], [0.01, 0.02]], index=genes, columns=["CD20", "CD8"]
    )
    ax = sct.pl.interaction_heatmap(table, n_top=2, show=False, save=tmp_path / "h.png")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CD79B", "MS4A1", "CD8A"]
    assert ax.images[0].get_cmap().name == "viridis"
    _png(tmp_path / "h.png")
    signed = sct.pl.interaction_heatmap(table - 0.1, genes=["LYZ"], proteins=["CD8"], show=False)
    assert signed.images[0].get_cmap().name == "RdBu_r" and signed.images[0].get_array().shape == (
        1,
        1,
    )
    with pytest.raises(ValueError, match="not in the table"):
        sct.pl.interaction_heatmap(table, proteins=["CD4"], show=False)
    plt.close("all")


def test_perturbation_effect(tmp_path):
    table = pd.DataFrame(
        {
            "group": ["B", "B", "T", "T"],
            "protein": ["CD20", "CD8", "CD20", "CD8"],
            "shift": [-0.5, 0.01, -0.02, 0.2],
        }
    )
    ax = sct.pl.perturbation_effect(table, n_top=1, show=False, save=tmp_path / "p.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CD20"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "T"]
    np.testing.assert_allclose(ax.images[0].get_array().ravel(), [-0.5, -0.02])
    assert ax.images[0].norm.vmin == -0.5 and ax.images[0].norm.vmax == 0.5
    _png(tmp_path / "p.png")
    with pytest.raises(ValueError, match="lacks columns"):
        sct.pl.perturbation_effect(table.drop(columns="shift"), show=False)
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
    sct.tl.classify(mdata, "known", protein=None, cv=3)
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
