"""Calibrated prediction intervals: coverage, width, adaptivity, novelty and cost.

For each task (reference -> query, the query's proteins hidden from the model) and seed,
trains sctranslator with its defaults on the reference (its validation cells calibrate the
intervals), then predicts the query with ``predict_protein_interval`` and scores, on the CLR
scale of ``sct.pp.normalize_protein``, over the measured (cell, protein) pairs of the query:

- coverage at levels 0.5, 0.8, 0.9 and 0.95 (the fraction of measured values inside);
- the median interval width at 0.9 (CLR units) and the Spearman correlation of width with the
  absolute error (adaptivity; the same at every level, widths only scale);
- the fraction of proteins covered less than 0.8 at level 0.9;
- the Spearman correlation over proteins of ``protein_reliability`` (validation Pearson) with
  the real per-protein Pearson on the query;
- novelty (``get_novelty``): the median of the query cells (1 is a typical validation cell, by
  construction), the fraction above the validation cells' 90th percentile (about 0.1 for cells
  like them; the novelty warning fires above 0.5) and the fitted power of novelty that widths
  grow with (``calibration.novelty_power``);
- the CPU time of prediction with intervals over prediction alone, in the same process.

Tasks: ``pbmc`` (train PBMC batch p3_0, predict p4_0), ``pbmc_reverse`` (p4_0 -> p3_0) and
``synthetic`` (``sct.datasets.synthetic_cite(shift=True)``: a query batch with another batch
effect and a shifted cell-type composition), from ``benchmarks/accuracy.py``. Writes every run
to ``intervals_runs.csv``, mean ± sd over seeds to ``intervals.csv`` and ``intervals.md``.

Training uses the model's defaults (early stopping on the validation cells) up to
``--max-epochs`` (the default rule when not given; the recorded run used 60 to fit a shared
2-core machine).

    python benchmarks/intervals.py --tasks pbmc pbmc_reverse synthetic --seeds 0 1 2 \
        --synthetic-cells 1000 --max-epochs 60 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from accuracy import MODALITIES, measured_clr, pbmc_task, synthetic_task
from mudata import MuData
from scipy.stats import spearmanr

import sctranslator as sct
from sctranslator._mudata import no_pull

LEVELS = (0.5, 0.8, 0.9, 0.95)


def train_model(reference: MuData, max_epochs: int | None) -> sct.SCTRANSLATOR:
    reference = reference.copy()
    sct.SCTRANSLATOR.setup_mudata(
        reference, rna_layer="counts", protein_layer="counts", batch_key="batch",
        modalities=MODALITIES,
    )  # fmt: skip
    model = sct.SCTRANSLATOR(reference)
    model.train(max_epochs=max_epochs, enable_progress_bar=False)
    return model


def cpu_seconds(function, repeats: int = 3) -> float:
    """Smallest CPU time of ``repeats`` calls of ``function``."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return min(times)


def score(model: sct.SCTRANSLATOR, query: MuData, truth: pd.DataFrame) -> dict[str, float]:
    rna = query["rna"]
    measured = truth.to_numpy()
    observed = ~np.isnan(measured)
    row: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for level in LEVELS:
            prediction, lower, upper = model.predict_protein_interval(
                rna, level=level, proteins=list(truth.columns), return_prediction=True
            )
            inside = (measured >= lower.to_numpy()) & (measured <= upper.to_numpy())
            row[f"coverage_{level}"] = float(inside[observed].mean())
            if level == 0.9:
                width = (upper - lower).to_numpy()
                error = np.abs(measured - prediction.to_numpy())
                row["median_width_0.9"] = float(np.median(width[observed]))
                row["spearman_width_error"] = float(spearmanr(width[observed], error[observed])[0])
                per_protein = np.nanmean(np.where(observed, inside, np.nan), axis=0)
                per_protein = per_protein[np.isfinite(per_protein)]
                row["proteins_covered_below_0.8"] = float(np.mean(per_protein < 0.8))
    warned = any("farther from the training" in str(w.message) for w in caught)
    row["novelty_warning"] = float(warned)
    pearson = pd.Series(sct.metrics.per_protein_pearson(prediction, truth), index=truth.columns)
    reliability = model.protein_reliability.reindex(truth.columns)
    both = pearson.notna() & reliability.notna()
    row["spearman_reliability_pearson"] = float(spearmanr(reliability[both], pearson[both])[0])
    novelty = model.get_novelty(rna).to_numpy()
    reference = model.calibration.novelty_reference.cpu().numpy()
    row["median_novelty_query"] = float(np.median(novelty))
    row["fraction_novel"] = float(np.mean(novelty > np.quantile(reference, 0.9)))
    row["novelty_power"] = float(model.calibration.novelty_power)
    plain = cpu_seconds(lambda: model.predict_protein(rna))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_intervals = cpu_seconds(
            lambda: model.predict_protein_interval(rna, return_prediction=True)
        )
    row["time_ratio"] = with_intervals / plain
    return row


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of every score, one row per task."""
    scores = [c for c in runs.columns if c not in ("task", "seed")]
    scores.sort(key=lambda c: not c.startswith("coverage"))  # coverage first, order kept
    grouped = runs.groupby("task", sort=False)[scores]
    mean, sd = grouped.mean(), grouped.std().fillna(0.0)
    table = mean.round(3).astype(str) + " ± " + sd.round(3).astype(str)
    table.insert(0, "seeds", grouped.size())
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=["pbmc", "pbmc_reverse", "synthetic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--synthetic-cells", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the model's")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    tasks = {
        "pbmc": lambda: pbmc_task(),
        "pbmc_reverse": lambda: pbmc_task(source="p4_0", target="p3_0"),
        "synthetic": lambda: synthetic_task(args.synthetic_cells),
    }
    rows = []
    for name in args.tasks:
        reference, query = tasks[name]()
        truth = measured_clr(query)
        for seed in args.seeds:
            torch.set_num_threads(args.threads)  # scanpy/sklearn calls can reset it
            scvi.settings.seed = seed
            model = train_model(reference, args.max_epochs)
            rows.append({"task": name, "seed": seed, **score(model, query, truth)})
            print(f"{name} (seed {seed}): {rows[-1]}", flush=True)
    runs = pd.DataFrame(rows)
    table = summarize(runs)
    stamp = datetime.date.today().isoformat()
    print(f"\nIntervals on the query cells (CLR scale), {stamp}, torch threads = {args.threads}")
    print(table.T.to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.round(4).to_csv(out / "intervals_runs.csv", index=False)
    table.to_csv(out / "intervals.csv")
    (out / "intervals.md").write_text(
        f"Measured {stamp} (`--tasks {' '.join(args.tasks)} --seeds "
        f"{' '.join(map(str, args.seeds))} --synthetic-cells {args.synthetic_cells} --threads "
        f"{args.threads} --max-epochs {args.max_epochs}`), mean ± sd over seeds; one column "
        "per task.\n\n" + table.T.to_markdown() + "\n"
    )


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
