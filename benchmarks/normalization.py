"""Which RNA/protein normalisation gives the best held-out per-protein Pearson?

Trains SCTRANSLATOR on the paired PBMC batch p3_0 and predicts batch p4_0 from RNA alone, for
each combination of normalisations and for several context limits. Each scheme is scored on
its own protein scale (per-protein Pearson across cells), next to the average-profile control
and ridge on RNA PCA fitted on the same scale.

    python benchmarks/normalization.py [--max-epochs N] [--out results.csv]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import pandas as pd
import scvi
import torch

import sctranslator as sct
from sctranslator._baselines import average_profile, ridge_on_pca
from sctranslator._mudata import no_pull
from sctranslator.nn import PROTEIN_NORMALIZATIONS


def run(rna_norm: str, protein_norm: str, max_genes: int, max_epochs: int, train, test) -> dict:
    scvi.settings.seed = 0
    sct.SCTRANSLATOR.setup_mudata(
        train,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "prot"},
    )
    model = sct.SCTRANSLATOR(
        train, rna_normalization=rna_norm, protein_normalization=protein_norm, max_genes=max_genes
    )
    start = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    seconds = time.perf_counter() - start
    normalize = PROTEIN_NORMALIZATIONS[protein_norm]
    truth = pd.DataFrame(
        normalize(torch.tensor(test["prot"].layers["counts"])).numpy(),
        index=test.obs_names,
        columns=test["prot"].var_names,
    )
    train_truth = pd.DataFrame(
        normalize(torch.tensor(train["prot"].layers["counts"])).numpy(),
        index=train.obs_names,
        columns=train["prot"].var_names,
    )
    methods = {
        "sctranslator": model.predict_protein(test["rna"]),
        "average profile": average_profile(train_truth, test.obs_names),
        "ridge on PCA": ridge_on_pca(train["rna"], train_truth, test["rna"]),
    }
    rows = []
    for method, prediction in methods.items():
        scores = sct.metrics.evaluate(prediction, truth)
        rows.append(
            {
                "rna": rna_norm,
                "protein": protein_norm,
                "max_genes": max_genes,
                "method": method,
                "epochs": len(model.history["pearson_validation"]),
                "train_s": round(seconds, 1),
                **scores.round(3).to_dict(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--rna", nargs="+", default=["log1p_cp10k", "log1p", "minmax"])
    parser.add_argument("--protein", nargs="+", default=["clr", "log1p", "minmax"])
    parser.add_argument("--max-genes", nargs="+", type=int, default=[256])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    # A benchmark prints result tables: the dependency warnings of its many short trainings
    # (e.g. Lightning's logging-interval hint on small data) would bury them.
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    mdata = sct.datasets.pbmc_cite_mini()
    train = mdata[mdata.obs["batch"] == "p3_0"].copy()
    test = mdata[mdata.obs["batch"] == "p4_0"].copy()
    rows = []
    for rna_norm, protein_norm, max_genes in itertools.product(
        args.rna, args.protein, args.max_genes
    ):
        rows += run(rna_norm, protein_norm, max_genes, args.max_epochs, train, test)
        print(pd.DataFrame(rows[-3:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
