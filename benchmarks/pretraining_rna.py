"""Pre-training on unlabelled RNA: does a corpus of RNA-only cells help with few paired cells?

For each seed, ``n`` paired cells of PBMC batch p3_0 (nested draws: the 50 are among the 100,
the 100 among the 400) train three predictors, scored on batch p4_0 (mean per-protein Pearson
on the CLR scale), with every gene and with a random half of the genes (the query's panel; the
same half for every method, drawn with the seed):

- RBF kernel ridge on RNA PCA (cross-validated), fitted to the ``n`` cells (for the half
  panel, to the ``n`` cells restricted to those genes);
- ``sctranslator`` trained with its defaults on the ``n`` cells (no pre-training);
- ``sctranslator pre-trained``: stage 1 trains one model per seed on the RNA-only corpus
  (blood studies of ``../shared/data/rna_corpus``, restricted to the 500 PBMC genes, plus the
  RNA-only batch p1_0) together with the 50 paired cells, with the masked-gene objective
  (``plan_kwargs={"masked_genes": ...}``); stage 2 is ``load_query_data`` on the ``n`` cells
  (the 50 included) and the default training.

Also reports the CPU seconds of stage 1 per 1,000 cells and epoch. Build the corpus once with
``bash ../shared/data/rna_corpus/build.sh ~/.cache/sctranslator/rna_corpus .venv/bin/python``.

    python benchmarks/pretraining_rna.py --corpus ~/.cache/sctranslator/rna_corpus --seeds 0 1 2
    python benchmarks/pretraining_rna.py --summarize  # pretraining_rna.md from every runs CSV
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scvi
import torch
from fine_tune import score
from mudata import MuData

import sctranslator as sct
from sctranslator._baselines import kernel_ridge_on_pca
from sctranslator._mudata import no_pull, shared_var_names

RESULTS = Path(__file__).parent / "results"
BLOOD = ("tenx_pbmc_4k", "tenx_pbmc_3k", "tenx_t_4k_small", "bone_marrow_cd34")
SIZES = (50, 100, 400)
SETUP = {
    "rna_layer": None,
    "protein_layer": None,
    "batch_key": "dataset",
    "modalities": {"rna_layer": "rna", "protein_layer": "prot"},
}


def paired_cells(mdata: MuData, batch: str) -> MuData:
    """The paired cells of ``batch`` with counts in ``X`` and ``obs["dataset"]``."""
    with no_pull(), shared_var_names(mdata.mod.values()):
        cells = mdata[mdata.obs["batch"] == batch].copy()
    for modality in cells.mod.values():
        modality.X = modality.layers.pop("counts")
    cells.obs["dataset"] = "paired"
    return cells


def corpus(folder: Path, genes: pd.Index, pbmc: MuData, max_cells: int | None) -> MuData:
    """RNA-only cells of the blood studies and of p1_0, on the PBMC genes (NaN where unread)."""
    parts = {}
    for name in BLOOD:
        rna = ad.read_h5ad(folder / f"{name}.h5ad")
        rna = rna[:, rna.var_names.intersection(genes)]
        rna = rna[np.asarray(rna.X.sum(1)).ravel() > 0].copy()  # cells with counts on the panel
        parts[name] = MuData({"rna": rna})
    rna_only = pbmc["rna"][pbmc.obs["batch"] == "p1_0"].copy()
    rna_only.X = rna_only.layers.pop("counts")
    parts["p1_0"] = MuData({"rna": rna_only})
    with no_pull():
        merged = sct.pp.concat_panels(parts, label="dataset")
    if max_cells is not None and merged.n_obs > max_cells:
        keep = np.sort(np.random.default_rng(0).choice(merged.n_obs, max_cells, replace=False))
        merged = merged[keep].copy()
    return merged


def train_default(cells: MuData, seed: int) -> sct.SCTRANSLATOR:
    scvi.settings.seed = seed
    model = sct.SCTRANSLATOR(setup(cells.copy()))
    model.train(enable_progress_bar=False)
    return model


def setup(mdata: MuData) -> MuData:
    sct.SCTRANSLATOR.setup_mudata(mdata, **SETUP)
    return mdata


def pretrain(
    rna_only: MuData, few: MuData, seed: int, epochs: int, masked: int
) -> tuple[sct.SCTRANSLATOR, float]:
    """Stage 1: the corpus and ``few`` paired cells together, with the masked-gene objective."""
    with no_pull():
        mosaic = sct.pp.concat_panels({"corpus": rna_only, "paired": few}, label="source")
    mosaic.obs["dataset"] = np.concatenate(
        [rna_only.obs["dataset"].astype(str), np.full(few.n_obs, "paired")]
    )
    scvi.settings.seed = seed
    model = sct.SCTRANSLATOR(setup(mosaic))
    start = time.process_time()
    model.train(
        max_epochs=epochs,
        plan_kwargs={"masked_genes": masked},
        early_stopping=False,
        enable_progress_bar=False,
    )
    per_thousand = (time.process_time() - start) / epochs / (mosaic.n_obs / 1000)
    return model, per_thousand


def run_seed(args, pbmc: MuData, rna_only: MuData, seed: int) -> list[dict]:
    train, query = paired_cells(pbmc, "p3_0"), paired_cells(pbmc, "p4_0")
    truth = measured_clr_x(query)
    order = np.random.default_rng(seed).permutation(train.n_obs)
    half = np.sort(np.random.default_rng(seed).permutation(query["rna"].n_vars)[:250])
    query_half = query["rna"][:, half].copy()
    torch.set_num_threads(args.threads)
    pretrained, cost = pretrain(
        rna_only, train[np.sort(order[:50])].copy(), seed, args.epochs, args.masked_genes
    )
    rows = []
    for n in SIZES:
        few = train[np.sort(order[:n])].copy()
        proteins = measured_clr_x(few)
        models = {"sctranslator": train_default(few, seed)}
        scvi.settings.seed = seed
        tuned = sct.SCTRANSLATOR.load_query_data(setup(few.copy()), pretrained)
        tuned.train(enable_progress_bar=False)
        models["sctranslator pre-trained"] = tuned
        for panel, rna in (("all genes", query["rna"]), ("half of the genes", query_half)):
            predictions = {name: m.predict_protein(rna) for name, m in models.items()}
            predictions["kernel ridge on RNA PCA"] = kernel_ridge_on_pca(
                few["rna"][:, rna.var_names].copy(), proteins, rna
            )
            torch.set_num_threads(args.threads)  # scikit-learn can reset it
            for method, prediction in predictions.items():
                rows.append(
                    {
                        "seed": seed,
                        "paired_cells": n,
                        "query_panel": panel,
                        "method": method,
                        "protein_pearson_mean": score(prediction, truth),
                    }
                )
        print(pd.DataFrame(rows).tail(6).to_string(), flush=True)
    for row in rows:
        row["pretraining_cpu_s_per_1000_cells_epoch"] = cost
    return rows


def measured_clr_x(mdata: MuData) -> pd.DataFrame:
    """CLR of the protein counts in ``X``."""
    return sct.pp.normalize_protein(mdata["prot"])


def summarize(runs: pd.DataFrame) -> str:
    grouped = runs.groupby(["query_panel", "paired_cells", "method"], sort=False)
    table = grouped["protein_pearson_mean"].agg(["mean", "std", "count"])
    table = table.rename(columns={"count": "seeds"}).round(4)
    cost = runs["pretraining_cpu_s_per_1000_cells_epoch"]
    return (
        table.to_markdown()
        + f"\n\nStage 1 (pre-training) cost: {cost.mean():.1f} ± {cost.std():.1f} CPU seconds "
        "per 1,000 cells and epoch (one torch thread).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--summarize", action="store_true", help="only summarise the CSVs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--masked-genes", type=int, default=64)
    parser.add_argument("--max-corpus-cells", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="", help="runs CSV suffix, e.g. _s0 for one seed")
    args = parser.parse_args()
    if args.summarize:
        runs = pd.concat(
            [pd.read_csv(path) for path in sorted(RESULTS.glob("pretraining_rna_runs_*.csv"))]
        )
        text = summarize(runs)
        (RESULTS / "pretraining_rna.md").write_text(text)
        print(text)
        return
    if args.corpus is None:
        parser.error("--corpus is required (build it with ../shared/data/rna_corpus/build.sh)")
    torch.set_num_threads(args.threads)
    pbmc = sct.datasets.pbmc_cite_mini()
    rna_only = corpus(args.corpus, pd.Index(pbmc["rna"].var_names), pbmc, args.max_corpus_cells)
    print(f"corpus: {rna_only.n_obs} RNA-only cells", flush=True)
    rows = [row for seed in args.seeds for row in run_seed(args, pbmc, rna_only, seed)]
    runs = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"pretraining_rna_runs{args.tag}.csv", index=False)
    text = summarize(runs)
    (RESULTS / f"pretraining_rna{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    with no_pull():
        main()
