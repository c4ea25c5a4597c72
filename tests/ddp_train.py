"""Train on PBMC batch p3_0 with one process or two DDP processes on CPU; write a JSON summary.

Run by ``tests/test_scale.py`` in a subprocess, because Lightning's ``ddp`` strategy starts
the other processes by running this script again::

    python tests/ddp_train.py OUT_DIR DEVICES EPOCHS

With ``DEVICES`` processes each minibatch holds ``32 // DEVICES`` cells per process, so the
effective batch (and the number of optimiser steps per epoch) is the same for both runs.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

torch.set_num_threads(1)
# A worker process: its stderr is only read when it fails, and each of the two ranks
# would repeat the same dependency warnings there.
warnings.filterwarnings("ignore")

import scvi  # noqa: E402
from helpers import batch, setup  # noqa: E402

import sctranslator as sct  # noqa: E402


def train_and_score(devices: int, epochs: int, log_dir: Path) -> dict | None:
    """Train with ``devices`` CPU processes; on the main process, a summary of the run."""
    scvi.settings.seed = 0
    pbmc = sct.datasets.pbmc_cite_mini()
    train, test = setup(batch(pbmc, "p3_0")), batch(pbmc, "p4_0")
    model = sct.SCTRANSLATOR(train, n_hidden=32, max_genes=64)
    ddp = {"strategy": "ddp"} if devices > 1 else {}
    model.train(
        max_epochs=epochs,
        accelerator="cpu",
        devices=devices,
        batch_size=32 // devices,
        enable_progress_bar=False,
        log_save_dir=str(log_dir),
        plan_kwargs={"lr": 3e-3},
        **ddp,
    )
    trainer = model.trainer
    if not trainer.is_global_zero:
        return None
    measured = sct.pp.normalize_protein(test["prot"], method="clr", layer="counts")
    scores = sct.metrics.evaluate(model.predict_protein(test["rna"]), measured)
    return {
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
        "backend": getattr(trainer.strategy, "process_group_backend", None),
        "train_batches_per_epoch": trainer.num_training_batches,
        "epochs": len(model.history["pearson_validation"]),
        "pearson_validation": model.history["pearson_validation"]["pearson_validation"].tolist(),
        "test_protein_pearson": float(scores["protein_pearson_mean"]),
    }


if __name__ == "__main__":
    out_dir, devices, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    summary = train_and_score(devices, epochs, out_dir / "logs")
    if summary is not None:
        (out_dir / f"summary_{devices}.json").write_text(json.dumps(summary))
