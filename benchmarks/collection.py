"""A collection of files with different panels in one cell store: ingest, memory, throughput.

Writes ``--files`` synthetic ``.h5ad`` files of ``--cells`` cells each (rows resampled from
the paired PBMC cells of batches p3_0 and p4_0, so the genes and sparsity are real; sparse
RNA counts in ``X``, proteins as a DataFrame in ``obsm["protein"]``). Every file has its own
panel, a seeded random 80 % of the 500 genes and 60 % of the 224 proteins, and every tenth
file from the third on (index 2, 12...) is RNA-only. Then

1. ingest: for each F in ``--files``, ``sct.data.ingest`` writes the first F files into a
   fresh store, in a fresh process: wall time, CPU time and peak RSS (the worker's own
   ``VmHWM``: ``os.wait4``'s ``ru_maxrss`` also counts this script, which wrote the files),
   cells per second and the store's size on disk;
2. training memory: for each F, in a fresh process, ``sct.SCTRANSLATOR(CellStore(store))``
   trains one epoch of ``--train-batches`` minibatches of 128 cells (``--val-batches``
   validation minibatches), with the post-training steps (panel statistics over all training
   cells, reference mapping, calibration and reliability on validation cells): peak RSS, which
   should stay flat as F grows, given as a ratio to the peak at the smallest F;
3. throughput: in one process, the same ``--throughput-cells`` cells of the first file
   trained from an in-memory AnnData (CSR counts in ``X``, proteins in ``obsm``) and from a
   store holding exactly those cells, alternating, ``--repeats`` times: training-loop cells
   per CPU second (``--throughput-batches`` minibatches, no validation batches) and the
   ratio store / in-memory of each repetition, with the time of the set-up (before the first
   minibatch) and of the post-training steps given apart.

Torch uses ``--threads`` threads, set again before each method. Prints the tables and writes
``collection.csv`` (every row) and ``collection.md`` into ``--out``; the data files and
stores go to ``--workdir`` (data files are reused when present).

    python benchmarks/collection.py [--cells 100000] [--files 1 3 10] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import ingest_memory  # the fresh-process runner (benchmarks/ is the script's folder)
import numpy as np
import pandas as pd
import scipy.sparse as sp

GENE_FRACTION, PROTEIN_FRACTION = 0.8, 0.6
BATCH_SIZE = 128
SETUP = {"protein_expression_obsm_key": "protein", "batch_key": "batch"}


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _peak_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss`` is in KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


# ------------------------------------------------------------------------------ data files
def rna_only(index: int) -> bool:
    """Every tenth file from the third on has no proteins."""
    return index % 10 == 2


def write_file(path: Path, index: int, n_cells: int) -> None:
    """File ``index``: ``n_cells`` paired PBMC cells resampled on its own random panel."""
    import sctranslator as sct

    pbmc = sct.datasets.pbmc_cite_mini()
    paired = pbmc[pbmc.obs["batch"].isin(["p3_0", "p4_0"])]
    rna = sp.csr_matrix(paired["rna"].layers["counts"], dtype=np.float32)
    proteins = np.asarray(paired["prot"].layers["counts"], dtype=np.float32)
    batches = paired.obs["batch"].astype(str).to_numpy()
    rng = np.random.default_rng([0, index])
    n_genes, n_proteins = rna.shape[1], proteins.shape[1]
    genes = np.sort(rng.choice(n_genes, round(GENE_FRACTION * n_genes), replace=False))
    panel = np.sort(rng.choice(n_proteins, round(PROTEIN_FRACTION * n_proteins), replace=False))
    rna = rna[:, genes]
    source = np.flatnonzero(np.asarray(rna.sum(1)).ravel() > 0)  # no empty cells on the panel
    picks = source[rng.integers(0, len(source), n_cells)]
    names = pd.Index([f"f{index}_c{i}" for i in range(n_cells)])
    adata = ad.AnnData(
        X=rna[picks],
        obs=pd.DataFrame({"batch": pd.Categorical(batches[picks])}, index=names),
        var=pd.DataFrame(index=np.asarray(paired["rna"].var_names)[genes]),
    )
    if not rna_only(index):
        adata.obsm["protein"] = pd.DataFrame(
            proteins[np.ix_(picks, panel)],
            index=names,
            columns=np.asarray(paired["prot"].var_names)[panel],
        )
    write_h5ad(adata, path)


def write_h5ad(adata: ad.AnnData, path: Path) -> None:
    """Write ``adata`` to ``path`` through a temporary file, so no partial file is left."""
    temporary = path.with_suffix(".partial")
    with warnings.catch_warnings():  # protein names such as "CD11a/CD18" become h5 keys
        warnings.filterwarnings("ignore", "Forward slashes", FutureWarning)
        adata.write_h5ad(temporary)
    os.replace(temporary, path)


def data_files(workdir: Path, n_files: int, n_cells: int) -> list[Path]:
    """The first ``n_files`` files, written one at a time unless already there."""
    paths = []
    for index in range(n_files):
        path = workdir / f"cells{n_cells}_{index}.h5ad"
        if not path.exists():
            start = time.perf_counter()
            write_file(path, index, n_cells)
            print(f"  wrote {path} in {time.perf_counter() - start:.1f} s", flush=True)
        paths.append(path)
    return paths


# -------------------------------------------------------------------------------- workers
def _timer():
    """A Lightning callback timing the training loop and its minibatch steps."""
    import lightning.pytorch as pl

    class PhaseTimer(pl.Callback):
        def __init__(self):
            super().__init__()
            self.train_start = self.train_end = self.batch_start = None
            self.step_wall = self.step_cpu = 0.0
            self.batches = 0

        def on_train_start(self, trainer, pl_module):
            self.train_start = _clock()
            self.peak_setup = _peak_mib()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.batch_start = _clock()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            wall, cpu = _since(self.batch_start)
            self.step_wall += wall
            self.step_cpu += cpu
            self.batches += 1

        def on_train_end(self, trainer, pl_module):
            self.train_end = _clock()
            self.peak_loop = _peak_mib()

    return PhaseTimer()


def timed_train(model, threads: int, **kwargs) -> dict:
    """Train ``model``; wall and CPU seconds of its set-up, training loop and post-training."""
    import torch

    timer = _timer()
    torch.set_num_threads(threads)
    peak_before = _peak_mib()
    start = _clock()
    model.train(
        max_epochs=1,
        batch_size=BATCH_SIZE,
        accelerator="cpu",
        enable_progress_bar=False,
        callbacks=[timer],
        **kwargs,
    )
    end = _clock()
    times = {
        "total": (end[0] - start[0], end[1] - start[1]),
        "setup": (timer.train_start[0] - start[0], timer.train_start[1] - start[1]),
        "loop": (
            timer.train_end[0] - timer.train_start[0],
            timer.train_end[1] - timer.train_start[1],
        ),
        "post": (end[0] - timer.train_end[0], end[1] - timer.train_end[1]),
        "steps": (timer.step_wall, timer.step_cpu),
    }
    result = {
        f"{phase}_{kind}_s": v
        for phase, (w, c) in times.items()
        for kind, v in (("wall", w), ("cpu", c))
    }
    # Peak RSS so far at the end of each phase: the phase whose value first jumps raised it.
    result |= {
        "peak_before_mib": peak_before,
        "peak_setup_mib": timer.peak_setup,
        "peak_loop_mib": timer.peak_loop,
        "peak_post_mib": _peak_mib(),
    }
    result["batches"] = timer.batches
    result["loop_cells"] = timer.batches * BATCH_SIZE
    return result


def ingest_worker(files: list[str], store: str) -> dict:
    """Ingest ``files`` into the fresh store ``store``."""
    import sctranslator as sct

    sct.data.ingest(files, store, setup=SETUP)
    return {}


def train_worker(store: str, threads: int, train_batches: int, val_batches: int) -> dict:
    """Train one short epoch on ``store`` from disk, post-training steps included."""
    import scvi
    import torch

    import sctranslator as sct

    torch.set_num_threads(threads)
    scvi.settings.seed = 0
    start = _clock()
    cells = sct.data.CellStore(store)
    model = sct.SCTRANSLATOR(cells)
    build_wall, build_cpu = _since(start)
    result = timed_train(
        model, threads, limit_train_batches=train_batches, limit_val_batches=val_batches
    )
    return {
        "build_wall_s": build_wall,
        "build_cpu_s": build_cpu,
        "train_cells": int(model.train_indices.size),
        "validation_cells": int(model.validation_indices.size),
        **result,
    }


def in_memory(path: str):
    """The cells of ``path`` as an AnnData set up for SCTRANSLATOR (CSR counts in ``X``)."""
    import sctranslator as sct

    adata = ad.read_h5ad(path)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    sct.SCTRANSLATOR.setup_anndata(adata, protein_expression_obsm_key="protein", batch_key="batch")
    return adata


def throughput_worker(
    path: str, store: str, threads: int, batches: int, repeats: int, profile: str | None
) -> list[dict]:
    """Alternate in-memory and store training on the same cells, ``repeats`` times."""
    import scvi
    import torch

    import sctranslator as sct

    torch.set_num_threads(threads)
    adata = in_memory(path)
    cells = sct.data.CellStore(store)
    assert cells.n_obs == adata.n_obs, (cells.n_obs, adata.n_obs)
    sources = {"in-memory": lambda: adata, "store": lambda: cells}
    train = {"limit_train_batches": batches, "limit_val_batches": 0, "early_stopping": False}
    for method, source in sources.items():  # warm-up: first-call costs, no validation
        scvi.settings.seed = 0
        torch.set_num_threads(threads)
        sct.SCTRANSLATOR(source()).train(
            max_epochs=1,
            limit_train_batches=2,
            train_size=1.0,
            accelerator="cpu",
            enable_progress_bar=False,
        )
        print(f"  warmed up {method}", flush=True)
    rows = []
    for repeat in range(repeats):
        order = list(sources) if repeat % 2 == 0 else list(sources)[::-1]
        for method in order:
            scvi.settings.seed = repeat
            torch.set_num_threads(threads)
            model = sct.SCTRANSLATOR(sources[method]())
            result = timed_train(model, threads, **train)
            rows.append({"method": method, "repeat": repeat, "cells": adata.n_obs, **result})
            print(f"  {method} repeat {repeat}: {rows[-1]}", flush=True)
    if profile:
        import cProfile
        import pstats

        scvi.settings.seed = 0
        model = sct.SCTRANSLATOR(cells)
        profiler = cProfile.Profile()
        profiler.enable()
        timed_train(model, threads, **train)
        profiler.disable()
        with open(profile, "w") as stream:
            stats = pstats.Stats(profiler, stream=stream).sort_stats("cumulative")
            stats.print_stats(40)
            stats.print_stats("_store|tiledb", 20)  # reading minibatches from the store
    return rows


WORKERS = {"ingest": ingest_worker, "train": train_worker, "throughput": throughput_worker}


def run_worker(kind: str, log: Path, **kwargs) -> tuple[object, dict]:
    """Run a worker in a fresh process; its result, wall and CPU time and peak RSS."""
    return ingest_memory.run_worker(kind, log, script=__file__, **kwargs)


def worker_main(payload: str) -> None:
    """Run a worker; record its result and its own peak RSS (``VmHWM``, see ingest_memory)."""
    spec = json.loads(payload)
    result = WORKERS[spec["kind"]](**spec["kwargs"])
    output = {"result": result, "peak_rss_mib": ingest_memory.high_water_mib()}
    Path(spec["result"]).write_text(json.dumps(output))


# ----------------------------------------------------------------------------------- main
def _mean_sd(values: pd.Series, digits: int = 0) -> str:
    fmt = f"{{:,.{digits}f}}"
    if len(values) < 2:
        return fmt.format(values.mean())
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std())}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=100_000, help="cells per file")
    parser.add_argument("--files", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--train-batches", type=int, default=50)
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--throughput-cells", type=int, default=20_000)
    parser.add_argument("--throughput-batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile one store training")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sctranslator_collection"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = data_files(args.workdir, max(args.files), args.cells)
    rows = []

    for n_files in args.files:
        store = args.workdir / f"store_{n_files}.soma"
        shutil.rmtree(store, ignore_errors=True)
        inputs = [str(p) for p in files[:n_files]]
        _, usage = run_worker(
            "ingest", args.workdir / f"ingest_{n_files}.log", files=inputs, store=str(store)
        )
        n_cells = n_files * args.cells
        rows.append(
            {
                "table": "ingest",
                "files": n_files,
                "cells": n_cells,
                "input_mib": sum(_mib(Path(p)) for p in inputs),
                "store_mib": _mib(store),
                **usage,
                "cells_per_s": n_cells / usage["wall_s"],
                "cells_per_cpu_s": n_cells / usage["cpu_s"],
            }
        )
        print(f"ingest {n_files} files: {rows[-1]}", flush=True)

    for n_files in args.files:
        result, usage = run_worker(
            "train",
            args.workdir / f"train_{n_files}.log",
            store=str(args.workdir / f"store_{n_files}.soma"),
            threads=args.threads,
            train_batches=args.train_batches,
            val_batches=args.val_batches,
        )
        rows.append(
            {"table": "train_memory", "files": n_files, "cells": n_files * args.cells}
            | usage
            | result
        )
        print(f"train on {n_files} files: {rows[-1]}", flush=True)

    # Throughput: the first --throughput-cells cells of the first file, in memory and stored.
    subset = args.workdir / f"throughput_{args.cells}_{args.throughput_cells}.h5ad"
    first = ad.read_h5ad(files[0])
    write_h5ad(first[: args.throughput_cells].copy(), subset)
    del first
    store = args.workdir / "store_throughput.soma"
    shutil.rmtree(store, ignore_errors=True)
    import sctranslator as sct

    sct.data.ingest([subset], store, setup=SETUP)
    profile = args.workdir / "throughput_profile.txt" if args.profile else None
    result, _ = run_worker(
        "throughput",
        args.workdir / "throughput.log",
        path=str(subset),
        store=str(store),
        threads=args.threads,
        batches=args.throughput_batches,
        repeats=args.repeats,
        profile=str(profile) if profile else None,
    )
    for row in result:
        rows.append({"table": "throughput", **row})
    write_tables(pd.DataFrame(rows), args, command)
    if profile:
        print(f"\ncProfile of one store training: {profile}")


def write_tables(table: pd.DataFrame, args, command: str) -> None:
    """Print the three tables and write ``collection.csv`` and ``collection.md``."""
    counts = ["files", "cells", "repeat", "batches", "loop_cells", "train_cells"]
    counts = [c for c in [*counts, "validation_cells"] if c in table]
    table = table.astype(dict.fromkeys(counts, "Int64"))
    table.round(3).to_csv(args.out / "collection.csv", index=False)
    ingest = table[table.table == "ingest"].astype({"files": int, "cells": int})
    ingest_md = pd.DataFrame(
        {
            "files": ingest.files,
            "cells": ingest.cells.map("{:,}".format),
            "input MiB": ingest.input_mib.round(1),
            "store MiB": ingest.store_mib.round(1),
            "wall s": ingest.wall_s.round(1),
            "CPU s": ingest.cpu_s.round(1),
            "cells / s": ingest.cells_per_s.map("{:,.0f}".format),
            "cells / CPU s": ingest.cells_per_cpu_s.map("{:,.0f}".format),
            "peak RSS MiB": ingest.peak_rss_mib.round(0).astype(int),
        }
    )
    memory = table[table.table == "train_memory"].astype({"files": int, "cells": int})
    base = memory.peak_rss_mib.iloc[0]
    memory_md = pd.DataFrame(
        {
            "files": memory.files,
            "cells": memory.cells.map("{:,}".format),
            "peak RSS MiB": memory.peak_rss_mib.round(0).astype(int),
            f"peak / {memory.files.iloc[0]} file(s)": (memory.peak_rss_mib / base).round(2),
            "wall s": memory.wall_s.round(1),
            "CPU s": memory.cpu_s.round(1),
            "set-up CPU s": memory.setup_cpu_s.round(1),
            "loop CPU s": memory.loop_cpu_s.round(1),
            "post-training CPU s": memory.post_cpu_s.round(1),
            "peak MiB by: build": memory.peak_before_mib.round(0).astype(int),
            "set-up": memory.peak_setup_mib.round(0).astype(int),
            "loop": memory.peak_loop_mib.round(0).astype(int),
            "post-training": memory.peak_post_mib.round(0).astype(int),
        }
    )
    speed = table[table.table == "throughput"].copy()
    speed["cells_per_cpu_s"] = speed.loop_cells / speed.loop_cpu_s
    speed["cells_per_wall_s"] = speed.loop_cells / speed.loop_wall_s
    speed["step_share"] = speed.steps_cpu_s / speed.loop_cpu_s
    memory_rate = speed[speed.method == "in-memory"].set_index("repeat").cells_per_cpu_s
    store_rate = speed[speed.method == "store"].set_index("repeat").cells_per_cpu_s
    ratio = store_rate / memory_rate
    speed_md = pd.DataFrame(
        [
            {
                "method": method,
                "loop cells / CPU s": _mean_sd(group.cells_per_cpu_s),
                "loop cells / wall s": _mean_sd(group.cells_per_wall_s),
                "in minibatch steps": _mean_sd(100 * group.step_share) + " %",
                "set-up CPU s": _mean_sd(group.setup_cpu_s, 1),
                "loop CPU s": _mean_sd(group.loop_cpu_s, 1),
                "post-training CPU s": _mean_sd(group.post_cpu_s, 1),
                "train() CPU s": _mean_sd(group.total_cpu_s, 1),
                "ratio to in-memory (loop cells / CPU s)": (
                    _mean_sd(ratio, 2) if method == "store" else "1"
                ),
            }
            for method, group in speed.groupby("method", sort=False)
        ]
    )
    stamp = datetime.date.today().isoformat()
    n_cells = int(speed.cells.iloc[0]) if len(speed) else 0
    sections = [
        f"`{command}`\n\n{stamp}, torch threads = {args.threads}, batch size {BATCH_SIZE}, "
        f"{args.cells:,} cells per file.",
        "Ingest (fresh store, fresh process per row):\n\n" + ingest_md.to_markdown(index=False),
        f"Training memory (one epoch of {args.train_batches} minibatches from the store, "
        f"{args.val_batches} validation minibatches, post-training steps included; fresh "
        "process per row; the last four columns are the process's peak RSS so far at the end "
        "of opening the store and building the model, of train()'s set-up (panel statistics, "
        "start from data), of the training loop and of the post-training steps):\n\n"
        + memory_md.to_markdown(index=False),
        f"Throughput ({n_cells:,} cells of the first file, {args.throughput_batches} "
        f"minibatches, no validation batches, mean ± sd over {args.repeats} repetitions in one "
        "process, methods alternating):\n\n" + speed_md.to_markdown(index=False),
    ]
    text = "\n\n".join(sections) + "\n"
    print("\n" + text)
    (args.out / "collection.md").write_text(text)


if __name__ == "__main__":
    main()
