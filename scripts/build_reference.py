"""Build the shipped PBMC reference model (``SCTRANSLATOR.load_pretrained("pbmc")``).

Recipe: every paired cell of the embedded Seurat v4 PBMC CITE-seq subset
(``sct.datasets.pbmc_cite_mini()``, batches p3_0 and p4_0: 800 cells, 500 genes, 224
antibodies; Hao et al., Cell 2021, GEO GSE164378, as subset in the MIT-licensed scmidas 0.3.0
wheel), model defaults, ``scvi.settings.seed = 0``, one torch thread. 10 % of the cells are held
out for early stopping and the per-protein held-out Pearson of the model card.

The 10x ``pbmc_10k_protein_v3`` subset in ``shared/data`` is not used: its 100 genes are the
first features of the 10x matrix (not chosen for PBMC biology) and share one gene with the
Seurat panel, so cells of the two sets would never measure each other's genes.

    python scripts/build_reference.py            # writes src/sctranslator/references/pbmc
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import scvi
import torch

import sctranslator as sct
from sctranslator._mudata import no_pull

RECIPE = {
    "batches": ["p3_0", "p4_0"],
    "seed": 0,
}
CARD = {
    "training_data": (
        "800 paired cells (batches p3_0 and p4_0, 500 highly variable genes, 224 antibodies) of "
        "the Seurat v4 human PBMC CITE-seq atlas (Hao et al., Cell 2021, GEO GSE164378), as "
        "subset in the scmidas 0.3.0 wheel; built by scripts/build_reference.py"
    ),
    "licence": "MIT (scmidas 0.3.0 wheel); cite Hao et al., Cell 2021",
    "intended_use": (
        "Zero-shot translation of human peripheral blood mononuclear cell RNA (10x 3' "
        "scRNA-seq, gene symbols or Ensembl IDs) into the 224 antibodies of the panel, and a "
        "starting point for fine_tune on a few labelled cells of a new lab"
    ),
    "limits": (
        "PBMC only: other tissues, species and disease states are untested. Only 500 genes "
        "are read; proteins with low held-out Pearson below are close to noise"
    ),
}
OUTPUT = Path(__file__).resolve().parents[1] / "src" / "sctranslator" / "references" / "pbmc"


def build(output: Path = OUTPUT) -> sct.SCTRANSLATOR:
    torch.set_num_threads(1)
    scvi.settings.seed = RECIPE["seed"]
    mdata = sct.datasets.pbmc_cite_mini()
    mdata = mdata[mdata.obs["batch"].isin(RECIPE["batches"]).to_numpy()].copy()
    mdata.obs["batch"] = mdata.obs["batch"].cat.remove_unused_categories()
    sct.SCTRANSLATOR.setup_mudata(
        mdata,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "protein_layer": "prot"},
    )
    model = sct.SCTRANSLATOR(mdata)
    model.train(enable_progress_bar=False)
    model.set_model_card(**CARD)
    model.save(output, overwrite=True)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    start = time.process_time()
    model = build(args.output)
    seconds = time.process_time() - start
    size = sum(p.stat().st_size for p in args.output.iterdir())
    start = time.perf_counter()
    sct.SCTRANSLATOR.load_pretrained(str(args.output))
    load_seconds = time.perf_counter() - start
    args.results.mkdir(parents=True, exist_ok=True)
    summary = pd.Series(
        {
            "training_cpu_seconds": round(seconds, 1),
            "epochs": len(model.history["train_loss"]),
            "shipped_bytes": size,
            "load_seconds": round(load_seconds, 2),
            "held_out_pearson_median": round(float(model.protein_reliability.median()), 4),
            "held_out_pearson_mean": round(float(model.protein_reliability.mean()), 4),
        }
    )
    summary.to_csv(args.results / "reference_pbmc.csv", header=["value"])
    model.protein_reliability.round(4).to_csv(args.results / "reference_pbmc_proteins.csv")
    print(summary.to_string())


if __name__ == "__main__":
    with no_pull():  # the script's MuData objects, as sctranslator builds its own
        main()
