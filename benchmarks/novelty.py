"""Novelty of tissues the shipped PBMC reference never saw, and how its intervals follow.

The shipped reference (``SCTRANSLATOR.load_pretrained("pbmc")``: 800 PBMC cells of one lab)
scores RNA-only cells of the corpus built by ``shared/data/rna_corpus/build.sh`` (real raw
counts of six public studies, see its README): two 10x Genomics PBMC samples (another lab),
pan-T cells, bone-marrow CD34+ cells, three lung-lavage (BALF) samples of COVID-19 patients and
pancreas cells; and, as the in-distribution row, the RNA-only PBMC batch p1_0 of the reference's
own lab (``sct.datasets.pbmc_cite_mini()``). Per file and per draw of ``--cells`` cells
(``--seeds``): the median novelty (``get_novelty``; 1 is a typical held-out cell of the
reference), the same for the latent-only novelty of earlier releases (the latent distance to
the training cells over the validation cells' median), the fraction of cells more novel than
90 % of the calibration cells (about 10 % for cells like them), whether
``predict_protein_interval`` warned that many cells are far, the fraction of cells with no
counts in the genes the reference reads (novelty inf), and the median width of the 90 %
intervals over that of p1_0. Ratios of medians to each 10x PBMC file say how much more novel a
tissue is than another lab's PBMC. No proteins are measured in these files: coverage of the
intervals cannot be checked here (``intervals.py`` measures it across PBMC batches).

The novelty definition (latent distance times expression-profile distance, no weight) was
compared with alternatives on tenx_pbmc_4k against balf_C146; the other files report.

    bash ../shared/data/rna_corpus/build.sh ~/.cache/sctranslator/rna_corpus .venv/bin/python
    python benchmarks/novelty.py ~/.cache/sctranslator/rna_corpus --seeds 0 1 2 --cells 1000

Never run from tests or CI (the corpus is downloaded once by ``build.sh``).
"""

from __future__ import annotations

import argparse
import datetime
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

import sctranslator as sct
from sctranslator._mudata import no_pull
from sctranslator.model._prediction import encode

FILES = (
    "tenx_pbmc_4k",
    "tenx_pbmc_3k",
    "tenx_t_4k_small",
    "bone_marrow_cd34",
    "balf_C144",
    "balf_C146",
    "balf_C149",
    "pancreas",
)
PBMC = ("tenx_pbmc_4k", "tenx_pbmc_3k")


@torch.inference_mode()
def latent_typical(reference: sct.SCTRANSLATOR) -> float:
    """Median latent distance of the reference's validation cells (latent-only novelty)."""
    mdata = sct.datasets.pbmc_cite_mini()
    mdata = mdata[mdata.obs["batch"].isin(["p3_0", "p4_0"]).to_numpy()]
    rna = mdata["rna"][np.sort(reference.validation_indices)].copy()
    return float(np.median(latent_distance(reference, rna)))


@torch.inference_mode()
def latent_distance(reference: sct.SCTRANSLATOR, rna: ad.AnnData) -> np.ndarray:
    """Mean distance of each cell's latent to its 10 nearest training latents."""
    query = reference._query(rna, None)
    distance = [
        reference.calibration.latent_distance(e["z"])
        for e in encode(reference.module, query, None)
    ]
    return torch.cat(distance).numpy()


def score(reference: sct.SCTRANSLATOR, rna: ad.AnnData, typical: float) -> dict[str, float]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        novelty = reference.get_novelty(rna).to_numpy()
        lower, upper = reference.predict_protein_interval(rna, level=0.9)
    warned = any("farther from the training cells" in str(w.message) for w in caught)
    calibration = reference.calibration.novelty_reference.numpy()
    latent = latent_distance(reference, rna) / typical
    width = (upper - lower).to_numpy()
    return {
        "median_novelty": float(np.median(novelty)),
        "median_latent_novelty": float(np.median(latent)),
        "fraction_above_q90": float(np.mean(novelty > np.quantile(calibration, 0.9))),
        "novelty_warning": float(warned),
        "fraction_unread": float(np.mean(np.isinf(novelty))),
        "median_width_0.9": float(np.median(width[np.isfinite(width)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", type=Path, help="folder written by rna_corpus/build.sh")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cells", type=int, default=1000, help="cells drawn per file and seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    missing = [f for f in FILES if not (args.corpus / f"{f}.h5ad").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{args.corpus} lacks {missing}: build the corpus with "
            "`bash ../shared/data/rna_corpus/build.sh <folder> .venv/bin/python`."
        )
    reference = sct.SCTRANSLATOR.load_pretrained("pbmc", accelerator="cpu")
    typical = latent_typical(reference)
    mdata = sct.datasets.pbmc_cite_mini()
    files = {"p1_0 (reference lab)": mdata["rna"][(mdata.obs["batch"] == "p1_0").to_numpy()]}
    files.update({name: ad.read_h5ad(args.corpus / f"{name}.h5ad") for name in FILES})
    rows = []
    for name, cells in files.items():
        for seed in args.seeds:
            draw = np.random.default_rng(seed).choice(
                cells.n_obs, min(args.cells, cells.n_obs), replace=False
            )
            row = score(reference, cells[np.sort(draw)].copy(), typical)
            rows.append({"file": name, "seed": seed, "cells": len(draw), **row})
            print(rows[-1], flush=True)
    runs = pd.DataFrame(rows)
    own = runs[runs["file"] == "p1_0 (reference lab)"].set_index("seed")["median_width_0.9"]
    runs["width_over_p1_0"] = runs["median_width_0.9"] / runs["seed"].map(own)
    for pbmc in PBMC:
        for column in ("median_novelty", "median_latent_novelty"):
            base = runs[runs["file"] == pbmc].set_index("seed")[column]
            runs[f"{column}_over_{pbmc}"] = runs[column] / runs["seed"].map(base)
    scores = [c for c in runs.columns if c not in ("file", "seed", "cells", "median_width_0.9")]
    grouped = runs.groupby("file", sort=False)[scores]
    mean, sd = grouped.mean(), grouped.std().fillna(0.0)
    table = mean.round(2).astype(str) + " ± " + sd.round(2).astype(str)
    stamp = datetime.date.today().isoformat()
    print(f"\nNovelty with the shipped reference, {stamp}\n{table.to_string()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.round(4).to_csv(out / "novelty_runs.csv", index=False)
    table.to_csv(out / "novelty.csv")
    (out / "novelty.md").write_text(
        f"Measured {stamp} (`benchmarks/novelty.py <corpus> --seeds "
        f"{' '.join(map(str, args.seeds))} --cells {args.cells} --threads {args.threads}`), "
        f"mean ± sd over {len(args.seeds)} draws of cells; one row per file.\n\n"
        + table.to_markdown()
        + "\n"
    )


if __name__ == "__main__":
    with no_pull():
        main()
