"""Helpers shared by the tests."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

import sctranslator as sct
from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import CellStore, ingest

MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
TESTS = Path(__file__).parent


def run_ddp_script(script: str, *args: str, cwd: Path) -> None:
    """Run ``tests/<script>`` (which starts its own DDP processes) in one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    result = subprocess.run(
        [sys.executable, str(TESTS / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def batch(mdata, name):
    # 13 PBMC antibodies are named like their genes; no column pulling, as in sctranslator
    with no_pull(), shared_var_names(mdata.mod.values()):
        return mdata[mdata.obs["batch"] == name].copy()


def setup(mdata):
    sct.SCTRANSLATOR.setup_mudata(
        mdata, rna_layer="counts", protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    return mdata


MUDATA_SETUP = {"rna_layer": "counts", "protein_layer": "counts"}
NAN_CELL = 7  # a p3_0 cell whose proteins are NaN in its file (unmeasured within a panel)


@dataclasses.dataclass
class Source:
    """What one input file holds: counts on its own panels (``proteins`` None: RNA-only)."""

    path: Path
    rna: pd.DataFrame
    proteins: pd.DataFrame | None


def write_sources(pbmc, folder: Path) -> dict[str, Source]:
    """p3_0 and p4_0 as .h5mu (overlapping panels, p4_0's in reverse order), p1_0 as an
    RNA-only .h5ad with counts in X whose genes include 50 that neither .h5mu measures."""
    genes, proteins = pbmc["rna"].var_names, pbmc["prot"].var_names
    panels = {
        "p3_0": (genes[:400], proteins[:150]),
        "p4_0": (genes[100:450][::-1], proteins[50:][::-1]),
        "p1_0": (genes[250:], None),
    }
    out = {}
    for name, (gene_panel, protein_panel) in panels.items():
        cells = (pbmc.obs["batch"] == name).to_numpy()
        rna = pbmc["rna"][cells, gene_panel]
        counts = pd.DataFrame(
            rna.layers["counts"].toarray(), index=rna.obs_names, columns=rna.var_names
        )
        if protein_panel is None:
            path = folder / f"{name}.h5ad"
            ad.AnnData(
                X=rna.layers["counts"].copy(), obs=rna.obs.copy(), var=rna.var.copy()
            ).write_h5ad(path)
            out[name] = Source(path, counts, None)
            continue
        prot = pbmc["prot"][cells, protein_panel]
        values = np.array(prot.layers["counts"], dtype=np.float32)
        values[NAN_CELL] = np.nan
        path = folder / f"{name}.h5mu"
        with no_pull(), shared_var_names(None):
            md.MuData(
                {
                    "rna": ad.AnnData(
                        obs=rna.obs.copy(),
                        var=rna.var.copy(),
                        layers={"counts": rna.layers["counts"]},
                    ),
                    "prot": ad.AnnData(
                        obs=prot.obs.copy(), var=prot.var.copy(), layers={"counts": values}
                    ),
                }
            ).write_h5mu(path)
        out[name] = Source(
            path, counts, pd.DataFrame(values, index=prot.obs_names, columns=prot.var_names)
        )
    return out


def build(sources, uri):
    """Ingest the two .h5mu files, then append the .h5ad (counts in X, so no setup)."""
    ingest([sources["p3_0"].path, sources["p4_0"].path], uri, setup=MUDATA_SETUP)
    ingest([sources["p1_0"].path], uri, append=True)
    return CellStore(uri)
