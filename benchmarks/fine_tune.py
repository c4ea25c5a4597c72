"""Zero-shot reference against fine-tuning on a few labelled cells of a new batch.

Leave-one-batch-out on the embedded PBMC CITE-seq cells: a reference trained with defaults on
one paired batch (seed 0), ``n_cells`` (20) cells of the other batch to adapt with, drawn three
times, and that batch's other cells to score (mean per-protein Pearson on the CLR scale).
Rows: the zero-shot reference; ``fine_tune`` with each freeze option; a model trained from
scratch on the same few cells; ridge on RNA PCA fitted to the same few cells.

    python benchmarks/fine_tune.py --directions p3_0:p4_0 p4_0:p3_0 --draws 0 1 2
    python benchmarks/fine_tune.py --summarize    # fine_tune.md from the CSVs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from accuracy import MODALITIES, _split, measured_clr, run_baseline

import sctranslator as sct
from sctranslator._mudata import no_pull

FREEZE = {"fine_tune (freeze encoder)": "encoder", "fine_tune (train all)": None}


def setup(mdata):
    sct.SCTRANSLATOR.setup_mudata(
        mdata, rna_layer="counts", protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    return mdata


def score(prediction: pd.DataFrame, truth: pd.DataFrame) -> float:
    return float(
        sct.metrics.evaluate(prediction.loc[truth.index, truth.columns], truth)[
            "protein_pearson_mean"
        ]
    )


def run_direction(
    source: str, target: str, draws: list[int], n_cells: int, threads: int = 1
) -> pd.DataFrame:
    mdata = sct.datasets.pbmc_cite_mini()
    reference_data, query = _split(
        mdata, mdata.obs["batch"] == source, mdata.obs["batch"] == target
    )
    scvi.settings.seed = 0
    reference = sct.SCTRANSLATOR(setup(reference_data.copy()))
    reference.train(enable_progress_bar=False)
    rows = []
    for draw in draws:
        chosen = np.random.default_rng(draw).choice(query.n_obs, n_cells, replace=False)
        held_out = np.setdiff1d(np.arange(query.n_obs), chosen)
        few, rest = query[chosen].copy(), query[held_out].copy()
        truth = measured_clr(rest)
        results = {"zero-shot reference": (reference.predict_protein(rest["rna"]), 0.0)}
        for name, freeze in FREEZE.items():
            torch.set_num_threads(threads)  # scikit-learn and scanpy calls can reset it
            scvi.settings.seed = draw
            start = time.process_time()
            tuned = reference.fine_tune(few.copy(), freeze=freeze, enable_progress_bar=False)
            results[name] = (tuned.predict_protein(rest["rna"]), time.process_time() - start)
        torch.set_num_threads(threads)
        scvi.settings.seed = draw
        start = time.process_time()
        scratch = sct.SCTRANSLATOR(setup(few.copy()))
        scratch.train(max_epochs=200, train_size=1.0, enable_progress_bar=False)
        results["scratch on the few cells"] = (
            scratch.predict_protein(rest["rna"]),
            time.process_time() - start,
        )
        results["ridge on the few cells"] = (run_baseline("ridge on RNA PCA", few, rest), 0.0)
        for method, (prediction, seconds) in results.items():
            rows.append(
                {
                    "direction": f"{source} -> {target}",
                    "draw": draw,
                    "method": method,
                    "protein_pearson_mean": score(prediction, truth),
                    "cpu_seconds": seconds,
                }
            )
        print(pd.DataFrame(rows).tail(len(results)).to_string(), flush=True)
    return pd.DataFrame(rows)


def summarize(folder: Path) -> pd.DataFrame:
    """Mean ± sd over draws of every ``fine_tune_*.csv`` in ``folder``, written to fine_tune.md."""
    runs = pd.concat([pd.read_csv(path) for path in sorted(folder.glob("fine_tune_*.csv"))])
    grouped = runs.groupby(["direction", "method"], sort=False)
    table = grouped["protein_pearson_mean"].agg(["mean", "std", "count"]).round(4)
    table["cpu_seconds"] = grouped["cpu_seconds"].mean().round(1)
    table = table.rename(columns={"count": "draws"})
    (folder / "fine_tune.md").write_text(table.to_markdown() + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--directions", nargs="+", default=["p3_0:p4_0", "p4_0:p3_0"])
    parser.add_argument("--draws", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-cells", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--summarize", action="store_true", help="only summarise the CSVs")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.out).to_string())
        return
    torch.set_num_threads(args.threads)
    table = pd.concat(
        [
            run_direction(*d.split(":"), args.draws, args.n_cells, args.threads)
            for d in args.directions
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "_".join(d.replace(":", "-") for d in args.directions)
    table.round(4).to_csv(args.out / f"fine_tune_{tag}.csv", index=False)
    print(summarize(args.out).to_string())


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
