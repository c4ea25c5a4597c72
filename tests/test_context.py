"""The context rule: which expressed genes a cell keeps when it has more than max_genes."""

import numpy as np
import pytest
import scvi
import torch
from helpers import setup

import sctranslator as sct

N_PROTEINS, N_HOUSEKEEPING = 20, 60


@pytest.fixture(scope="module")
def cells():
    """Reference cells of 1,500 genes, the last 60 housekeeping-like, 20 proteins."""
    mdata = sct.datasets.synthetic_cite(
        n_cells=800,
        n_genes=1500,
        n_proteins=N_PROTEINS,
        n_housekeeping=N_HOUSEKEEPING,
        n_batches=2,
        seed=0,
    )
    return mdata[mdata.obs["split"] == "reference"].copy()


def _train(mdata, **kwargs):
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(setup(mdata.copy()), n_hidden=16, max_genes=32, **kwargs)
    model.train(max_epochs=1, enable_progress_bar=False)
    return model


def _counts(mdata) -> torch.Tensor:
    return torch.as_tensor(mdata["rna"].layers["counts"].toarray(), dtype=torch.float32)


def _housekeeping_share(module, counts) -> float:
    """Share of the selected tokens of all cells that are housekeeping genes."""
    x, gene_ids = module.read_registered_genes(counts)
    ids, _, present = module.select_genes(gene_ids, module.normalize_rna(x))
    housekeeping = np.isin(ids.numpy(), module.gene_ids[-N_HOUSEKEEPING:].numpy())
    return float(housekeeping[present.numpy()].mean())


def test_gene_weights_measure_how_genes_track_the_proteins(cells):
    model = _train(cells)
    module = model.module
    weight = module.gene_weight[module.gene_ids]
    assert weight.max() == 1 and (weight >= 0).all()
    counts = _counts(cells)
    target = model.panel_statistics.standardize(
        torch.as_tensor(np.asarray(cells["prot"].layers["counts"]), dtype=torch.float32),
        torch.zeros(cells.n_obs, dtype=torch.long),
    )
    shuffled = counts.clone()
    half = torch.arange(0, counts.shape[1], 2)  # every other gene loses its link to proteins
    shuffled[:, half] = counts[
        torch.randperm(len(counts), generator=torch.Generator().manual_seed(0))
    ][:, half]
    weights = sct.components.fit_gene_weights(module.normalize_rna(shuffled), target)
    module.set_gene_weights(weights, module.gene_ids)
    refitted = module.gene_weight[module.gene_ids]
    kept = torch.arange(1, counts.shape[1], 2)
    assert refitted[half].mean() < 0.5 * refitted[kept].mean()  # chance level: about 0


def test_context_rule_follows_the_weights_and_expressed_keeps_the_most_expressed(cells):
    expressed = _train(cells, context="expressed").module
    assert torch.equal(expressed.gene_weight, torch.ones_like(expressed.gene_weight))
    counts = _counts(cells)
    # the most expressed genes of these cells are mostly housekeeping ones
    assert _housekeeping_share(expressed, counts) > 0.8
    expressed.gene_weight[expressed.gene_ids[-N_HOUSEKEEPING:]] = 0.05
    assert _housekeeping_share(expressed, counts) < 0.1
    with pytest.raises(ValueError, match="context must be one of"):
        sct.SCTRANSLATOR(setup(cells.copy()), context="random")


def test_gene_weights_are_saved_and_transferred(cells, tmp_path):
    model = _train(cells)
    model.save(tmp_path / "model")
    loaded = sct.SCTRANSLATOR.load(tmp_path / "model")
    torch.testing.assert_close(loaded.module.gene_weight, model.module.gene_weight)
    query = sct.SCTRANSLATOR.load_query_data(cells[:50].copy(), model)
    known = len(model.vocabulary)
    torch.testing.assert_close(query.module.gene_weight[:known], model.module.gene_weight)
