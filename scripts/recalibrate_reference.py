"""Refit the shipped PBMC reference's interval calibration from its own cells, weights unchanged.

The calibration (``calibration.safetensors``) is what :meth:`SCTRANSLATOR.train` fits after
training on the validation cells: per-protein error scales, conformal scores and the anchors
of novelty. When what it stores changes (e.g. the anchors' expression profiles, which novelty
reads), this script refits it for the shipped reference exactly as training would, from the
training and validation cells recorded in the reference (the recipe of
``scripts/build_reference.py``: batches p3_0 and p4_0 of ``sct.datasets.pbmc_cite_mini()``,
``scvi.settings.seed = 0``, one torch thread). The weights, read-out and card are not touched;
only ``calibration.safetensors`` is rewritten.

    python scripts/recalibrate_reference.py   # rewrites references/pbmc/calibration.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import scvi
import torch
from build_reference import OUTPUT, RECIPE
from safetensors.torch import save_file

import sctranslator as sct
from sctranslator._mudata import no_pull
from sctranslator._warnings import quiet_banners
from sctranslator.components import component_state
from sctranslator.model import _held_out


def recalibrate(folder: Path = OUTPUT) -> sct.SCTRANSLATOR:
    torch.set_num_threads(1)
    with quiet_banners():
        scvi.settings.seed = RECIPE["seed"]
    mdata = sct.datasets.pbmc_cite_mini()
    mdata = mdata[mdata.obs["batch"].isin(RECIPE["batches"]).to_numpy()].copy()
    mdata.obs["batch"] = mdata.obs["batch"].cat.remove_unused_categories()
    model = sct.SCTRANSLATOR.load(folder, adata=mdata, accelerator="cpu")
    _held_out.calibrate_on_validation_cells(model, _held_out.training_anchors(model))
    path = folder / "calibration.safetensors"
    save_file(component_state(model.calibration), str(path))
    path.chmod(0o644)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=OUTPUT)
    args = parser.parse_args()
    model = recalibrate(args.folder)
    reference = model.calibration.novelty_reference
    print(
        f"Recalibrated {args.folder}: {len(model.calibration.scores)} scores, "
        f"{len(model.calibration.anchors)} anchors, {model.calibration.profiles.shape[1]} "
        f"profile genes; calibration novelty 99th percentile {reference.quantile(0.99):.2f}."
    )


if __name__ == "__main__":
    with no_pull():
        main()
