"""Downstream analyses on the PBMC CITE-seq cells: clustering and batch mixing, with and
without predicted proteins.

Trains one model on the paired batch p3_0 and predicts proteins for every cell from RNA.
Clustering is scored on the held-out cells (p1_0 RNA only, p4_0 paired) against the annotated
cell types (ARI, NMI; mean over Leiden resolutions and seeds). Batch mixing and cell-type
separation are scored on all three batches (p3_0 is the training batch) and on the held-out
batches only. Last, the rank of each protein's own gene (the RNA of its coding gene, where
in the panel) in `sct.tl.interactions` tables, gradient x input and attention, on p4_0.

    OMP_NUM_THREADS=1 python benchmarks/downstream.py [--epochs 60] [--lr 1e-3]
        [--n-hidden 32] [--max-genes 96]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
import scvi
import torch
from anndata import AnnData

import sctranslator as sct

warnings.filterwarnings("ignore")


def clustering_table(mdata, resolutions, seeds) -> pd.DataFrame:
    """Mean ARI/NMI of Leiden clusters against `celltype` for each input."""
    inputs = {
        "RNA only": {"protein": None},
        "RNA + predicted protein": {"protein": "prot_pred"},
        "predicted protein only": {"rna": None, "protein": "prot_pred"},
    }
    paired = mdata[mdata.obs["batch"] == "p4_0"].copy()
    rows = {}
    for name, kwargs in inputs.items():
        rows[name] = _scores(mdata, kwargs, resolutions, seeds)
    rows["RNA + measured protein (p4_0 only)"] = _scores(
        paired, {"protein": "prot_clr"}, resolutions, seeds
    )
    rows["RNA only (p4_0 only)"] = _scores(paired, {"protein": None}, resolutions, seeds)
    rows["RNA + predicted protein (p4_0 only)"] = _scores(
        paired, {"protein": "prot_pred"}, resolutions, seeds
    )
    return pd.DataFrame(rows).T


def _scores(mdata, kwargs, resolutions, seeds) -> pd.Series:
    scores = []
    for resolution in resolutions:
        for seed in seeds:
            out = sct.tl.cluster(
                mdata, resolution=resolution, random_state=seed, copy=True, **kwargs
            )
            s = sct.metrics.clustering_agreement(out.obs["sct_leiden"], out.obs["celltype"])
            s["n_clusters"] = out.obs["sct_leiden"].nunique()
            scores.append(s)
    return pd.DataFrame(scores).mean()


def batch_table(mdata, model) -> pd.DataFrame:
    latent = sct.tl.batch_correct(mdata, model, label_key="celltype", key_added="latent")
    protein = sct.tl.batch_correct(
        mdata, model, label_key="celltype", representation="protein", key_added="protein"
    )
    return pd.concat([latent, protein.iloc[1:]])


def interaction_table(model, cells) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank (of the panel's genes) of each protein's own gene, per attribution."""
    proteins = cells["prot_pred"].var
    own = {p: t for p, t in proteins["token"].items() if t in cells["rna"].var_names}
    rows = {}
    for method in ("gradient", "attention"):
        table = sct.tl.interactions(
            model, cells, proteins=list(own), method=method, key_added=None
        )
        rows[method] = pd.Series(
            {p: int((table[p] > table.loc[g, p]).sum()) + 1 for p, g in own.items()}
        )
    ranks = pd.DataFrame(rows)
    n_genes = len(table)
    summary = pd.DataFrame(
        {
            "median rank": ranks.median(),
            "mean percentile": (ranks / n_genes).mean(),
            "top 5% (of pairs)": (ranks <= 0.05 * n_genes).mean(),
        }
    ).T
    return ranks, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-hidden", type=int, default=32)
    parser.add_argument("--max-genes", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scvi.settings.seed = args.seed

    pbmc = sct.datasets.pbmc_cite_mini()
    train = pbmc[pbmc.obs["batch"] == "p3_0"].copy()
    sct.SCTRANSLATOR.setup_mudata(
        train,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "prot"},
    )
    model = sct.SCTRANSLATOR(train, n_hidden=args.n_hidden, max_genes=args.max_genes)
    start = time.perf_counter()
    model.train(max_epochs=args.epochs, enable_progress_bar=False, plan_kwargs={"lr": args.lr})
    print(
        f"Trained on p3_0 ({train.n_obs} cells): "
        f"{len(model.history['pearson_validation'])} epochs "
        f"in {time.perf_counter() - start:.0f} s, best validation per-protein Pearson "
        f"{model.history['pearson_validation'].max().item():.3f}"
    )

    sct.tl.fill_protein(pbmc, model, key_added="prot_pred")
    measured = sct.pp.normalize_protein(pbmc["prot"], method="clr", layer="counts")
    pbmc.mod["prot_clr"] = AnnData(measured.fillna(0.0))  # NaN (p1_0) never clustered
    pbmc.update()
    held = pbmc.obs["batch"] == "p4_0"
    r = sct.metrics.evaluate(pbmc["prot_pred"].to_df()[held.to_numpy()], measured[held.to_numpy()])
    print(f"Held-out p4_0 per-protein Pearson (mean): {r['protein_pearson_mean']:.3f}")
    print(f"Settings: {vars(args)}\n")

    query = pbmc[pbmc.obs["batch"].isin(["p1_0", "p4_0"])].copy()
    print("Leiden clustering of held-out cells (p1_0 + p4_0, 800 cells) vs cell types;")
    print("mean over resolutions 0.5, 1.0 and seeds 0, 1:")
    print(clustering_table(query, [0.5, 1.0], [0, 1]).round(3).to_string(), "\n")

    print(
        "Batch mixing / cell-type separation, all batches p1_0, p3_0 (training), p4_0 "
        "(1,200 cells):"
    )
    print(batch_table(pbmc.copy(), model).round(3).to_string(), "\n")
    print("Held-out batches only (p1_0 vs p4_0, 800 cells):")
    print(batch_table(query.copy(), model).round(3).to_string(), "\n")

    ranks, summary = interaction_table(model, pbmc[pbmc.obs["batch"] == "p4_0"].copy())
    print(
        f"Rank of a protein's own gene among {pbmc['rna'].n_vars} genes, {len(ranks)} pairs, "
        "p4_0 cells (chance: median 250, mean percentile 0.5, top 5% 0.05):"
    )
    print(summary.round(3).to_string())
    print(ranks.T.to_string())


if __name__ == "__main__":
    main()
