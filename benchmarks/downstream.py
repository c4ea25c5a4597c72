"""Downstream analyses with translated proteins: cell-origin classification, clustering, batch
mixing and gene-protein interactions, each with and without the proteins, over three seeds.

PBMC CITE-seq (``sct.datasets.pbmc_cite_mini``): for each seed, one model is trained on the
paired batch p3_0 and translates the proteins of every cell from RNA.

- Classification (``sct.tl.classify``): cell types of p3_0 are the labels; the cell types of
  the hidden batches p1_0 (RNA only) and p4_0 are predicted and scored (balanced accuracy,
  macro-F1) with RNA, translated protein or both. Reference: measured proteins (p3_0 -> p4_0).
- Clustering (``sct.tl.cluster``) of the held-out cells (p1_0 + p4_0) against cell types:
  ARI and NMI, mean over Leiden resolutions 0.5 and 1.0 (Leiden seed = the seed).
- Batch mixing and cell-type separation of the model's embeddings (``sct.tl.embed``) against
  the RNA PCA, all three batches.
- Rank of each protein's own gene in ``sct.tl.interactions`` (p4_0).

CPTAC endometrial carcinoma bulk (``sct.datasets.cptac_ucec_bulk``; 256 most variable genes,
200 most variable proteins measured in every sample): five-fold cross-validation stratified
by tissue; in each fold a translator is trained on the training samples only (RNA and their
measured proteome), translates the proteins of all samples from RNA, and ``sct.tl.classify``
learns the training samples' labels and predicts the held-out ones. Two tasks: tumour against
adjacent normal (115 samples), serous against endometrioid tumours (99). Reference: the
measured proteome.

Every number is the mean ± sd over the seeds (for PBMC, the model and Leiden seed; for CPTAC,
the folds and the translator). Writes ``benchmarks/results/classify_pbmc.csv``,
``classify_cptac.csv`` and ``downstream.csv`` (one row per seed), then ``classify.md`` and
``downstream.md`` from them (``--parts`` runs one part; ``--parts`` with nothing after it
only rewrites the reports).

    OMP_NUM_THREADS=1 python benchmarks/downstream.py [--parts pbmc cptac] [--seeds 0 1 2]
        [--epochs 60] [--bulk-epochs 60] [--bulk-genes 256]
        [--cptac ../shared/data/cptac_ucec_bulk]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
import torch
from anndata import AnnData
from mudata import MuData
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

import sctranslator as sct
from sctranslator._mudata import no_pull

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).resolve().parent / "results"
CPTAC = Path(__file__).resolve().parents[2] / "shared" / "data" / "cptac_ucec_bulk"
MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
QUIET = {"enable_progress_bar": False}


def scores(truth, predicted) -> dict:
    """Balanced accuracy and macro-F1 over the classes of ``truth``."""
    truth, predicted = np.asarray(truth, str), np.asarray(predicted, str)
    labels = np.unique(truth)
    return {
        "balanced_accuracy": balanced_accuracy_score(truth, predicted),
        "macro_f1": f1_score(truth, predicted, labels=labels, average="macro", zero_division=0),
    }


def mean_sd(long: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """``mean ± sd`` over seeds of each metric, one row per ``by`` group (order kept)."""
    grouped = long.groupby(by, sort=False)[metrics]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    table = mean.map(lambda v: f"{v:.3f}") + " ± " + sd.map(lambda v: f"{v:.3f}")
    return table.reset_index()


# ------------------------------------------------------------------------------- PBMC
def train_pbmc(pbmc: MuData, seed: int, args) -> sct.SCTRANSLATOR:
    scvi.settings.seed = seed
    train = pbmc[pbmc.obs["batch"] == "p3_0"].copy()
    sct.SCTRANSLATOR.setup_mudata(
        train, rna_layer=None, protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    model = sct.SCTRANSLATOR(train, n_hidden=args.n_hidden, max_genes=args.max_genes)
    model.train(max_epochs=args.epochs, plan_kwargs={"lr": args.lr}, **QUIET)
    return model


def pbmc_classification(pbmc: MuData, seed: int) -> list[dict]:
    """Hidden-batch scores: p3_0 labelled, p1_0 and p4_0 predicted."""
    mdata = pbmc.copy()
    mdata.obs["known"] = mdata.obs["celltype"].where(mdata.obs["batch"] == "p3_0")
    rows = []
    runs = {
        "RNA only": {"protein": None},
        "translated protein only": {"rna": None},
        "RNA + translated protein": {},
    }
    for name, kwargs in runs.items():
        out = sct.tl.classify(mdata, label_key="known", random_state=seed, copy=True, **kwargs)
        for hidden in ("p1_0", "p4_0"):
            cells = (out.obs["batch"] == hidden).to_numpy()
            s = scores(out.obs["celltype"][cells], out.obs["sct_classify"][cells])
            rows.append({"features": name, "hidden batch": hidden, **s})
    # reference: measured proteins, on the paired batches only (p3_0 -> p4_0)
    paired = mdata[mdata.obs["batch"].isin(["p3_0", "p4_0"])].copy()
    measured = sct.pp.normalize_protein(paired["prot"], method="clr", layer="counts")
    paired.mod["prot_clr"] = AnnData(measured.to_numpy(np.float32), obs=paired["prot"].obs[[]])
    with mudata.set_options(pull_on_update=False):
        paired.update()
    for name, kwargs in {
        "measured protein only (reference)": {"rna": None},
        "RNA + measured protein (reference)": {},
    }.items():
        out = sct.tl.classify(
            paired, label_key="known", protein="prot_clr", random_state=seed, copy=True, **kwargs
        )
        cells = (out.obs["batch"] == "p4_0").to_numpy()
        s = scores(out.obs["celltype"][cells], out.obs["sct_classify"][cells])
        rows.append({"features": name, "hidden batch": "p4_0", **s})
    return rows


def pbmc_clustering(pbmc: MuData, seed: int, resolutions=(0.5, 1.0)) -> list[dict]:
    query = pbmc[pbmc.obs["batch"].isin(["p1_0", "p4_0"])].copy()
    paired = query[query.obs["batch"] == "p4_0"].copy()
    measured = sct.pp.normalize_protein(paired["prot"], method="clr", layer="counts")
    paired.mod["prot_clr"] = AnnData(measured.to_numpy(np.float32), obs=paired["prot"].obs[[]])
    with mudata.set_options(pull_on_update=False):
        paired.update()
    runs = [
        ("p1_0 + p4_0", query, "RNA only", {"protein": None}),
        ("p1_0 + p4_0", query, "translated protein only", {"rna": None}),
        ("p1_0 + p4_0", query, "RNA + translated protein", {}),
        ("p4_0", paired, "RNA only", {"protein": None}),
        ("p4_0", paired, "RNA + translated protein", {}),
        (
            "p4_0",
            paired,
            "measured protein only (reference)",
            {"rna": None, "protein": "prot_clr"},
        ),
        ("p4_0", paired, "RNA + measured protein (reference)", {"protein": "prot_clr"}),
    ]
    rows = []
    for cells, mdata, name, kwargs in runs:
        per_resolution = []
        for resolution in resolutions:
            out = sct.tl.cluster(
                mdata, resolution=resolution, random_state=seed, copy=True, **kwargs
            )
            s = sct.metrics.clustering_agreement(out.obs["sct_leiden"], out.obs["celltype"])
            s["n_clusters"] = out.obs["sct_leiden"].nunique()
            per_resolution.append(s)
        rows.append({"cells": cells, "features": name, **pd.DataFrame(per_resolution).mean()})
    return rows


def pbmc_batch_mixing(pbmc: MuData, model, seed: int) -> list[dict]:
    mdata = pbmc.copy()
    rna = mdata["rna"].copy()
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    embeddings = {"RNA PCA (uncorrected)": sc.pp.pca(rna.X, n_comps=30, random_state=seed)}
    for representation in ("latent", "protein"):
        sct.tl.embed(mdata, model, representation=representation, random_state=seed)
        embeddings[f"sctranslator {representation}"] = mdata.obsm[f"X_sct_{representation}"]
    batch, labels = mdata.obs["batch"], mdata.obs["celltype"]
    return [
        {"embedding": name, **sct.metrics.integration_scores(x, batch, labels)}
        for name, x in embeddings.items()
    ]


def pbmc_interactions(pbmc: MuData, model) -> list[dict]:
    cells = pbmc[pbmc.obs["batch"] == "p4_0"].copy()
    own = {p: t for p, t in cells["prot_pred"].var["token"].items() if t in cells["rna"].var_names}
    rows = []
    for method in ("gradient", "attention"):
        table = sct.tl.interactions(
            cells, model, proteins=list(own), method=method, key_added=None
        )
        ranks = pd.Series({p: int((table[p] > table.loc[g, p]).sum()) + 1 for p, g in own.items()})
        rows.append(
            {
                "method": method,
                "pairs": len(ranks),
                "median rank": ranks.median(),
                "mean percentile": (ranks / len(table)).mean(),
                "top 5% (of pairs)": (ranks <= 0.05 * len(table)).mean(),
            }
        )
    return rows


# ------------------------------------------------------------------------------ CPTAC
def load_cptac(path, n_genes: int = 256) -> MuData:
    """CPTAC-UCEC with the most variable genes and 200 most variable complete proteins."""
    full = sct.datasets.cptac_ucec_bulk(path)
    rna_log = pd.DataFrame(full["rna"].layers["log2"], columns=full["rna"].var_names)
    genes = rna_log.var().nlargest(n_genes).index
    prot_log = pd.DataFrame(full["prot"].layers["log2_ratio"], columns=full["prot"].var_names)
    proteins = prot_log.loc[:, prot_log.notna().all()].var().nlargest(200).index
    bulk = sct.datasets.cptac_ucec_bulk(path, genes=list(genes), proteins=list(proteins))
    obs = bulk.obs
    obs["tissue"] = obs["Proteomics_Tumor_Normal"].map({"Tumor": "tumour"}).fillna("normal")
    histology = obs["Histologic_type"].where(obs["tissue"] == "tumour")
    obs["histology"] = histology.where(histology.isin(["Endometrioid", "Serous"]))
    obs["strata"] = obs["histology"].fillna(obs["tissue"]).replace("tumour", "Endometrioid")
    return bulk


def cptac_fold(bulk: MuData, train: np.ndarray, seed: int, args) -> tuple[MuData, float]:
    """Train a translator on the ``train`` samples; all samples with translated proteins."""
    scvi.settings.seed = seed
    fit = bulk[train].copy()
    sct.SCTRANSLATOR.setup_mudata(
        fit, rna_layer=None, protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    model = sct.SCTRANSLATOR(
        fit, n_hidden=args.n_hidden, max_genes=args.bulk_genes, protein_normalization="log1p"
    )
    model.train(max_epochs=args.bulk_epochs, plan_kwargs={"lr": 3e-3}, **QUIET)
    mdata = bulk.copy()
    sct.tl.fill_protein(mdata, model, key_added="prot_pred")
    test = ~train
    predicted = mdata["prot_pred"].to_df()[test]
    measured = np.log1p(mdata["prot"].to_df()[test][predicted.columns])
    r = float(np.nanmean(sct.metrics.per_protein_pearson(predicted, measured)))
    return mdata, r


def cptac_classification(bulk: MuData, seed: int, args) -> tuple[list[dict], list[float]]:
    tasks = {"tumour vs normal": "tissue", "serous vs endometrioid": "histology"}
    runs = {
        "RNA only": {"protein": None},
        "translated protein only": {"rna": None},
        "RNA + translated protein": {},
        "measured protein only (reference)": {
            "rna": None,
            "protein": "prot",
            "protein_layer": "log2_ratio",
        },
        "RNA + measured protein (reference)": {"protein": "prot", "protein_layer": "log2_ratio"},
    }
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    predicted = {
        (t, r): pd.Series(index=bulk.obs_names, dtype=object) for t in tasks for r in runs
    }
    pearson = []
    for train_idx, test_idx in folds.split(bulk.obs_names, bulk.obs["strata"]):
        train = np.zeros(bulk.n_obs, bool)
        train[train_idx] = True
        mdata, r = cptac_fold(bulk, train, seed, args)
        pearson.append(r)
        for task, column in tasks.items():
            mdata.obs["known"] = mdata.obs[column].where(train)
            for run, kwargs in runs.items():
                out = sct.tl.classify(
                    mdata, label_key="known", n_comps=20, random_state=seed, copy=True, **kwargs
                )
                names = bulk.obs_names[test_idx]
                predicted[task, run][names] = out.obs.loc[names, "sct_classify"].astype(str)
    rows = []
    for (task, run), labels in predicted.items():
        truth = bulk.obs[tasks[task]]
        scored = truth.notna().to_numpy()
        rows.append(
            {
                "task": task,
                "features": run,
                "samples": int(scored.sum()),
                **scores(truth[scored], labels[scored]),
            }
        )
    return rows, pearson


# ------------------------------------------------------------------------------- main
def run_pbmc(args, out: Path) -> None:
    """Train one model per seed; write ``classify_pbmc.csv`` and ``downstream.csv``."""
    start = time.perf_counter()
    settings = (
        f"PBMC model: {args.epochs} epochs, lr {args.lr}, n_hidden {args.n_hidden}, "
        f"max_genes {args.max_genes}"
    )
    classify_rows, other_rows = [], []
    for seed in args.seeds:
        pbmc = sct.datasets.pbmc_cite_mini()
        model = train_pbmc(pbmc, seed, args)
        sct.tl.fill_protein(pbmc, model, key_added="prot_pred")
        held = (pbmc.obs["batch"] == "p4_0").to_numpy()
        measured = sct.pp.normalize_protein(pbmc["prot"], method="clr", layer="counts")
        r = sct.metrics.evaluate(pbmc["prot_pred"].to_df()[held], measured[held])
        tag = {"seed": seed, "pearson": r["protein_pearson_mean"], "settings": settings}
        classify_rows += [{**tag, **row} for row in pbmc_classification(pbmc, seed)]
        for analysis, rows in (
            ("clustering", pbmc_clustering(pbmc, seed)),
            ("batch mixing", pbmc_batch_mixing(pbmc, model, seed)),
            ("interactions", pbmc_interactions(pbmc, model)),
        ):
            other_rows += [{**tag, "analysis": analysis, **row} for row in rows]
        print(f"PBMC seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    pd.DataFrame(classify_rows).to_csv(out / "classify_pbmc.csv", index=False)
    pd.DataFrame(other_rows).to_csv(out / "downstream.csv", index=False)


def run_cptac(args, out: Path) -> None:
    """Cross-validate both CPTAC tasks per seed; write ``classify_cptac.csv``."""
    start = time.perf_counter()
    settings = (
        f"CPTAC translator: {args.bulk_genes} genes, {args.bulk_epochs} epochs, "
        f"n_hidden {args.n_hidden}"
    )
    bulk = load_cptac(args.cptac, args.bulk_genes)
    cptac_rows = []
    for seed in args.seeds:
        rows, pearson = cptac_classification(bulk, seed, args)
        tag = {"seed": seed, "pearson": np.mean(pearson), "settings": settings}
        cptac_rows += [{**tag, **row} for row in rows]
        print(f"CPTAC seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    pd.DataFrame(cptac_rows).to_csv(out / "classify_cptac.csv", index=False)


def seeds_line(long: pd.DataFrame) -> str:
    seeds = [int(seed) for seed in sorted(long["seed"].unique())]
    r = long.groupby("seed")["pearson"].first()
    return (
        f"{long['settings'].iloc[0]}; seeds {seeds}, mean ± sd over the {len(seeds)} seeds. "
        f"The translator's held-out per-protein Pearson: {r.mean():.3f} ± {r.std(ddof=1):.3f}."
    )


def report(out: Path) -> None:
    """Write ``classify.md`` and ``downstream.md`` from the CSVs present in ``out``."""
    metrics = ["balanced_accuracy", "macro_f1"]
    command = "`OMP_NUM_THREADS=1 python benchmarks/downstream.py`"
    classify_md = ["# Cell-origin classification with translated proteins", "", command, ""]
    if (out / "classify_pbmc.csv").is_file():
        pbmc_long = pd.read_csv(out / "classify_pbmc.csv")
        classify_md += [
            "## PBMC: cell types carried to hidden batches",
            "",
            "Labels of p3_0 (the translator's training batch) only; cell types of p1_0 (RNA "
            "only) and p4_0 predicted by `sct.tl.classify` and scored against the annotation "
            f"(balanced accuracy, macro-F1). {seeds_line(pbmc_long)} (p4_0)",
            "",
            mean_sd(pbmc_long, ["hidden batch", "features"], metrics).to_markdown(index=False),
            "",
        ]
    if (out / "classify_cptac.csv").is_file():
        cptac_long = pd.read_csv(out / "classify_cptac.csv")
        classify_md += [
            "## CPTAC-UCEC bulk: five-fold cross-validation",
            "",
            "Translator retrained in each fold on the training samples only; scores of the "
            f"pooled held-out predictions. {seeds_line(cptac_long)} (held-out samples)",
            "",
            mean_sd(cptac_long, ["task", "features"], metrics).to_markdown(index=False),
            "",
        ]
    (out / "classify.md").write_text("\n".join(classify_md))
    print("\n".join(classify_md))
    if not (out / "downstream.csv").is_file():
        return
    long = pd.read_csv(out / "downstream.csv")
    part = dict(list(long.groupby("analysis")))
    downstream_md = [
        "# Downstream analyses on the PBMC cells",
        "",
        f"{command}. {seeds_line(long)} (p4_0)",
        "",
        "## Clustering against cell types (Leiden, mean of resolutions 0.5 and 1.0)",
        "",
        "Seeds: the model's and Leiden's.",
        "",
        mean_sd(
            part["clustering"], ["cells", "features"], ["ari", "nmi", "n_clusters"]
        ).to_markdown(index=False),
        "",
        "## Batch mixing and cell-type separation (all three batches)",
        "",
        mean_sd(
            part["batch mixing"],
            ["embedding"],
            ["batch_entropy", "silhouette_batch", "silhouette_label"],
        ).to_markdown(index=False),
        "",
        "## Rank of a protein's own gene in `sct.tl.interactions` (p4_0, 500 genes)",
        "",
        "Chance: median 250, mean percentile 0.5, top 5% 0.05.",
        "",
        mean_sd(
            part["interactions"],
            ["method"],
            ["median rank", "mean percentile", "top 5% (of pairs)"],
        ).to_markdown(index=False),
        "",
    ]
    (out / "downstream.md").write_text("\n".join(downstream_md))
    print("\n".join(downstream_md))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=["pbmc", "cptac"], choices=["pbmc", "cptac"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--bulk-epochs", type=int, default=60)
    parser.add_argument("--bulk-genes", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-hidden", type=int, default=32)
    parser.add_argument("--max-genes", type=int, default=96)
    parser.add_argument("--cptac", default=str(CPTAC))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "pbmc" in args.parts:
        run_pbmc(args, out)
    if "cptac" in args.parts:
        run_cptac(args, out)
    report(out)


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
