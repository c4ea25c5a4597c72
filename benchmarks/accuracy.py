"""Accuracy of sctranslator against the tools a user would pick instead.

Tasks (reference -> query, the query's proteins hidden from every method):
  pbmc       real PBMC CITE-seq, train on batch p3_0, predict batch p4_0 from RNA;
  mosaic     the same, with the RNA-only batch p1_0 added to the reference;
  synthetic  ``sct.datasets.synthetic_cite``: reference batches -> a query batch with another
             batch effect and a shifted cell-type composition.
Methods: sctranslator with its defaults (``SCTRANSLATOR(mdata)``, ``train()``), the
average-profile control, ridge and kNN on RNA PCA, and totalVI trained on reference + query
with the query's proteins marked missing (zero in the whole batch, scvi-tools' protein batch
mask), imputed with ``get_normalized_expression(transform_batch=<reference batches>)``.
Every method is scored on one scale: per-cell CLR of protein counts (``sct.pp.normalize_protein``);
totalVI's denoised protein expression goes through the same CLR.

    python benchmarks/accuracy.py --tasks pbmc mosaic synthetic --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scvi
import torch
from mudata import MuData

import sctranslator as sct
from sctranslator._baselines import average_profile, knn_on_pca, ridge_on_pca
from sctranslator.nn._normalization import clr

MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}


def pbmc_task(with_rna_only: bool = False) -> tuple[MuData, MuData]:
    mdata = sct.datasets.pbmc_cite_mini()
    reference_batches = ["p1_0", "p3_0"] if with_rna_only else ["p3_0"]
    return _split(mdata, mdata.obs["batch"].isin(reference_batches), mdata.obs["batch"] == "p4_0")


def synthetic_task(n_cells: int) -> tuple[MuData, MuData]:
    mdata = sct.datasets.synthetic_cite(n_cells=n_cells, shift=True, seed=0)
    return _split(mdata, mdata.obs["split"] == "reference", mdata.obs["split"] == "query")


def _split(mdata: MuData, reference: pd.Series, query: pd.Series) -> tuple[MuData, MuData]:
    reference, query = mdata[reference.to_numpy()].copy(), mdata[query.to_numpy()].copy()
    for part in (reference, query):
        part.obs["batch"] = part.obs["batch"].cat.remove_unused_categories()
    return reference, query


def measured_clr(mdata: MuData) -> pd.DataFrame:
    return sct.pp.normalize_protein(mdata["prot"], layer="counts")


def run_sctranslator(reference: MuData, query: MuData) -> pd.DataFrame:
    reference = reference.copy()
    sct.SCTRANSLATOR.setup_mudata(
        reference, rna_layer="counts", protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    model = sct.SCTRANSLATOR(reference)
    model.train(enable_progress_bar=False)
    return model.predict_protein(query["rna"])


def run_totalvi(reference: MuData, query: MuData) -> pd.DataFrame:
    """totalVI on reference + query, the query's proteins zero (masked per batch), then imputed."""
    proteins = reference["prot"].var_names
    rna = [reference["rna"].copy(), query["rna"].copy()]
    prot_ref = np.nan_to_num(np.asarray(reference["prot"].layers["counts"], dtype=np.float32))
    prot = np.vstack([prot_ref, np.zeros((query.n_obs, len(proteins)), np.float32)])
    rna = ad.concat(rna)
    obs = pd.concat([reference.obs[["batch"]].astype(str), query.obs[["batch"]].astype(str) + "_query"])
    rna.obs = obs.copy()
    protein = ad.AnnData(X=prot, obs=obs.copy(), var=pd.DataFrame(index=proteins))
    protein.layers["counts"] = prot.copy()
    joint = MuData({"rna": rna, "protein": protein})
    joint.obs["batch"] = pd.Categorical(obs["batch"])
    scvi.model.TOTALVI.setup_mudata(
        joint, rna_layer="counts", protein_layer="counts", batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "protein"},
    )
    # Reference batches in which no protein was measured (RNA-only) are masked like the query.
    model = scvi.model.TOTALVI(joint, override_missing_proteins=True)
    model.train(enable_progress_bar=False)
    query_rows = np.arange(reference.n_obs, joint.n_obs)
    measured_batches = [
        b for b in reference.obs["batch"].cat.categories
        if np.isfinite(reference["prot"].layers["counts"][(reference.obs["batch"] == b).to_numpy()]).any()
    ]
    _, imputed = model.get_normalized_expression(
        indices=query_rows, transform_batch=measured_batches, n_samples=25,
        include_protein_background=True, sample_protein_mixing=False, return_mean=True,
    )
    values = clr(torch.as_tensor(np.asarray(imputed), dtype=torch.float32)).numpy()
    return pd.DataFrame(values, index=query.obs_names, columns=proteins)


def run_baseline(name: str, reference: MuData, query: MuData) -> pd.DataFrame:
    train = measured_clr(reference)
    if name == "average profile (control)":
        return average_profile(train, query.obs_names)
    fit = ridge_on_pca if name.startswith("ridge") else knn_on_pca
    rna = reference["rna"].copy()
    rna.X = rna.layers["counts"]
    query_rna = query["rna"].copy()
    query_rna.X = query_rna.layers["counts"]
    return fit(rna, train, query_rna)


METHODS = ["sctranslator", "average profile (control)", "ridge on RNA PCA", "kNN on RNA PCA", "totalVI"]


def run_task(name: str, reference: MuData, query: MuData, methods: list[str], threads: int) -> pd.DataFrame:
    truth = measured_clr(query)
    rows = {}
    for method in methods:
        torch.set_num_threads(threads)  # scanpy/sklearn calls can reset it
        scvi.settings.seed = 0
        start = time.perf_counter()
        if method == "sctranslator":
            prediction = run_sctranslator(reference, query)
        elif method == "totalVI":
            prediction = run_totalvi(reference, query)
        else:
            prediction = run_baseline(method, reference, query)
        seconds = time.perf_counter() - start
        scores = sct.metrics.evaluate(prediction.loc[truth.index, truth.columns], truth)
        rows[method] = {**scores.to_dict(), "seconds": seconds}
        print(f"  {name}: {method} done in {seconds:.0f} s", flush=True)
    table = pd.DataFrame(rows).T
    table.insert(0, "task", name)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["pbmc", "mosaic", "synthetic"])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--synthetic-cells", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {
        "pbmc": lambda: pbmc_task(),
        "mosaic": lambda: pbmc_task(with_rna_only=True),
        "synthetic": lambda: synthetic_task(args.synthetic_cells),
    }
    tables = []
    for name in args.tasks:
        reference, query = tasks[name]()
        print(f"{name}: {reference.n_obs} reference cells, {query.n_obs} query cells, "
              f"{reference['rna'].n_vars} genes, {reference['prot'].n_vars} proteins", flush=True)
        tables.append(run_task(name, reference, query, args.methods, args.threads))
    table = pd.concat(tables)
    columns = ["task", "protein_pearson_mean", "protein_pearson_median", "protein_spearman_mean",
               "cell_pearson_mean", "cell_cosine_mean", "rmse", "seconds"]
    table = table[columns]
    stamp = datetime.date.today().isoformat()
    print(f"\nAccuracy on the query cells (CLR scale), {stamp}, torch threads = {args.threads}")
    print(table.round(3).to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out / "accuracy.csv")
    (out / "accuracy.md").write_text(table.round(3).to_markdown() + "\n")


if __name__ == "__main__":
    main()
