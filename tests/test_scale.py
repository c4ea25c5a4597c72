import json
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch
from helpers import batch, run_ddp_script, setup

import sctranslator as sct
from sctranslator.data import write_blocks


def _rna_h5ad(mdata, path: Path, with_proteins: bool = False) -> Path:
    """The RNA counts of ``mdata`` in a sparse ``.X`` (proteins in ``obsm``), written to path."""
    rna = ad.AnnData(
        X=sp.csr_matrix(mdata["rna"].layers["counts"]),
        obs=mdata.obs[["batch"]].copy(),
        var=pd.DataFrame(index=mdata["rna"].var_names),
    )
    if with_proteins:
        rna.obsm["protein"] = mdata["prot"].to_df(layer="counts")
    rna.write_h5ad(path)
    return path


@pytest.mark.slow  # two training processes plus a single-process reference
def test_ddp_two_cpu_processes_learn_like_one(tmp_path):
    from ddp_train import train_and_score

    run_ddp_script("ddp_train.py", str(tmp_path), "2", "10", cwd=tmp_path)
    two = json.loads((tmp_path / "summary_2.json").read_text())
    one = train_and_score(1, 10, tmp_path / "logs_1")
    print(f"1 process: {one}\n2 processes: {two}")
    assert (two["world_size"], two["strategy"], two["backend"]) == (2, "DDPStrategy", "gloo")
    # scvi-tools' distributed sampler gives each process half of the cells
    assert two["train_batches_per_epoch"] == one["train_batches_per_epoch"] == 12
    assert two["epochs"] == one["epochs"] == 10  # scvi-tools disables early stopping under DDP
    # both learn (validation Pearson rises from ~0.03) to a similar level on the held-out batch;
    # equality is not expected: the processes shuffle and drop out differently
    for run in (one, two):
        assert run["pearson_validation"][-1] > run["pearson_validation"][0] + 0.1
        assert run["test_protein_pearson"] > 0.12
    assert abs(two["test_protein_pearson"] - one["test_protein_pearson"]) < 0.1
    assert abs(two["pearson_validation"][-1] - one["pearson_validation"][-1]) < 0.1


def test_train_and_predict_from_backed_h5ad(pbmc, tmp_path):
    scvi.settings.seed = 0
    backed = ad.read_h5ad(_rna_h5ad(batch(pbmc, "p3_0"), tmp_path / "p3.h5ad", True), backed="r")
    assert backed.isbacked and not sp.issparse(backed.X)  # a CSR dataset on disk
    sct.SCTRANSLATOR.setup_anndata(
        backed, protein_expression_obsm_key="protein", batch_key="batch"
    )
    model = sct.SCTRANSLATOR(backed, n_hidden=16, max_genes=64)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert len(model.history["pearson_validation"]) == 2

    test = batch(pbmc, "p4_0")
    query = ad.read_h5ad(_rna_h5ad(test, tmp_path / "p4.h5ad"), backed="r")
    in_memory = model.predict_protein(query.to_memory())
    from_disk = model.predict_protein(query, batch_size=64)
    pd.testing.assert_frame_equal(from_disk, in_memory, atol=1e-5)

    written = model.predict_protein(query, batch_size=64, output=tmp_path / "pred.h5ad")
    result = ad.read_h5ad(written)
    np.testing.assert_allclose(result.X, in_memory.to_numpy(), atol=1e-5)
    assert list(result.obs_names) == list(query.obs_names)
    assert list(result.var_names) == list(in_memory.columns)


def test_predict_streams_to_h5mu_atomically(trained, pbmc, tmp_path, capsys):
    query = batch(pbmc, "p4_0")["rna"].copy()
    expected = trained.predict_protein(query, proteins=["CD4-1", "PD-1", "CD8"])
    out = tmp_path / "pred.h5mu"
    path = trained.predict_protein(
        query, proteins=["CD4-1", "PD-1", "CD8"], batch_size=50, progress_bar=True, output=out
    )
    assert path == out and "Predicting" in capsys.readouterr().err
    result = md.read_h5mu(out)
    assert list(result.mod) == ["prot_pred"]
    pred = result["prot_pred"]
    np.testing.assert_allclose(pred.X, expected.to_numpy(), atol=1e-5)
    assert list(pred.obs_names) == list(query.obs_names)
    vocabulary = trained.vocabulary
    tokens = [vocabulary.tokens[i] for i in vocabulary.lookup_proteins(["CD4-1", "PD-1", "CD8"])]
    assert list(pred.var["token"]) == tokens
    assert pred.uns["sctranslator"]["max_genes"] == trained.module.max_genes

    before = out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.predict_protein(query, output=out)
    assert out.stat().st_mtime_ns == before
    trained.predict_protein(query, output=out, overwrite=True)
    assert md.read_h5mu(out)["prot_pred"].shape == (400, 224)
    with pytest.raises(ValueError, match=".h5ad"):
        trained.predict_protein(query, output=tmp_path / "pred.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.h5mu"]


def test_write_blocks_refuses_a_short_matrix_and_leaves_nothing(tmp_path):
    blocks = (np.full((2, 3), i) for i in range(2))
    with pytest.raises(ValueError, match="held 4 rows; expected 5"):
        write_blocks(tmp_path / "x.h5ad", blocks, list("abcde"), pd.DataFrame(index=list("xyz")))
    assert list(tmp_path.iterdir()) == []
    blocks = (np.full((2, 3), i) for i in range(3))
    written = write_blocks(
        tmp_path / "x.h5ad", blocks, list("abcdef"), pd.DataFrame(index=list("xyz"))
    )
    np.testing.assert_array_equal(ad.read_h5ad(written).X[:, 0], [0, 0, 1, 1, 2, 2])


def test_fill_protein_on_backed_mudata_streams_to_disk(trained, pbmc, tmp_path):
    query = batch(pbmc, "p4_0")
    del query.mod["prot"]
    query.update()
    query.write_h5mu(tmp_path / "query.h5mu")
    stamp = (tmp_path / "query.h5mu").stat().st_mtime_ns
    backed = md.read_h5mu(tmp_path / "query.h5mu", backed=True)
    sct.tl.fill_protein(backed, trained, output=tmp_path / "prot_pred.h5ad")
    filled = backed["prot_pred"]
    assert filled.isbacked
    expected = trained.predict_protein(query)
    np.testing.assert_allclose(filled.X[:], expected.to_numpy(), atol=1e-5)
    assert (tmp_path / "query.h5mu").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="must be an .h5ad"):
        sct.tl.fill_protein(backed, trained, key_added="other", output=tmp_path / "x.h5mu")


def test_gradient_checkpointing_gives_the_same_gradients(trained, pbmc):
    module = sct.SCTRANSLATOR(
        setup(batch(pbmc, "p3_0")), n_hidden=16, dropout=0.0, gene_dropout=0.0
    ).module
    module.train()
    x = torch.as_tensor(
        batch(pbmc, "p3_0")["rna"].layers["counts"][:32].toarray(), dtype=torch.float32
    )

    def gradients(checkpointing: bool) -> list[torch.Tensor]:
        module.zero_grad()
        module.gradient_checkpointing = checkpointing
        context = module.inference(x)["context"]
        module.generative(context)["protein"].pow(2).mean().backward()
        return [p.grad.clone() for p in module.parameters() if p.grad is not None]

    plain, checkpointed = gradients(False), gradients(True)
    assert len(plain) == len(checkpointed) > 10
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b)


def test_bf16_mixed_precision_and_checkpointing_train_on_cpu(pbmc):
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(
        setup(batch(pbmc, "p3_0")), n_hidden=16, max_genes=64, gradient_checkpointing=True
    )
    model.train(max_epochs=1, accelerator="cpu", precision="bf16-mixed", enable_progress_bar=False)
    assert model.trainer.precision == "bf16-mixed"
    assert model.module.gradient_checkpointing
    mse = [float(value) for value in model.history["mse_train"]["mse_train"]]
    assert len(mse) == 1 and np.isfinite(mse).all()
    assert np.isfinite(model.predict_protein(batch(pbmc, "p4_0")["rna"]).to_numpy()).all()
