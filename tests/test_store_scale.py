"""Training on a cell store: DDP over two CPU processes, resuming, and the command line."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import scvi
import torch
from helpers import MUDATA_SETUP, run_ddp_script
from lightning.pytorch.callbacks import ModelCheckpoint

import sctranslator as sct
from sctranslator._cli import main


class RecordCells(pl.Callback):
    """Fingerprint the cells of every training minibatch; optionally fail after a step."""

    def __init__(self, fail_after: int | None = None):
        self.batches, self.fail_after = [], fail_after

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rows = torch.nan_to_num(batch["X"]).numpy()
        cells = [hashlib.sha1(row.tobytes()).digest() for row in rows]
        self.batches.append((trainer.current_epoch, cells))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.fail_after:
            raise RuntimeError("interrupted")


def per_epoch(batches) -> dict[int, list]:
    epochs = {}
    for epoch, cells in batches:
        epochs.setdefault(epoch, []).extend(cells)
    return epochs


@pytest.mark.slow
def test_store_trains_under_ddp_with_each_cell_once_per_epoch(store, tmp_path):
    run_ddp_script("ddp_store_train.py", store.uri, str(tmp_path), "2", "3", cwd=tmp_path)
    ranks = [json.loads((tmp_path / f"cells_2_{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world_size"], r["backend"]) for r in ranks] == [(2, "gloo")] * 2
    assert ranks[0]["train_batches_per_epoch"] == ranks[1]["train_batches_per_epoch"]
    n_train = ranks[0]["n_train"]
    for epoch in ("0", "1", "2"):
        first, second = (set(r["cells"][epoch]) for r in ranks)
        assert len(ranks[0]["cells"][epoch]) == len(first) == len(second)  # none twice
        assert not first & second  # the processes share the cells out
        assert n_train - 1 <= len(first | second) <= n_train  # at most one cell left over
    history = ranks[0]["pearson_validation"]
    assert len(history) == 3 and history[-1] > history[0]


@pytest.mark.slow
def test_resumed_training_sees_each_cell_once_per_epoch(store, tmp_path, monkeypatch):
    monkeypatch.setattr(scvi.settings, "logging_dir", tmp_path / "logs")  # its checkpoints
    settings = {
        "max_epochs": 2,
        "batch_size": 100,
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "early_stopping": False,
    }
    scvi.settings.seed = 0
    interrupted = RecordCells(fail_after=14)  # 11 minibatches per epoch: mid-epoch 2
    checkpoints = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1)
    with pytest.raises(RuntimeError, match="interrupted"):
        sct.SCTRANSLATOR(store, n_hidden=32).train(
            callbacks=[interrupted, checkpoints], enable_checkpointing=True, **settings
        )
    checkpoint = tmp_path / "epoch=1-step=12.ckpt"
    assert checkpoint.exists(), sorted(os.listdir(tmp_path))
    scvi.settings.seed = 0
    resumed = RecordCells()
    model = sct.SCTRANSLATOR(store, n_hidden=32)
    model.train(callbacks=[resumed], ckpt_path=str(checkpoint), **settings)
    scvi.settings.seed = 0
    uninterrupted = RecordCells()
    sct.SCTRANSLATOR(store, n_hidden=32).train(callbacks=[uninterrupted], **settings)

    before = interrupted.batches[:12]  # the minibatches the checkpoint trained on
    combined = per_epoch(before + resumed.batches)
    reference = per_epoch(uninterrupted.batches)
    for epoch in (0, 1):
        assert len(combined[epoch]) == len(set(combined[epoch]))  # no cell twice
        assert set(combined[epoch]) == set(reference[epoch])  # and none missed
    assert model.history["pearson_validation"].index[-1] == 1  # the resumed run's last epoch


def test_cli_ingests_appends_and_trains_on_a_list_or_a_store(sources, tmp_path, capsys):
    files = [shutil.copy(sources[name].path, tmp_path) for name in ("p3_0", "p4_0", "p1_0")]
    base = {"setup": MUDATA_SETUP, "store": "atlas.soma"}
    train = {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False}
    (tmp_path / "ingest.json").write_text(json.dumps({**base, "input": files[:2]}))
    assert main(["ingest", "--config", str(tmp_path / "ingest.json")]) == 0
    assert sct.data.CellStore(tmp_path / "atlas.soma").datasets == ["p3_0", "p4_0"]
    assert main(["ingest", "--config", str(tmp_path / "ingest.json")]) == 1
    assert "--append" in capsys.readouterr().err
    (tmp_path / "more.json").write_text(json.dumps({**base, "input": [files[2]]}))
    assert main(["ingest", "--config", str(tmp_path / "more.json"), "--append"]) == 0
    assert sct.data.CellStore(tmp_path / "atlas.soma").n_obs == 1200

    reuse = {**base, "input": files, "output": "reused", "train": train}
    (tmp_path / "reuse.json").write_text(json.dumps(reuse))
    stamp = os.stat(tmp_path / "atlas.soma").st_mtime_ns
    assert main(["train", "--config", str(tmp_path / "reuse.json")]) == 0  # the store as is
    assert os.stat(tmp_path / "atlas.soma").st_mtime_ns == stamp
    Path(files[0]).touch()  # a changed input: the store no longer holds it as it is
    reuse["output"] = "changed"
    (tmp_path / "reuse.json").write_text(json.dumps(reuse))
    assert main(["train", "--config", str(tmp_path / "reuse.json")]) == 1
    assert "--overwrite" in capsys.readouterr().err

    config = {"input": "atlas.soma", "output": "from_store", "train": train}  # no setup
    (tmp_path / "store.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "store.json")]) == 0
    model = sct.SCTRANSLATOR.load(tmp_path / "from_store")
    assert len(model.module.protein_ids) == 224

    listed = {**base, "input": files, "output": "from_list", "train": train}
    listed.pop("store")  # a temporary store, removed after training
    (tmp_path / "list.json").write_text(json.dumps(listed))
    assert main(["train", "--config", str(tmp_path / "list.json")]) == 0
    assert (tmp_path / "from_list" / "model.json").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".sctranslator-")]

    no_setup = {"input": files, "output": "never"}
    (tmp_path / "no_setup.json").write_text(json.dumps(no_setup))
    assert main(["train", "--config", str(tmp_path / "no_setup.json")]) == 1
    assert "lacks the key 'setup'" in capsys.readouterr().err

    missing = {**listed, "input": [files[0], "missing.h5ad"], "output": "never"}
    (tmp_path / "missing.json").write_text(json.dumps(missing))
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 1
    assert "missing.h5ad" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
