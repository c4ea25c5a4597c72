import json
import logging
import os
import subprocess
import sys

import anndata  # noqa: F401  (imported before mudata for a stable import order)
import mudata as md
import numpy as np
import pytest
import scvi

import sctranslator as sct
from sctranslator._cli import main
from sctranslator._warnings import quiet_dependencies

BANNERS = ("GPU available", "TPU available", "Tip", "litlogger", "Seed set to")


def test_demo_writes_table_h5mu_and_png_and_no_banners(tmp_path, capsys):
    out = tmp_path / "demo"
    command = [
        sys.executable,
        "-m",
        "sctranslator",
        "demo",
        "--out",
        str(out),
        "--max-epochs",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as a user runs it: a process of its own
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    for row in (
        "sctranslator",
        "average profile (control)",
        "ridge on RNA PCA",
        "kernel ridge on RNA PCA",
        "per-protein Pearson",
        "load_pretrained('pbmc')",
    ):
        assert row in printed
    # quiet by default: Lightning's banners and scvi-tools' seed line are not printed
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if any(banner in line for banner in BANNERS)]
    assert "Epoch 2/2" in result.stdout + result.stderr  # the progress bar stays
    translated = md.read_h5mu(out / "pbmc_rna_only_reference.h5mu")
    assert (
        translated["prot_pred"].shape == (400, 224)
        and "reliability" in translated["prot_pred"].var
    )
    result = md.read_h5mu(out / "pbmc_translated.h5mu")
    assert result["prot_pred"].shape == (400, 224)
    assert "prot" not in result.mod
    assert (out / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
    before = (out / "pbmc_translated.h5mu").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--max-epochs", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "pbmc_translated.h5mu").stat().st_mtime_ns == before


def test_banners_are_hidden_only_inside_the_context_and_shown_at_debug_verbosity():
    seed_logger = logging.getLogger("lightning.fabric.utilities.seed")
    info = seed_logger.makeRecord(seed_logger.name, logging.INFO, "seed.py", 1, "Seed", (), None)
    warning = seed_logger.makeRecord(seed_logger.name, logging.WARNING, "x.py", 1, "!", (), None)
    level = scvi.settings.verbosity
    try:
        with quiet_dependencies():
            assert not seed_logger.filter(info) and seed_logger.filter(warning)
        assert seed_logger.filter(info)  # lifted on exit
        scvi.settings.verbosity = logging.DEBUG
        with quiet_dependencies():
            assert seed_logger.filter(info)  # banners back at DEBUG verbosity
    finally:
        scvi.settings.verbosity = level
    assert not seed_logger.filters


def test_module_entry_point_has_help():
    result = subprocess.run(
        [sys.executable, "-m", "sctranslator", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("demo", "predict", "train"))


def _write_rna(mdata, path):
    """The RNA modality alone, as the .h5ad file a pipeline would pass."""
    mdata["rna"].write_h5ad(path)
    return path


def test_predict_writes_h5mu_like_predict_protein(trained, pbmc, tmp_path, capsys):
    from helpers import batch

    query = batch(pbmc, "p4_0")
    trained.save(tmp_path / "model")
    source = _write_rna(query, tmp_path / "rna.h5ad")
    out = tmp_path / "out.h5mu"
    argv = [
        "predict",
        "--model",
        str(tmp_path / "model"),
        "--input",
        str(source),
        "--output",
        str(out),
    ]
    assert main([*argv, "--proteins", "CD4-1", "PD-1", "--no-progress"]) == 0
    assert "Wrote predictions for 400 cells" in capsys.readouterr().out
    result = md.read_h5mu(out)["prot_pred"]
    expected = trained.predict_protein(query["rna"], proteins=["CD4-1", "PD-1"])
    assert list(result.var_names) == ["CD4-1", "PD-1"]
    np.testing.assert_allclose(result.X, expected.to_numpy(), atol=1e-5)

    # an existing output is refused, then replaced with --overwrite (all proteins, from .h5mu)
    query.write_h5mu(tmp_path / "query.h5mu")
    argv[4] = str(tmp_path / "query.h5mu")
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--no-progress"]) == 0
    assert md.read_h5mu(out)["prot_pred"].shape == (400, 224)


def test_predict_errors_name_the_problem(trained, pbmc, tmp_path, capsys):
    from helpers import batch

    query = batch(pbmc, "p4_0")
    trained.save(tmp_path / "model")
    out = tmp_path / "out.h5mu"

    def run(source, model=tmp_path / "model"):
        code = main(
            ["predict", "--model", str(model), "--input", str(source), "--output", str(out)]
        )
        return code, capsys.readouterr().err

    code, err = run(tmp_path / "missing.h5ad")
    assert code == 1 and "sctranslator: error: Input file" in err and "does not exist" in err
    code, err = run(_write_rna(query, tmp_path / "rna.h5ad"), model=tmp_path / "nomodel")
    assert code == 1 and "No saved model" in err
    proteins_only = md.MuData({"prot": query["prot"]})
    proteins_only.write_h5mu(tmp_path / "prot.h5mu")
    code, err = run(tmp_path / "prot.h5mu")
    assert code == 1 and "Modality 'rna'" in err and "available: ['prot']" in err
    unknown = query["rna"].copy()
    unknown.var_names = [f"NOTAGENE{i}" for i in range(unknown.n_vars)]
    unknown.write_h5ad(tmp_path / "unknown.h5ad")
    code, err = run(tmp_path / "unknown.h5ad")
    assert code == 1 and "None of the 500 genes" in err
    assert not out.exists()
    with pytest.raises(SystemExit) as usage:
        main(["predict", "--model", str(tmp_path / "model")])
    assert usage.value.code == 2


def test_train_from_json_config(pbmc, tmp_path, capsys):
    from helpers import MODALITIES, batch

    batch(pbmc, "p3_0").write_h5mu(tmp_path / "train.h5mu")
    config = {
        "input": "train.h5mu",
        "output": "model",
        "setup": {
            "rna_layer": "counts",
            "protein_layer": "counts",
            "batch_key": "batch",
            "modalities": MODALITIES,
        },
        "model": {"n_hidden": 16, "max_genes": 64},
        "train": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False},
        "backed": True,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "config.json")]) == 0
    assert "Trained 2 epochs" in capsys.readouterr().out
    model = sct.SCTRANSLATOR.load(tmp_path / "model", adata=batch(pbmc, "p3_0"))
    assert model.module.max_genes == 64
    assert main(["train", "--config", str(tmp_path / "config.json")]) == 1
    assert "already exists" in capsys.readouterr().err

    (tmp_path / "bad.json").write_text(json.dumps({**config, "epochs": 3}))
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 1
    assert "Unknown configuration keys ['epochs']" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
