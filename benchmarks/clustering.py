"""Clustering with proteins: concatenated PCs against WNN, with measured and predicted proteins.

PBMC CITE-seq (``sct.datasets.pbmc_cite_mini``), the paired batches p3_0 and p4_0, scored
against ``obs["celltype"]``. For each batch and seed, ``sct.tl.cluster`` clusters the cells on

- RNA alone;
- measured proteins alone (CLR, ``sct.pp.normalize_protein``), for reference;
- RNA + measured proteins (CLR), ``method="concat"`` and ``method="wnn"``;
- RNA + predicted proteins, ``method="concat"`` and ``method="wnn"``: the proteins are
  predicted (``sct.tl.fill_protein``) by an ``sct.SCTRANSLATOR`` with default settings
  trained on the *other* batch (p4_0 for p3_0, p3_0 for p4_0), so never on the cells it
  predicts.

Each graph is clustered by Leiden at resolutions 0.5 and 1.0 (the tool's call at the first,
then Leiden on the graph it wrote, as the tool runs it); ARI and NMI against the cell types
are averaged over the resolutions. The seed is the translator's training seed and the
``random_state`` of the PCA, the graph and Leiden.

p3_0 is the tuning split: the method with the higher mean ARI on p3_0 with predicted proteins
(what ``sct.tl.cluster`` clusters by default, ``protein="prot_pred"``) is the one to make the
default; the report says which, and whether the package's default is that one. p4_0 is
reported.

Writes ``benchmarks/results/clustering.csv`` (one row per batch, features, method, seed and
resolution) and ``clustering.md`` from it (``--report`` only rewrites the report).

    OMP_NUM_THREADS=1 python benchmarks/clustering.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import scvi
import torch
from anndata import AnnData
from mudata import MuData

import sctranslator as sct
from sctranslator._io import write_atomic
from sctranslator._mudata import no_pull, shared_var_names

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).resolve().parent / "results"
MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
BATCHES = {"p3_0": "p4_0", "p4_0": "p3_0"}  # clustered batch -> the translator's training batch
TUNING = "p3_0"
RESOLUTIONS = (0.5, 1.0)


def paired(pbmc: MuData, batch: str) -> MuData:
    """The cells of ``batch`` with their measured proteins on the CLR scale (``prot_clr``)."""
    with shared_var_names(pbmc.mod.values()):
        cells = pbmc[(pbmc.obs["batch"] == batch).to_numpy()].copy()
    clr = sct.pp.normalize_protein(cells["prot"], method="clr", layer="counts")
    cells.mod["prot_clr"] = AnnData(
        clr.to_numpy(np.float32), obs=cells["prot"].obs[[]], var=cells["prot"].var[[]]
    )
    with shared_var_names(cells.mod.values()):
        cells.update()
    return cells


def translator(pbmc: MuData, batch: str, seed: int) -> sct.SCTRANSLATOR:
    """A translator with default settings trained on ``batch`` (seed ``seed``)."""
    scvi.settings.seed = seed
    torch.set_num_threads(1)
    with shared_var_names(pbmc.mod.values()):
        train = pbmc[(pbmc.obs["batch"] == batch).to_numpy()].copy()
    sct.SCTRANSLATOR.setup_mudata(
        train, rna_layer=None, protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    model = sct.SCTRANSLATOR(train)
    model.train(accelerator="cpu", enable_progress_bar=False)
    return model


def scores(mdata: MuData, seed: int, **kwargs) -> list[dict]:
    """ARI and NMI of Leiden on ``sct.tl.cluster``'s graph, one row per resolution."""
    start = time.perf_counter()
    out = sct.tl.cluster(mdata, resolution=RESOLUTIONS[0], random_state=seed, copy=True, **kwargs)
    seconds = time.perf_counter() - start
    graph = AnnData(obs=pd.DataFrame(index=out.obs_names))
    rows = []
    for resolution in RESOLUTIONS:
        sc.tl.leiden(
            graph,
            adjacency=out.obsp["sct_neighbors_connectivities"],
            resolution=resolution,
            random_state=seed,
            flavor="igraph",
            n_iterations=2,
            directed=False,
        )
        labels = graph.obs["leiden"].to_numpy()
        if resolution == RESOLUTIONS[0]:  # the same Leiden as the tool's
            assert (labels == out.obs["sct_leiden"].to_numpy()).all()
        agreement = sct.metrics.clustering_agreement(labels, out.obs["celltype"])
        rows.append(
            {
                "resolution": resolution,
                "ari": agreement["ari"],
                "nmi": agreement["nmi"],
                "n_clusters": len(np.unique(labels)),
                "seconds": seconds,
            }
        )
    if "sct_neighbors_weights" in out.obsm:
        protein_weight = float(out.obsm["sct_neighbors_weights"].iloc[:, 1].mean())
        rows = [{**row, "protein_weight": protein_weight} for row in rows]
    return rows


def run(seeds: list[int], out: Path) -> pd.DataFrame:
    """Every batch, seed, feature set and method; the rows of ``clustering.csv``."""
    pbmc = sct.datasets.pbmc_cite_mini()
    runs = [
        ("RNA alone", "-", {"protein": None}),
        ("measured protein alone", "-", {"rna": None, "protein": "prot_clr"}),
        ("RNA + measured protein", "concat", {"protein": "prot_clr", "method": "concat"}),
        ("RNA + measured protein", "wnn", {"protein": "prot_clr", "method": "wnn"}),
        ("RNA + predicted protein", "concat", {"protein": "prot_pred", "method": "concat"}),
        ("RNA + predicted protein", "wnn", {"protein": "prot_pred", "method": "wnn"}),
    ]
    rows = []
    start = time.perf_counter()
    # warm-up: numba compiles scanpy's UMAP connectivities once per process (not timed)
    sct.tl.cluster(paired(pbmc, TUNING), protein=None, copy=True)
    for seed in seeds:
        for batch, training in BATCHES.items():
            cells = paired(pbmc, batch)
            model = translator(pbmc, training, seed)
            sct.tl.fill_protein(cells, model, key_added="prot_pred")
            measured = cells["prot_clr"].to_df()[list(cells["prot_pred"].var_names)]
            pearson = sct.metrics.evaluate(cells["prot_pred"].to_df(), measured)
            tag = {
                "batch": batch,
                "split": "tuning" if batch == TUNING else "report",
                "trained on": training,
                "seed": seed,
                "prediction pearson": pearson["protein_pearson_mean"],
                "epochs": len(model.history["pearson_validation"]),
            }
            for features, method, kwargs in runs:
                for row in scores(cells, seed, **kwargs):
                    rows.append({**tag, "features": features, "method": method, **row})
            print(f"seed {seed} {batch} done ({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    write_atomic(out / "clustering.csv", lambda p: table.to_csv(p, index=False), overwrite=True)
    return table


def _mean_sd(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def report(out: Path, command: str) -> str:
    """Write ``clustering.md`` from ``clustering.csv``; return its text."""
    long = pd.read_csv(out / "clustering.csv")
    seeds = sorted(int(seed) for seed in long["seed"].unique())
    # per seed: mean over the resolutions, then mean ± sd over the seeds
    per_seed = (
        long.groupby(["batch", "features", "method", "seed"], sort=False)[
            ["ari", "nmi", "n_clusters", "seconds", "protein_weight"]
        ]
        .mean()
        .reset_index()
    )
    grouped = per_seed.groupby(["batch", "features", "method"], sort=False)
    table = grouped.agg(
        ari=("ari", _mean_sd),
        nmi=("nmi", _mean_sd),
        clusters=("n_clusters", lambda v: f"{v.mean():.1f}"),
        protein_weight=("protein_weight", lambda v: "" if v.isna().all() else f"{v.mean():.2f}"),
        seconds=("seconds", lambda v: f"{v.mean():.1f}"),
    ).reset_index()
    table["split"] = np.where(table["batch"] == TUNING, "tuning", "report")
    table = table[
        ["split", "batch", "features", "method", "ari", "nmi", "clusters"]
        + ["protein_weight", "seconds"]
    ]
    table = table.rename(
        columns={"protein_weight": "mean WNN protein weight", "seconds": "s per graph"}
    )
    tuning = (
        per_seed[
            (per_seed["batch"] == TUNING) & (per_seed["features"] == "RNA + predicted protein")
        ]
        .groupby("method")["ari"]
        .mean()
    )
    chosen = "wnn" if tuning.get("wnn", -1) > tuning.get("concat", -1) else "concat"
    default = inspect.signature(sct.tl.cluster).parameters["method"].default
    pearson = long.groupby(["batch", "seed"])["prediction pearson"].first()
    rna = per_seed[per_seed["features"] == "RNA alone"].set_index(["batch", "seed"])["ari"]
    gains = []
    for features in ("RNA + measured protein", "RNA + predicted protein"):
        for method in ("concat", "wnn"):
            part = per_seed[
                (per_seed["features"] == features) & (per_seed["method"] == method)
            ].set_index(["batch", "seed"])["ari"]
            gain = (part - rna.loc[part.index]).groupby(level="batch").agg(["mean", "std"])
            for batch, values in gain.iterrows():
                gains.append(
                    {
                        "batch": batch,
                        "features": features,
                        "method": method,
                        "ARI - RNA alone": f"{values['mean']:+.3f} ± {values['std']:.3f}",
                    }
                )
    report_ari = per_seed[per_seed["batch"] != TUNING].groupby(["features", "method"])["ari"]
    report_ari = report_ari.mean()
    alone = report_ari.loc[("RNA alone", "-")]
    predicted = report_ari.loc["RNA + predicted protein"]
    helps = [method for method, ari in predicted.items() if ari > alone]
    verdict = (
        f"Predicted proteins help on the report batch with {', '.join(helps)}."
        if helps
        else "Predicted proteins do not help on the report batch, with either method."
    )
    lines = [
        "# Clustering with proteins: concatenated PCs against WNN",
        "",
        f"`{command}`",
        "",
        f"PBMC paired batches, Leiden at resolutions {list(RESOLUTIONS)} (scores averaged "
        f"over them), seeds {seeds} (the translator's and the PCA/graph/Leiden "
        f"random_state), mean ± sd over the seeds. Predicted proteins: a translator with "
        "default settings trained on the other batch; mean per-protein Pearson of its "
        "predictions with the measured CLR proteins: "
        + ", ".join(
            f"{batch} {_mean_sd(values)}" for batch, values in pearson.groupby(level="batch")
        )
        + ". 'mean WNN protein weight': the protein modality's mean per-cell weight in WNN. "
        "'s per graph': wall seconds of one `sct.tl.cluster` call (muon's WNN compiles its "
        "numba kernels at every call).",
        "",
        table.to_markdown(index=False),
        "",
        "ARI gain over RNA alone (same seed), mean ± sd over the seeds:",
        "",
        pd.DataFrame(gains).to_markdown(index=False),
        "",
        f"Tuning split {TUNING}, RNA + predicted protein: mean ARI concat "
        f"{tuning.get('concat', float('nan')):.3f}, wnn {tuning.get('wnn', float('nan')):.3f}; "
        f"chosen default: `{chosen}`. `sct.tl.cluster`'s default method: `{default}`"
        + (" (the same)." if chosen == default else " (differs from the chosen one)."),
        "",
        f"Report split, RNA + predicted protein: mean ARI concat {predicted['concat']:.3f}, "
        f"wnn {predicted['wnn']:.3f}, against {alone:.3f} for RNA alone. {verdict}",
        "",
    ]
    text = "\n".join(lines)
    write_atomic(out / "clustering.md", lambda p: Path(p).write_text(text), overwrite=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report", action="store_true", help="only rewrite clustering.md")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/clustering.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:] if a != "--report"
    )
    if not args.report:
        run(args.seeds, args.out)
    print(report(args.out, command.strip()))


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
