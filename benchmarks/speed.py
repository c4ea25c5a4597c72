"""Training and prediction throughput and peak memory: sctranslator against totalVI.

Each (method, cell count) runs in a fresh subprocess on synthetic CITE-seq data
(``sct.datasets.synthetic_cite``; 1,000 genes, 200 proteins by default), so peak memory is
that process's own. Training: ``--epochs`` epochs with a 90/10 split and batch size 128 for
both methods on at most ``--train-cells`` cells (a random subset), reported as training cells
per second of wall time and of CPU time (CPU time is stable when other processes share the
cores). Prediction: proteins of every cell from RNA
(totalVI: ``get_normalized_expression`` with 25 posterior samples, the imputation used in
``accuracy.py``, called on blocks of 10,000 cells to bound its memory), cells per second and
the rise of peak resident memory over the process's peak before prediction. Each figure is
also given as a ratio to totalVI in the same run.

    python benchmarks/speed.py --cells 2000 10000 100000 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

METHODS = ("sctranslator", "totalVI")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def worker(
    method: str,
    n_cells: int,
    n_genes: int,
    n_proteins: int,
    epochs: int,
    threads: int,
    train_cells: int,
) -> dict:
    """Train and predict once; return the measurements."""
    import numpy as np
    import scvi
    import torch

    import sctranslator as sct
    from sctranslator._mudata import no_pull

    torch.set_num_threads(threads)
    scvi.settings.seed = 0
    mdata = sct.datasets.synthetic_cite(
        n_cells=n_cells, n_genes=n_genes, n_proteins=n_proteins, seed=0
    )
    mdata.obs["batch"] = mdata.obs["batch"].astype(str).astype("category")
    rows = np.sort(
        np.random.default_rng(0).choice(n_cells, min(train_cells, n_cells), replace=False)
    )
    with no_pull():  # as sctranslator builds its own MuData objects
        train = mdata[rows].copy()
    modalities = {"rna_layer": "rna", "protein_layer": "prot"}
    cls = sct.SCTRANSLATOR if method == "sctranslator" else scvi.model.TOTALVI
    for data in (train, mdata):
        cls.setup_mudata(
            data,
            rna_layer="counts",
            protein_layer="counts",
            batch_key="batch",
            modalities=modalities,
        )
    model = cls(train)
    train_kwargs = {"early_stopping": False}
    if method == "totalVI":
        train_kwargs["check_val_every_n_epoch"] = 1
    torch.set_num_threads(threads)
    start = _clock()
    model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False, **train_kwargs)
    train_wall, train_cpu = _since(start)
    n_train = len(model.train_indices)

    before = _peak_mib()
    start = _clock()
    if method == "sctranslator":
        prediction = model.predict_protein(mdata["rna"], batch_size=512)
    else:
        # In blocks of 10,000 cells: one call keeps every posterior sample of every cell.
        prediction = np.concatenate(
            [
                np.asarray(
                    model.get_normalized_expression(
                        mdata,
                        indices=np.arange(start, min(start + 10_000, n_cells)),
                        n_samples=25,
                        include_protein_background=True,
                        sample_protein_mixing=False,
                        return_mean=True,
                        batch_size=512,
                    )[1]
                )
                for start in range(0, n_cells, 10_000)
            ]
        )
    predict_wall, predict_cpu = _since(start)
    assert np.isfinite(np.asarray(prediction)).all()
    return {
        "method": method,
        "cells": n_cells,
        "train cells/s (wall)": n_train * epochs / train_wall,
        "train cells/s (CPU)": n_train * epochs / train_cpu,
        "predict cells/s (wall)": n_cells / predict_wall,
        "predict cells/s (CPU)": n_cells / predict_cpu,
        "predict peak rise (MiB)": max(_peak_mib() - before, 0.0),
        "peak RSS (MiB)": _peak_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--proteins", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-cells", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "CELLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, n_cells = args.worker
        result = worker(
            method,
            int(n_cells),
            args.genes,
            args.proteins,
            args.epochs,
            args.threads,
            args.train_cells,
        )
        print("RESULT " + json.dumps(result))
        return

    rows = []
    for n_cells in args.cells:
        for method in METHODS:
            command = [
                sys.executable,
                __file__,
                "--worker",
                method,
                str(n_cells),
                "--genes",
                str(args.genes),
                "--proteins",
                str(args.proteins),
                "--epochs",
                str(args.epochs),
                "--threads",
                str(args.threads),
                "--train-cells",
                str(args.train_cells),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(output.split("RESULT ", 1)[1]))
            print(f"  {method} at {n_cells} cells: {rows[-1]}", flush=True)
    table = pd.DataFrame(rows).set_index(["cells", "method"])
    ratios = table.xs("sctranslator", level="method") / table.xs("totalVI", level="method")
    ratios.columns = [f"{c} ratio" for c in ratios.columns]
    stamp = datetime.date.today().isoformat()
    print(
        f"\nThroughput and memory, {stamp}, synthetic data with {args.genes} genes and "
        f"{args.proteins} proteins, torch threads = {args.threads}"
    )
    print(table.round(1).to_string())
    print(
        "\nsctranslator / totalVI (same run; > 1 means sctranslator is faster or uses more memory)"
    )
    print(ratios.round(2).to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.round(2).to_csv(out / "speed.csv")
    (out / "speed.md").write_text(
        table.round(1).to_markdown() + "\n\n" + ratios.round(2).to_markdown() + "\n"
    )


if __name__ == "__main__":
    main()
