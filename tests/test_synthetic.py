import numpy as np
import pytest
import scipy.sparse as sp

import sctranslator as sct
from sctranslator._baselines import knn_on_pca, ridge_on_pca


@pytest.fixture(scope="module")
def synthetic():
    return sct.datasets.synthetic_cite(
        n_cells=1200, n_genes=300, n_proteins=30, n_cell_types=5, seed=1
    )


def test_synthetic_cite_layout(synthetic):
    assert synthetic["rna"].shape == (1200, 300) and synthetic["prot"].shape == (1200, 30)
    assert sp.issparse(synthetic["rna"].X)
    assert synthetic["prot"].var_names[3] == "GENE0003_ADT"
    assert set(synthetic.obs["split"]) == {"reference", "query"}
    assert (synthetic.obs["split"] == "query").sum() == 400
    assert (synthetic.obs.loc[synthetic.obs["split"] == "query", "batch"] == "batch2").all()
    counts = synthetic["rna"].layers["counts"]
    assert counts.min() >= 0 and (np.asarray(counts.sum(1)).ravel() > 0).all()
    again = sct.datasets.synthetic_cite(
        n_cells=1200, n_genes=300, n_proteins=30, n_cell_types=5, seed=1
    )
    np.testing.assert_array_equal(again["prot"].X, synthetic["prot"].X)


def test_measured_proteins_follow_the_ground_truth(synthetic):
    measured = np.log1p(synthetic["prot"].layers["counts"])
    truth = np.log(synthetic["prot"].layers["truth"])
    r = [np.corrcoef(measured[:, j], truth[:, j])[0, 1] for j in range(truth.shape[1])]
    assert np.median(r) > 0.5


def test_shift_changes_the_query_composition():
    def composition(shift):
        mdata = sct.datasets.synthetic_cite(
            n_cells=3000, n_genes=50, n_proteins=5, shift=shift, seed=2
        )
        table = mdata.obs.groupby(["split", "celltype"], observed=False).size().unstack()
        return (table.T / table.sum(1)).T

    shifted, same = composition(True), composition(False)
    gap = lambda c: np.abs(c.loc["query"] - c.loc["reference"]).sum()  # noqa: E731
    assert gap(shifted) > 0.3 > gap(same)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_batches"):
        sct.datasets.synthetic_cite(n_cells=10, n_batches=1)
    with pytest.raises(ValueError, match="n_proteins"):
        sct.datasets.synthetic_cite(n_cells=10, n_genes=5, n_proteins=6)


def test_pca_baselines_predict_proteins_of_held_out_cells(synthetic):
    reference = synthetic[synthetic.obs["split"] == "reference"]
    query = synthetic[synthetic.obs["split"] == "query"]
    train = sct.pp.normalize_protein(reference["prot"], layer="counts")
    truth = sct.pp.normalize_protein(query["prot"], layer="counts")
    for fit in (ridge_on_pca, knn_on_pca):
        prediction = fit(reference["rna"], train, query["rna"], n_pcs=20)
        assert prediction.shape == truth.shape and (prediction.index == truth.index).all()
        assert sct.metrics.evaluate(prediction, truth)["protein_pearson_mean"] > 0.3
