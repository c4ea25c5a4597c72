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


def test_pretraining_runs_from_the_command_line_on_a_list_of_files(pbmc, tmp_path, capsys):
    """An RNA-only file and a paired file, ingested into a store, train with masked genes."""
    import json

    from helpers import MODALITIES, batch

    from sctranslator._cli import main

    rna_only = batch(pbmc, "p1_0")["rna"].copy()
    rna_only.obs["batch"] = "p1_0"
    rna_only.write_h5ad(tmp_path / "rna_only.h5ad")
    batch(pbmc, "p3_0").write_h5mu(tmp_path / "paired.h5mu")
    config = {
        "input": ["rna_only.h5ad", "paired.h5mu"],
        "output": "model",
        "setup": {
            "rna_layer": "counts",
            "protein_layer": "counts",
            "batch_key": "batch",
            "modalities": MODALITIES,
        },
        "model": {"n_hidden": 16, "max_genes": 64},
        "train": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "plan_kwargs": {"masked_genes": 32},
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "config.json")]) == 0
    assert "Trained 2 epochs" in capsys.readouterr().out
    model = sct.SCTRANSLATOR.load(tmp_path / "model")
    assert np.isfinite(model.history["mse_masked_genes_train"].to_numpy(dtype=float)).all()
    assert model.predict_protein(batch(pbmc, "p4_0")["rna"]).notna().all().all()
