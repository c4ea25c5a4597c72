"""Self-supervised training on RNA: masked genes, predicted by the protein read-out."""

import numpy as np
import scvi
import torch
from helpers import setup
from scvi import REGISTRY_KEYS

import sctranslator as sct


def test_mask_genes_hides_genes_and_returns_their_values(pbmc):
    model = sct.SCTRANSLATOR(setup(pbmc[pbmc.obs["batch"] == "p3_0"].copy()), n_hidden=16)
    plan = sct.train.TranslatorTrainingPlan(
        model.module, panel=model.panel_statistics, masked_genes=7
    )
    x = torch.as_tensor(model.adata["rna"].layers["counts"][:20].toarray())
    batch = {REGISTRY_KEYS.X_KEY: x, REGISTRY_KEYS.BATCH_KEY: torch.zeros(20, 1)}
    hidden, (token_ids, values) = plan.mask_genes(batch)
    columns = torch.nonzero(hidden[REGISTRY_KEYS.X_KEY].isnan().all(0)).view(-1)
    assert len(columns) == 7 and not torch.isnan(x).any()  # the input is not changed
    assert set(token_ids.tolist()) == set(model.module.gene_ids[columns].tolist())
    order = [int(torch.nonzero(model.module.gene_ids == t)) for t in token_ids.tolist()]
    torch.testing.assert_close(values, model.module.normalize_rna(x)[:, order])


def test_rna_only_cells_train_the_encoder_through_masked_genes(pbmc):
    mosaic = setup(pbmc[pbmc.obs["batch"].isin(["p1_0", "p3_0"])].copy())
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(mosaic, n_hidden=16, max_genes=64)
    model.train(
        max_epochs=8,
        plan_kwargs={"masked_genes": 64},
        early_stopping=False,
        enable_progress_bar=False,
    )
    masked = model.history["mse_masked_genes_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(masked).all() and masked[-1] < 0.8 * masked[0]
    assert np.isfinite(model.history["mse_train"].to_numpy(dtype=float)).all()
