"""Train on a cell store with one process or two DDP processes on CPU; record the cells seen.

Run by ``tests/test_store_scale.py`` in a subprocess, because Lightning's ``ddp`` strategy
starts the other processes by running this script again::

    python tests/ddp_store_train.py STORE OUT_DIR DEVICES EPOCHS

Every process writes ``cells_<devices>_<rank>.json``: for each epoch, a fingerprint of each
training cell it saw (its RNA counts' bytes), so that the test can check that the processes
share out each epoch's cells without overlap.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore")  # each rank would repeat the same dependency warnings

import lightning.pytorch as pl  # noqa: E402
import scvi  # noqa: E402

import sctranslator as sct  # noqa: E402


class RecordCells(pl.Callback):
    """Fingerprint every training cell, per epoch."""

    def __init__(self):
        self.cells: dict[int, list[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rows = torch.nan_to_num(batch["X"]).cpu().numpy()
        self.cells.setdefault(trainer.current_epoch, []).extend(
            hashlib.sha1(row.tobytes()).hexdigest() for row in rows
        )


def train(store: str, out_dir: Path, devices: int, epochs: int) -> None:
    """Train with ``devices`` CPU processes and write each process's record."""
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(sct.data.CellStore(store), n_hidden=32, max_genes=64)
    record = RecordCells()
    model.train(
        max_epochs=epochs,
        accelerator="cpu",
        devices=devices,
        batch_size=64 // devices,
        enable_progress_bar=False,
        log_save_dir=str(out_dir / "logs"),
        callbacks=[record],
        **({"strategy": "ddp"} if devices > 1 else {}),
    )
    trainer = model.trainer
    summary = {
        "world_size": trainer.world_size,
        "backend": getattr(trainer.strategy, "process_group_backend", None),
        "train_batches_per_epoch": trainer.num_training_batches,
        "n_train": len(model.train_indices),
        "cells": record.cells,
    }
    if trainer.is_global_zero:
        summary["pearson_validation"] = model.history["pearson_validation"][
            "pearson_validation"
        ].tolist()
    path = out_dir / f"cells_{devices}_{trainer.global_rank}.json"
    path.write_text(json.dumps(summary))


if __name__ == "__main__":
    train(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
