"""Peak memory of ``sct.data.ingest`` and of training from the store, against the data's size.

Writes synthetic ``.h5ad`` files (``--genes`` genes; each cell has ``--nnz`` RNA counts at
random genes, in CSR ``X``; ``--proteins`` dense protein counts as a DataFrame in
``obsm["protein"]``; ``obs["batch"]``): ``--cells`` cells (seed 0), the same three times as
large (seed 1), and two more of ``--cells`` cells (seeds 2, 3). Then, each in a fresh
process whose peak resident memory is read from the kernel (``VmHWM``, the process's own
high-water mark; see :func:`run_worker`):

- ``import``: ``import sctranslator`` and tiledbsoma only, the floor of every row;
- ingest of one file, of the file three times as large, and of three files of one size
  (``sct.data.ingest``, fresh store);
- training on each store: ``sct.SCTRANSLATOR(CellStore(store)).train(max_epochs=1)``
  with ``--train-batches`` minibatches of 128 cells and ``--val-batches`` validation
  minibatches, post-training steps included;

next to the size of each input's matrices: stored values (RNA non-zeros plus protein
entries) x 12 bytes (a ``float32`` value and an ``int64`` column index each, as a whole file
held in memory costs at least). The target: the extra peak of the larger inputs is less than
half their extra matrix size. Last, the big file is ingested once more in one piece (one
TileDB fragment) and the two stores are read alternately in minibatches of 16 runs of 64
cells (the store loader's pattern), ``--repeats`` times: whether the pieces slow reads.

Writes ``ingest_memory.csv`` and ``ingest_memory.md`` into ``--out``; data files and stores
go to ``--workdir`` (data files are reused when present).

    OMP_NUM_THREADS=1 python benchmarks/ingest_memory.py [--cells 40000] [--nnz 250]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sctranslator._io import write_atomic

SETUP = {"protein_expression_obsm_key": "protein", "batch_key": "batch"}
BYTES_PER_VALUE = 12
RUN, RUNS = 64, 16


# ------------------------------------------------------------------------------ data files
def write_file(path: Path, *, n_cells: int, n_genes: int, nnz: int, n_proteins: int, seed: int):
    """A synthetic file of ``n_cells`` cells, written through a temporary name."""
    rng = np.random.default_rng(seed)
    indices = np.empty((n_cells, nnz), dtype=np.int32)
    for start in range(0, n_cells, 10_000):  # nnz distinct genes per cell, sorted
        block = rng.random((min(10_000, n_cells - start), n_genes)).argpartition(nnz, axis=1)
        indices[start : start + len(block)] = np.sort(block[:, :nnz], axis=1)
    counts = rng.geometric(0.4, size=n_cells * nnz).astype(np.float32)
    indptr = np.arange(0, n_cells * nnz + 1, nnz, dtype=np.int64)
    rna = sp.csr_matrix((counts, indices.ravel(), indptr), shape=(n_cells, n_genes))
    names = pd.Index([f"s{seed}_c{i}" for i in range(n_cells)])
    adata = ad.AnnData(
        X=rna,
        obs=pd.DataFrame({"batch": pd.Categorical(rng.choice(["a", "b"], n_cells))}, index=names),
        var=pd.DataFrame(index=[f"GENE{j:05d}" for j in range(n_genes)]),
    )
    adata.obsm["protein"] = pd.DataFrame(
        rng.poisson(20, size=(n_cells, n_proteins)).astype(np.float32),
        index=names,
        columns=[f"PROT{j:03d}" for j in range(n_proteins)],
    )
    temporary = path.with_suffix(".partial")
    adata.write_h5ad(temporary)
    os.replace(temporary, path)


def data_files(args) -> dict[str, Path]:
    """The four input files, written unless already there."""
    sizes = {0: args.cells, 1: 3 * args.cells, 2: args.cells, 3: args.cells}
    paths = {}
    for seed, n_cells in sizes.items():
        path = args.workdir / f"synthetic_{n_cells}_{args.nnz}_{seed}.h5ad"
        if not path.exists():
            start = time.perf_counter()
            write_file(
                path,
                n_cells=n_cells,
                n_genes=args.genes,
                nnz=args.nnz,
                n_proteins=args.proteins,
                seed=seed,
            )
            print(f"  wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
        paths[seed] = path
    return paths


def stored_values(path: Path) -> tuple[int, int]:
    """``(cells, stored values)`` of a file: RNA non-zeros plus protein entries."""
    import h5py

    with h5py.File(path, "r") as handle:
        n_cells, _ = handle["X"].attrs["shape"]
        nnz = handle["X/indptr"][-1]
        proteins = len(handle["obsm/protein"].attrs["column-order"])
    return int(n_cells), int(nnz + n_cells * proteins)


# -------------------------------------------------------------------------------- workers
def import_worker() -> dict:
    import tiledbsoma  # noqa: F401

    import sctranslator  # noqa: F401

    return {}


def ingest_worker(files: list[str], store: str, one_piece: bool = False) -> dict:
    import sctranslator as sct
    from sctranslator.data import _ingest

    if one_piece:  # the whole file in one write: one TileDB fragment
        _ingest._WRITE_CELLS = _ingest._WRITE_VALUES = 2**62
    sct.data.ingest(files, store, setup=SETUP)
    fragments = Path(store) / "ms" / "features" / "X" / "counts" / "__fragments"
    return {"fragments": len(list(fragments.iterdir()))}


def train_worker(store: str, train_batches: int, val_batches: int) -> dict:
    import scvi
    import torch

    import sctranslator as sct

    torch.set_num_threads(1)
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(sct.data.CellStore(store))
    model.train(
        max_epochs=1,
        accelerator="cpu",
        enable_progress_bar=False,
        limit_train_batches=train_batches,
        limit_val_batches=val_batches,
    )
    return {"train_cells": int(model.train_indices.size)}


def reads_worker(stores: dict[str, str], repeats: int) -> list[dict]:
    """Minibatch reads (16 runs of 64 cells) of each store, alternating, ``repeats`` times."""
    import torch

    import sctranslator as sct

    torch.set_num_threads(1)
    opened = {name: sct.data.CellStore(uri) for name, uri in stores.items()}
    n_obs = min(store.n_obs for store in opened.values())
    rng = np.random.default_rng(0)
    rows = []
    for repeat in range(repeats + 2):  # the first two warm the caches
        starts = rng.integers(0, n_obs - RUN, RUNS)
        cells = np.concatenate([np.arange(s, s + RUN) for s in starts])
        order = list(opened) if repeat % 2 == 0 else list(opened)[::-1]
        for name in order:
            start = time.perf_counter()
            opened[name].read(cells)
            seconds = time.perf_counter() - start
            if repeat >= 2:
                rows.append({"store": name, "repeat": repeat, "ms": 1000 * seconds})
    return rows


WORKERS = {
    "import": import_worker,
    "ingest": ingest_worker,
    "train": train_worker,
    "reads": reads_worker,
}


def run_worker(kind: str, log: Path, script: str = __file__, **kwargs) -> tuple[object, dict]:
    """Run a worker of ``script`` in a fresh process; its result, wall and CPU time, peak RSS.

    ``script`` runs ``worker_main`` on ``--worker``. The peak is the worker's own high-water
    mark (``VmHWM``), read by the worker at its end: ``ru_maxrss`` of a child also counts the
    memory of the parent that spawned it (Linux keeps the larger across ``exec``), which here
    holds the data files it wrote.
    """
    result_path = log.with_suffix(".json")
    result_path.unlink(missing_ok=True)
    payload = json.dumps({"kind": kind, "result": str(result_path), "kwargs": kwargs})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(log, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, script, "--worker", payload],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"The {kind} worker failed (status {status}); log {log}:\n{tail}")
    output = json.loads(result_path.read_text())
    return output["result"], {
        "wall_s": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": output["peak_rss_mib"],
    }


def high_water_mib() -> float:
    """This process's peak resident memory (``VmHWM`` of ``/proc/self/status``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM (Linux only).")


def worker_main(payload: str) -> None:
    spec = json.loads(payload)
    result = WORKERS[spec["kind"]](**spec["kwargs"])
    output = {"result": result, "peak_rss_mib": high_water_mib()}
    Path(spec["result"]).write_text(json.dumps(output))


# ----------------------------------------------------------------------------------- main
def measure(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    paths = data_files(args)
    inputs = {
        "one file": [paths[0]],
        "one file, 3x the cells": [paths[1]],
        "three files": [paths[0], paths[2], paths[3]],
    }
    _, floor = run_worker("import", args.workdir / "import.log")
    rows = [{"input": "(import only)", "step": "import", **floor}]
    for name, files in inputs.items():
        store = args.workdir / f"store_{len(rows)}.soma"
        shutil.rmtree(store, ignore_errors=True)
        sizes = [stored_values(p) for p in files]
        base = {
            "input": name,
            "files": len(files),
            "cells": sum(c for c, _ in sizes),
            "stored values": sum(v for _, v in sizes),
            "input MiB": sum(p.stat().st_size for p in files) / 2**20,
        }
        result, usage = run_worker(
            "ingest", args.workdir / "ingest.log", files=list(map(str, files)), store=str(store)
        )
        rows.append({**base, "step": "ingest", **usage, **result})
        print(rows[-1], flush=True)
        result, usage = run_worker(
            "train",
            args.workdir / "train.log",
            store=str(store),
            train_batches=args.train_batches,
            val_batches=args.val_batches,
        )
        rows.append({**base, "step": "train", **usage, **result})
        print(rows[-1], flush=True)
        if name == "one file, 3x the cells":
            pieces, big = store, base
    whole = args.workdir / "store_one_piece.soma"
    shutil.rmtree(whole, ignore_errors=True)
    result, usage = run_worker(
        "ingest",
        args.workdir / "ingest.log",
        files=[str(paths[1])],
        store=str(whole),
        one_piece=True,
    )
    rows.append(
        {**big, "input": "one file, 3x the cells (one piece)", "step": "ingest", **usage, **result}
    )
    print(rows[-1], flush=True)
    reads, _ = run_worker(
        "reads",
        args.workdir / "reads.log",
        stores={"pieces": str(pieces), "one piece": str(whole)},
        repeats=args.repeats,
    )
    return pd.DataFrame(rows), pd.DataFrame(reads)


def report(args, command: str) -> str:
    table = pd.read_csv(args.out / "ingest_memory.csv")
    reads = pd.read_csv(args.out / "ingest_memory_reads.csv")
    floor = table.loc[table["step"] == "import", "peak_rss_mib"].iloc[0]
    data = table[table["step"] != "import"].copy()
    data["matrix MiB"] = data["stored values"] * BYTES_PER_VALUE / 2**20
    wide = data[data["step"] == "ingest"].set_index("input")[
        ["files", "cells", "stored values", "matrix MiB", "input MiB", "fragments"]
    ]
    for step in ("ingest", "train"):
        part = data[data["step"] == step].set_index("input")
        wide[f"{step} peak MiB"] = part["peak_rss_mib"]
        wide[f"{step} wall s"] = part["wall_s"]
    wide = wide.reset_index()
    shown = wide.copy()
    for column in ("cells", "stored values"):
        shown[column] = shown[column].astype(int).map("{:,}".format)
    for column in [c for c in shown if c.endswith(("MiB", "wall s"))]:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}")
    shown["fragments"] = shown["fragments"].astype(int)
    lines = []
    by = wide.set_index("input")
    small = by.loc["one file"]
    for larger in ("one file, 3x the cells", "three files"):
        other = by.loc[larger]
        extra = other["matrix MiB"] - small["matrix MiB"]
        for step in ("ingest", "train"):
            grown = other[f"{step} peak MiB"] - small[f"{step} peak MiB"]
            verdict = "met" if grown < extra / 2 else "NOT met"
            lines.append(
                f"- {larger} against one file, {step}: peak {grown:+,.0f} MiB for "
                f"{extra:,.0f} MiB more matrix ({grown / extra:+.2f} of it; target < 0.5: "
                f"{verdict})."
            )
    speed = reads.groupby("store", sort=False)["ms"].agg(["mean", "std"])
    ratio = (
        reads[reads.store == "pieces"].set_index("repeat")["ms"]
        / reads[reads.store == "one piece"].set_index("repeat")["ms"]
    )
    fragments = by["fragments"]
    read_lines = [
        f"- {name} ({int(fragments.loc[label])} fragments): {row['mean']:.1f} ± "
        f"{row['std']:.1f} ms per minibatch"
        for name, row in speed.iterrows()
        for label in [
            "one file, 3x the cells" if name == "pieces" else "one file, 3x the cells (one piece)"
        ]
    ]
    read_lines.append(f"- ratio pieces / one piece: {ratio.mean():.2f} ± {ratio.std():.2f}")
    stamp = datetime.date.today().isoformat()
    text = "\n".join(
        [
            f"`{command}`",
            "",
            f"{stamp}; {args.genes:,} genes, {args.nnz} RNA counts per cell, "
            f"{args.proteins} proteins; torch threads 1. Peak resident memory of a fresh "
            f"process per cell of the table; importing sctranslator alone peaks at "
            f"{floor:,.0f} MiB. Matrix MiB: stored values x {BYTES_PER_VALUE} bytes. Training: "
            f"one epoch of {args.train_batches} minibatches of 128 cells, "
            f"{args.val_batches} validation minibatches, post-training steps included.",
            "",
            shown.to_markdown(index=False),
            "",
            *lines,
            "",
            f"Reads of the large file's store, written in pieces against in one piece, "
            f"alternating, {args.repeats} minibatches of {RUNS} runs of {RUN} cells each:",
            "",
            *read_lines,
            "",
        ]
    )
    write_atomic(args.out / "ingest_memory.md", lambda p: Path(p).write_text(text), overwrite=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=40_000, help="cells of the small files")
    parser.add_argument("--nnz", type=int, default=250, help="RNA counts per cell")
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--proteins", type=int, default=50)
    parser.add_argument("--train-batches", type=int, default=50)
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sctranslator_ingest_memory"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return
    command = "OMP_NUM_THREADS=1 python " + " ".join(
        shlex.quote(a) for a in sys.argv if a != "--report"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.report:
        table, reads = measure(args)
        for name, frame in (("ingest_memory", table), ("ingest_memory_reads", reads)):
            write_atomic(
                args.out / f"{name}.csv",
                lambda p, f=frame: f.round(3).to_csv(p, index=False),
                overwrite=True,
            )
    print(report(args, command))


if __name__ == "__main__":
    main()
