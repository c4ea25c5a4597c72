"""Accuracy of sctranslator against the tools a user would pick instead.

Tasks (reference -> query, the query's proteins hidden from every method):
  tuning       the TUNING split: PBMC batch p3_0, 300 cells -> its other 100 cells. Choose
               defaults here only; report on the other tasks.
  pbmc         real PBMC CITE-seq, train on batch p3_0, predict batch p4_0 from RNA;
  pbmc_reverse the other direction, train on p4_0, predict p3_0;
  mosaic       p3_0 -> p4_0 with the RNA-only batch p1_0 added to the reference;
  synthetic    ``sct.datasets.synthetic_cite``: reference batches -> a query batch with another
               batch effect and a shifted cell-type composition.
  full_transcriptome  the same with 20,000 genes, 150 of them highly expressed and
               uninformative (housekeeping-like), 50 proteins; 1,500 cells by default.
Methods: sctranslator with its defaults (``SCTRANSLATOR(mdata)``, ``train()``) for each
``--seeds`` (and, from the same trained model, its network without the reference-mapping
read-out, and kNN and RBF kernel ridge on its latent space), the same with
``context="expressed"`` (the informative-context lever off), the average-profile control,
ridge, kNN and RBF kernel ridge (cross-validated) on RNA PCA, and totalVI trained on
reference + query with the query's proteins marked missing (zero in the whole batch,
scvi-tools' protein batch mask), imputed with
``get_normalized_expression(transform_batch=<reference batches>)``.
Every method is scored on one scale: per-cell CLR of protein counts (``sct.pp.normalize_protein``);
totalVI's denoised protein expression goes through the same CLR. Writes every run to
``accuracy_runs.csv`` and mean ± sd over seeds to ``accuracy.md``.

    python benchmarks/accuracy.py --tasks pbmc pbmc_reverse --seeds 0 1 2 --threads 1
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
from sklearn.neighbors import KNeighborsRegressor

import sctranslator as sct
from sctranslator._baselines import (
    RBFKernelRidgeCV,
    average_profile,
    kernel_ridge_on_pca,
    knn_on_pca,
    ridge_on_pca,
)
from sctranslator._mudata import no_pull
from sctranslator.nn import PROTEIN_NORMALIZATIONS

MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
clr = PROTEIN_NORMALIZATIONS["clr"]


def pbmc_task(
    with_rna_only: bool = False, source: str = "p3_0", target: str = "p4_0"
) -> tuple[MuData, MuData]:
    mdata = sct.datasets.pbmc_cite_mini()
    reference_batches = ["p1_0", source] if with_rna_only else [source]
    return _split(mdata, mdata.obs["batch"].isin(reference_batches), mdata.obs["batch"] == target)


def tuning_task() -> tuple[MuData, MuData]:
    """The tuning split: 300 cells of p3_0 -> its other 100 cells (fixed draw)."""
    mdata = sct.datasets.pbmc_cite_mini()
    cells = np.flatnonzero((mdata.obs["batch"] == "p3_0").to_numpy())
    query = np.zeros(mdata.n_obs, bool)
    query[np.random.default_rng(0).choice(cells, 100, replace=False)] = True
    reference = (mdata.obs["batch"] == "p3_0").to_numpy() & ~query
    return _split(mdata, pd.Series(reference), pd.Series(query))


def synthetic_task(n_cells: int) -> tuple[MuData, MuData]:
    mdata = sct.datasets.synthetic_cite(n_cells=n_cells, shift=True, seed=0)
    return _split(mdata, mdata.obs["split"] == "reference", mdata.obs["split"] == "query")


def full_transcriptome_task(n_cells: int) -> tuple[MuData, MuData]:
    """Synthetic full transcriptomes: 20,000 genes, 150 of them housekeeping-like, 50 proteins."""
    mdata = sct.datasets.synthetic_cite(
        n_cells=n_cells, n_genes=20_000, n_proteins=50, n_housekeeping=150, shift=True, seed=0
    )
    return _split(mdata, mdata.obs["split"] == "reference", mdata.obs["split"] == "query")


def _split(mdata: MuData, reference: pd.Series, query: pd.Series) -> tuple[MuData, MuData]:
    reference, query = mdata[reference.to_numpy()].copy(), mdata[query.to_numpy()].copy()
    for part in (reference, query):
        part.obs["batch"] = part.obs["batch"].cat.remove_unused_categories()
    return reference, query


def measured_clr(mdata: MuData) -> pd.DataFrame:
    return sct.pp.normalize_protein(mdata["prot"], layer="counts")


def train_sctranslator(reference: MuData, **model_kwargs) -> sct.SCTRANSLATOR:
    """Set up a copy of ``reference`` and train a model on it with the default training."""
    reference = reference.copy()
    sct.SCTRANSLATOR.setup_mudata(
        reference,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities=MODALITIES,
    )
    model = sct.SCTRANSLATOR(reference, **model_kwargs)
    model.train(enable_progress_bar=False)
    return model


def run_sctranslator(reference: MuData, query: MuData) -> dict[str, pd.DataFrame]:
    """A model trained on ``reference`` with the defaults, scored by :func:`latent_readouts`."""
    return latent_readouts(train_sctranslator(reference), query)


def latent_readouts(model: sct.SCTRANSLATOR, query: MuData) -> dict[str, pd.DataFrame]:
    """Defaults; the same model without its reference mapping; kNN and kernel ridge on its latent.

    The latent-space baselines regress the reference cells' measured proteins on the trained
    model's cell token (``get_latent_representation``), as a user of its latent space would.
    Removes the model's reference mapping.
    """
    predictions = {"sctranslator": model.predict_protein(query["rna"])}
    latent = model.get_latent_representation()
    query_latent = model.get_latent_representation(query["rna"])
    model.reference_mapping.clear()  # fitted after training: the network is unchanged
    predictions["sctranslator without reference mapping"] = model.predict_protein(query["rna"])
    proteins = measured_clr(model.adata)
    measured = proteins.notna().all(axis=1).to_numpy()
    for label, regression in (
        ("kNN on sctranslator latent", KNeighborsRegressor(15, weights="distance")),
        ("kernel ridge on sctranslator latent", RBFKernelRidgeCV()),
    ):
        regression.fit(latent[measured], proteins.to_numpy()[measured])
        predictions[label] = pd.DataFrame(
            regression.predict(query_latent), index=query.obs_names, columns=proteins.columns
        )
    return predictions


def run_totalvi(reference: MuData, query: MuData) -> pd.DataFrame:
    """totalVI on reference + query, the query's proteins zero (masked per batch), then imputed."""
    proteins = reference["prot"].var_names
    rna = [reference["rna"].copy(), query["rna"].copy()]
    prot_ref = np.nan_to_num(np.asarray(reference["prot"].layers["counts"], dtype=np.float32))
    prot = np.vstack([prot_ref, np.zeros((query.n_obs, len(proteins)), np.float32)])
    rna = ad.concat(rna)
    obs = pd.concat(
        [reference.obs[["batch"]].astype(str), query.obs[["batch"]].astype(str) + "_query"]
    )
    rna.obs = obs.copy()
    protein = ad.AnnData(X=prot, obs=obs.copy(), var=pd.DataFrame(index=proteins))
    protein.layers["counts"] = prot.copy()
    joint = MuData({"rna": rna, "protein": protein})
    joint.obs["batch"] = pd.Categorical(obs["batch"])
    scvi.model.TOTALVI.setup_mudata(
        joint,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "protein"},
    )
    # Reference batches in which no protein was measured (RNA-only) are masked like the query.
    model = scvi.model.TOTALVI(joint, override_missing_proteins=True)
    model.train(enable_progress_bar=False)
    query_rows = np.arange(reference.n_obs, joint.n_obs)
    measured_batches = [
        b
        for b in reference.obs["batch"].cat.categories
        if np.isfinite(
            reference["prot"].layers["counts"][(reference.obs["batch"] == b).to_numpy()]
        ).any()
    ]
    _, imputed = model.get_normalized_expression(
        indices=query_rows,
        transform_batch=measured_batches,
        n_samples=25,
        include_protein_background=True,
        sample_protein_mixing=False,
        return_mean=True,
    )
    values = clr(torch.as_tensor(np.asarray(imputed), dtype=torch.float32)).numpy()
    return pd.DataFrame(values, index=query.obs_names, columns=proteins)


def run_baseline(name: str, reference: MuData, query: MuData) -> pd.DataFrame:
    train = measured_clr(reference)
    if name == "average profile (control)":
        return average_profile(train, query.obs_names)
    fit = {"ridge": ridge_on_pca, "kNN": knn_on_pca, "kernel": kernel_ridge_on_pca}[
        name.split()[0]
    ]
    rna = reference["rna"].copy()
    rna.X = rna.layers["counts"]
    query_rna = query["rna"].copy()
    query_rna.X = query_rna.layers["counts"]
    return fit(rna, train, query_rna)


# The context lever off: cells keep their most expressed genes, not the most informative.
EXPRESSED_CONTEXT = 'sctranslator, context="expressed"'
METHODS = [
    "sctranslator",
    EXPRESSED_CONTEXT,
    "average profile (control)",
    "ridge on RNA PCA",
    "kNN on RNA PCA",
    "kernel ridge on RNA PCA",
    "totalVI",
]
SEEDED = {"sctranslator", EXPRESSED_CONTEXT, "totalVI"}


def run_task(
    name: str, reference: MuData, query: MuData, methods: list[str], seeds: list[int], threads: int
) -> pd.DataFrame:
    truth = measured_clr(query)
    rows = []
    for method in methods:
        for seed in seeds if method in SEEDED else [0]:
            torch.set_num_threads(threads)  # scanpy/sklearn calls can reset it
            scvi.settings.seed = seed
            start = time.process_time()
            if method == "sctranslator":
                predictions = run_sctranslator(reference, query)
            elif method == EXPRESSED_CONTEXT:
                model = train_sctranslator(reference, context="expressed")
                predictions = {method: model.predict_protein(query["rna"])}
            elif method == "totalVI":
                predictions = {method: run_totalvi(reference, query)}
            else:
                predictions = {method: run_baseline(method, reference, query)}
            seconds = time.process_time() - start
            for label, prediction in predictions.items():
                scores = sct.metrics.evaluate(prediction.loc[truth.index, truth.columns], truth)
                rows.append(
                    {
                        "task": name,
                        "method": label,
                        "seed": seed,
                        **scores.to_dict(),
                        "cpu_seconds": seconds,
                    }
                )
            print(f"  {name}: {method} (seed {seed}) done in {seconds:.0f} CPU s", flush=True)
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of the per-protein Pearson, per task and method."""
    grouped = runs.groupby(["task", "method"], sort=False)["protein_pearson_mean"]
    table = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "seeds"})
    table["std"] = table["std"].fillna(0.0)
    return table.round(4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", nargs="+", default=["pbmc", "pbmc_reverse", "mosaic", "synthetic"]
    )
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--synthetic-cells", type=int, default=5000)
    parser.add_argument("--full-transcriptome-cells", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {
        "tuning": tuning_task,
        "pbmc": lambda: pbmc_task(),
        "pbmc_reverse": lambda: pbmc_task(source="p4_0", target="p3_0"),
        "mosaic": lambda: pbmc_task(with_rna_only=True),
        "synthetic": lambda: synthetic_task(args.synthetic_cells),
        "full_transcriptome": lambda: full_transcriptome_task(args.full_transcriptome_cells),
    }
    runs = []
    for name in args.tasks:
        reference, query = tasks[name]()
        print(
            f"{name}: {reference.n_obs} reference cells, {query.n_obs} query cells, "
            f"{reference['rna'].n_vars} genes, {reference['prot'].n_vars} proteins",
            flush=True,
        )
        runs.append(run_task(name, reference, query, args.methods, args.seeds, args.threads))
    runs = pd.concat(runs)
    table = summarize(runs)
    stamp = datetime.date.today().isoformat()
    print(f"\nAccuracy on the query cells (CLR scale), {stamp}, torch threads = {args.threads}")
    print(table.to_string())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.round(4).to_csv(out / f"accuracy_runs{args.tag}.csv", index=False)
    (out / f"accuracy{args.tag}.md").write_text(
        f"Measured {stamp}; tuning split: `tuning` (defaults are chosen there only).\n\n"
        + table.to_markdown()
        + "\n"
    )


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
