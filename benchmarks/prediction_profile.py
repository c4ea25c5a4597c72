"""Where prediction time goes: sctranslator against totalVI's recipe and single pass.

Synthetic CITE-seq (``sct.datasets.synthetic_cite``), 20,000 cells x 2,000 genes x 50 proteins
by default. Both models train briefly (``--epochs``; sctranslator on ``--train-cells`` cells,
totalVI on all; speed does not depend on how well they are trained), then predict the
proteins of every cell from RNA, in one process with one torch thread: sctranslator's
``predict_protein``, and totalVI's ``get_normalized_expression`` with 25 posterior samples
(the imputation recipe of ``accuracy.py``) and with one (a single pass). Throughput is cells
per CPU-second, and each figure is a ratio to sctranslator in the same run. sctranslator's
prediction is then run again under ``cProfile``: the functions with the most own time show
how much is the model's arithmetic (attention, linear layers, the read-out) and how much is
around it (reading and densifying the counts, normalisation, choosing each cell's context,
Python loops).

    python benchmarks/prediction_profile.py --cells 20000 --genes 2000 --proteins 50
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import pstats
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from accuracy import MODALITIES

import sctranslator as sct
from sctranslator._mudata import no_pull


def _cpu_rate(n_cells: int, predict) -> float:
    start = time.process_time()
    predict()
    return n_cells / (time.process_time() - start)


def _profile(predict, top: int) -> pd.DataFrame:
    """Own (``tottime``) and cumulative CPU seconds of the ``top`` functions by own time."""
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(predict)
    stats = pstats.Stats(profiler).stats
    rows = [
        {
            "function": f"{Path(file).name}:{line}({name})",
            "own seconds": own,
            "cumulative seconds": cumulative,
            "calls": calls,
        }
        for (file, line, name), (_, calls, own, cumulative, _) in stats.items()
    ]
    table = pd.DataFrame(rows).sort_values("own seconds", ascending=False)
    table["own share"] = table["own seconds"] / table["own seconds"].sum()
    return table.head(top).round(4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--proteins", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-cells", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scvi.settings.seed = 0
    mdata = sct.datasets.synthetic_cite(
        n_cells=args.cells, n_genes=args.genes, n_proteins=args.proteins, seed=0
    )
    sct.SCTRANSLATOR.setup_mudata(
        mdata,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities=MODALITIES,
    )
    train = np.sort(np.random.default_rng(0).choice(args.cells, args.train_cells, False))
    rest = np.setdiff1d(np.arange(args.cells), train)  # a test set, never read
    split = {"datasplitter_kwargs": {"external_indexing": [train[:-100], train[-100:], rest]}}
    model = sct.SCTRANSLATOR(mdata)
    model.train(max_epochs=args.epochs, enable_progress_bar=False, **split)
    totalvi_data = mdata.copy()
    scvi.model.TOTALVI.setup_mudata(
        totalvi_data,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities=MODALITIES,
    )
    totalvi = scvi.model.TOTALVI(totalvi_data)
    totalvi.train(max_epochs=args.epochs, enable_progress_bar=False)  # fast: every cell
    torch.set_num_threads(1)  # scanpy and scikit-learn calls can reset it

    def predict() -> None:
        model.predict_protein(mdata["rna"], batch_size=512)

    def totalvi_predict(n_samples: int):
        def run() -> None:
            totalvi.get_normalized_expression(
                n_samples=n_samples,
                include_protein_background=True,
                sample_protein_mixing=False,
                return_mean=True,
                batch_size=512,
            )

        return run

    methods = {
        "sctranslator predict_protein": predict,
        "totalVI recipe (n_samples=25)": totalvi_predict(25),
        "totalVI single pass (n_samples=1)": totalvi_predict(1),
    }
    # Repetitions alternate between the methods, so a busy spell of the shared CPU falls on all.
    rates = pd.DataFrame(
        [
            {name: _cpu_rate(args.cells, run) for name, run in methods.items()}
            for _ in range(args.repeats)
        ]
    )
    ratios = rates.rdiv(rates["sctranslator predict_protein"], axis=0)
    speed = pd.DataFrame(
        {
            "cells per CPU-second": rates.mean().round(0),
            "sd": rates.std().fillna(0.0).round(0),
            "sctranslator / method": ratios.mean().round(2),
            "ratio sd": ratios.std().fillna(0.0).round(2),
        }
    )
    profile = _profile(predict, args.top)
    stamp = datetime.date.today().isoformat()
    setting = (
        f"Measured {stamp}: {args.cells:,} cells x {args.genes:,} genes x {args.proteins} "
        f"proteins, one torch thread, batch size 512, default architectures; mean and sd of "
        f"{args.repeats} alternating runs, each ratio taken within a repetition."
    )
    print(setting, speed.to_string(), profile.to_string(index=False), sep="\n\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prediction_profile.md").write_text(
        f"{setting}\n\n{speed.to_markdown()}\n\nsctranslator's prediction under cProfile, "
        f"the {args.top} functions with the most own CPU time:\n\n"
        f"{profile.to_markdown(index=False)}\n"
    )


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
