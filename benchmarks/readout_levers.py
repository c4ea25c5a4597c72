"""Read-out levers on the model's own latent space, against the defaults (issue 16).

For each task and seed, one model is trained with the defaults (as in ``accuracy.py``); then
every read-out below is fitted on the reference cells only and scored on the query cells
(mean per-protein Pearson, CLR scale):

  sctranslator, ... without reference mapping, kNN / kernel ridge on sctranslator latent
                                the read-outs of accuracy.py (``latent_readouts``); the kernel
                                ridge is RBF (5-fold CV) on the cell token z
  kernel ridge on sctranslator latent, centred targets
                                the same, proteins centred before the fit (an intercept)
  kernel ridge on standardised sctranslator latent
                                on z scaled to unit variance per dimension (centred targets)
  kernel ridge on all context tokens
                                on the cell token and the latent tokens, concatenated
  kernel ridge on sctranslator latent, query aligned
                                the query's z shifted to the reference's mean (transductive)
  network + kernel ridge on sctranslator latent (1:1)
                                an ensemble of the two read-outs at no extra encoding cost

Choose on ``tuning``; the other tasks report. Writes ``readout_levers_runs.csv`` and
``readout_levers.md`` (mean ± sd over seeds).

    python benchmarks/readout_levers.py --tasks tuning pbmc pbmc_reverse --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from accuracy import (
    full_transcriptome_task,
    latent_readouts,
    measured_clr,
    pbmc_task,
    summarize,
    train_sctranslator,
    tuning_task,
)

import sctranslator as sct
from sctranslator._baselines import RBFKernelRidgeCV
from sctranslator._mudata import no_pull

TASKS = {
    "tuning": tuning_task,
    "pbmc": pbmc_task,
    "pbmc_reverse": lambda: pbmc_task(source="p4_0", target="p3_0"),
    "full_transcriptome": lambda: full_transcriptome_task(1500),
}


@torch.no_grad()
def context_tokens(model: sct.SCTRANSLATOR, adata) -> np.ndarray:
    """The encoded cell token and latents of every cell, ``(cells, 1 + n_latents, n_hidden)``."""
    encoded = model._encode(model._query(adata, None), batch_size=512)
    return torch.cat([block["context"] for block in encoded]).cpu().numpy()


def centred_kernel_ridge(reference: np.ndarray, targets: np.ndarray, query: np.ndarray):
    """RBF kernel ridge (5-fold CV) fitted to the targets minus their mean, which is added back."""
    offset = targets.mean(0)
    return RBFKernelRidgeCV().fit(reference, targets - offset).predict(query) + offset


def readouts(model: sct.SCTRANSLATOR, query) -> dict[str, pd.DataFrame]:
    """Every read-out's prediction of the query cells (CLR scale)."""
    proteins = measured_clr(model.adata)
    measured = proteins.notna().all(axis=1).to_numpy()
    targets = proteins.to_numpy()[measured]
    reference_tokens = context_tokens(model, None)[measured]
    query_tokens = context_tokens(model, query["rna"])
    z, query_z = reference_tokens[:, 0], query_tokens[:, 0]
    scale = z.std(0) + 1e-6
    predictions = latent_readouts(model, query)
    network = predictions["sctranslator without reference mapping"][proteins.columns]
    on_z = predictions["kernel ridge on sctranslator latent"]
    levers = {
        "kernel ridge on sctranslator latent, centred targets": centred_kernel_ridge(
            z, targets, query_z
        ),
        "kernel ridge on standardised sctranslator latent": centred_kernel_ridge(
            z / scale, targets, query_z / scale
        ),
        "kernel ridge on all context tokens": centred_kernel_ridge(
            reference_tokens.reshape(len(z), -1), targets, query_tokens.reshape(len(query_z), -1)
        ),
        "kernel ridge on sctranslator latent, query aligned": centred_kernel_ridge(
            z, targets, query_z + z.mean(0) - query_z.mean(0)
        ),
    }
    predictions |= {
        method: pd.DataFrame(values, index=query.obs_names, columns=proteins.columns)
        for method, values in levers.items()
    }
    predictions["network + kernel ridge on sctranslator latent (1:1)"] = (network + on_z) / 2
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=["tuning", "pbmc", "pbmc_reverse"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        reference, query = TASKS[task]()
        truth = measured_clr(query)
        for seed in args.seeds:
            torch.set_num_threads(args.threads)
            scvi.settings.seed = seed
            model = train_sctranslator(reference)
            for method, prediction in readouts(model, query).items():
                scores = sct.metrics.evaluate(prediction.loc[truth.index, truth.columns], truth)
                rows.append({"task": task, "method": method, "seed": seed, **scores.to_dict()})
            print(f"  {task}: seed {seed} done", flush=True)
    runs = pd.DataFrame(rows)
    table = summarize(runs)
    stamp = datetime.date.today().isoformat()
    print(table.to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.round(4).to_csv(out / "readout_levers_runs.csv", index=False)
    (out / "readout_levers.md").write_text(
        f"Measured {stamp}; tuning split: `tuning` (choose there only), one model per seed.\n\n"
        + table.to_markdown()
        + "\n"
    )


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
