import subprocess
import sys

import anndata  # noqa: F401  (imported before mudata for a stable import order)
import mudata as md

from sctranslator._cli import main


def test_demo_writes_table_h5mu_and_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-epochs", "2"]) == 0
    printed = capsys.readouterr().out
    for row in ("sctranslator", "average profile (control)", "ridge on RNA PCA", "per-protein Pearson"):
        assert row in printed
    result = md.read_h5mu(out / "pbmc_translated.h5mu")
    assert result["prot_pred"].shape == (400, 224)
    assert "prot" not in result.mod
    assert (out / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
    before = (out / "pbmc_translated.h5mu").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--max-epochs", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "pbmc_translated.h5mu").stat().st_mtime_ns == before


def test_module_entry_point_has_help():
    result = subprocess.run([sys.executable, "-m", "sctranslator", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
