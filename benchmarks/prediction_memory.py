"""Peak memory and wall time of streamed prediction as the number of cells grows.

Trains an SCTRANSLATOR (default architecture) on the embedded PBMC batch p3_0 (RNA counts in
``.X``), writes synthetic sparse RNA files of N cells to disk (rows resampled from the real
PBMC cells, so the genes and sparsity are real; written in chunks, never whole in memory),
then runs

    sctranslator predict --model MODEL --input cells_N.h5ad --output pred_N.h5ad

for each N in a fresh process (one thread), and reads that process's peak resident memory
and CPU time from ``os.wait4``. The input is opened backed and the predictions are streamed
to disk, so the peak should stay flat as N grows. Prints a table and writes
``prediction_memory.csv`` and ``prediction_memory.md`` into ``--out``; the model and the data
files go to ``--workdir``.

    python benchmarks/prediction_memory.py [--cells 10000 100000 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
import torch

import sctranslator as sct
from sctranslator._mudata import no_pull

CHUNK = 50_000


def train_model(path: Path, epochs: int) -> None:
    """A default model set up on ``.X`` counts, trained ``epochs`` epochs, saved to ``path``."""
    scvi.settings.seed = 0
    pbmc = sct.datasets.pbmc_cite_mini()
    train = pbmc[pbmc.obs["batch"] == "p3_0"].copy()
    adata = ad.AnnData(
        X=sp.csr_matrix(train["rna"].layers["counts"]),
        obs=train.obs[["batch"]].copy(),
        var=pd.DataFrame(index=train["rna"].var_names),
        obsm={"protein": train["prot"].to_df(layer="counts")},
    )
    sct.SCTRANSLATOR.setup_anndata(adata, protein_expression_obsm_key="protein", batch_key="batch")
    model = sct.SCTRANSLATOR(adata)
    model.train(max_epochs=epochs, accelerator="cpu", enable_progress_bar=False)
    model.save(path, overwrite=True)


def write_cells(path: Path, n_cells: int, seed: int = 0) -> None:
    """``n_cells`` PBMC RNA profiles resampled with replacement, sparse, written chunk by chunk."""
    rna = sct.datasets.pbmc_cite_mini()["rna"]
    counts = sp.csr_matrix(rna.layers["counts"], dtype=np.float32)
    counts = counts[np.flatnonzero(np.asarray(counts.sum(1)).ravel() > 0)]
    rng = np.random.default_rng(seed)
    skeleton = ad.AnnData(
        obs=pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(n_cells)])),
        var=pd.DataFrame(index=rna.var_names),
    )
    temporary = path.with_suffix(".partial")
    skeleton.write_h5ad(temporary)
    with h5py.File(temporary, "r+") as file:
        for start in range(0, n_cells, CHUNK):
            block = counts[rng.integers(0, counts.shape[0], min(CHUNK, n_cells - start))]
            if start == 0:
                ad.io.write_elem(file, "X", block)
            else:
                ad.io.sparse_dataset(file["X"]).append(block)
    os.replace(temporary, path)


def predict(model: Path, source: Path, output: Path, batch_size: int) -> dict:
    """Run ``sctranslator predict`` in a fresh process; its wall time, CPU time and peak RSS."""
    command = [
        sys.executable,
        "-m",
        "sctranslator",
        "predict",
        "--model",
        str(model),
        "--input",
        str(source),
        "--output",
        str(output),
        "--batch-size",
        str(batch_size),
        "--overwrite",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}.")
    return {
        "wall_s": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # ru_maxrss is in KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workdir", type=Path, default=Path("benchmark_prediction_memory"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = args.workdir / "model"
    train_model(model, args.epochs)
    rows = []
    for n_cells in args.cells:
        source = args.workdir / f"cells_{n_cells}.h5ad"
        output = args.workdir / f"pred_{n_cells}.h5ad"
        start = time.perf_counter()
        write_cells(source, n_cells)
        written_s = time.perf_counter() - start
        result = predict(model, source, output, args.batch_size)
        rows.append(
            {
                "cells": n_cells,
                "input_mib": round(source.stat().st_size / 2**20, 1),
                "write_input_s": round(written_s, 1),
                "predict_wall_s": round(result["wall_s"], 1),
                "predict_cpu_s": round(result["cpu_s"], 1),
                "cells_per_cpu_s": round(n_cells / result["cpu_s"]),
                "peak_rss_mib": round(result["peak_rss_mib"]),
                "output_mib": round(output.stat().st_size / 2**20, 1),
            }
        )
        print(pd.DataFrame(rows).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "prediction_memory.csv", index=False)
    (args.out / "prediction_memory.md").write_text(table.to_markdown(index=False) + "\n")


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
