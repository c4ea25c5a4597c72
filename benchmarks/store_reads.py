"""Minibatch read speed of the engines considered for training on a collection of files.

Two synthetic sparse files of ``--cells`` cells x 2,000 genes each (10 % non-zero) with
overlapping but different gene panels are read as one collection by:

- TileDB-SOMA (``tiledbsoma.io`` registration of both files in one experiment);
- anndata's backed mode on one of the files (the route for a single file);
- lamindb's ``MappedCollection`` over the two ``.h5ad`` files (outer join), when ``lamindb``
  is installed (it is not a dependency: ``pip install lamindb``);

each reading random cells, and 16 runs of 64 consecutive cells (the store loader's chunked
shuffling).

``scverse``'s ``annbatch`` needs Python >= 3.12 and is not measured. Each method reads
``--repeats`` minibatches of 128 cells (1,024 for the chunked read, reported per 128 cells);
the table gives milliseconds per 128 cells (mean ± sd over minibatches) and the ratio to
TileDB-SOMA's chunked read, and is written to ``results/store_reads.md`` and ``.csv``.

    python benchmarks/store_reads.py [--cells 20000] [--repeats 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def write_files(workdir: Path, n_cells: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for k, genes in enumerate((range(0, 2000), range(1000, 3000))):
        path = workdir / f"panel_{k}.h5ad"
        paths.append(path)
        if path.exists():
            continue
        counts = sp.random(
            n_cells, 2000, density=0.1, format="csr", random_state=rng, dtype=np.float32
        )
        counts.data = np.ceil(counts.data * 20)
        obs = pd.DataFrame(index=[f"f{k}_{i}" for i in range(n_cells)])
        ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=[f"G{g}" for g in genes])).write_h5ad(
            path
        )
    return paths


def soma_store(paths: list[Path], uri: Path):
    import tiledbsoma
    import tiledbsoma.io

    if not uri.exists():
        for path in paths:
            adata = ad.read_h5ad(path)
            mapping = None
            if uri.exists():
                mapping = tiledbsoma.io.register_anndatas(
                    str(uri),
                    [adata],
                    measurement_name="RNA",
                    obs_field_name="obs_id",
                    var_field_name="var_id",
                )
                mapping.prepare_experiment(str(uri))
            tiledbsoma.io.from_anndata(str(uri), adata, "RNA", registration_mapping=mapping)
    return tiledbsoma.Experiment.open(str(uri))


def timed(read, repeats: int, per: float = 1.0) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        times.append((time.perf_counter() - start) * 1000 / per)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--workdir", default="/tmp/sctranslator_store_reads")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = write_files(workdir, args.cells)
    n = 2 * args.cells
    rng = np.random.default_rng(1)
    results = {}

    experiment = soma_store(paths, workdir / "store.soma")
    matrix = experiment.ms["RNA"].X["data"]

    def soma_random():
        rows = np.sort(rng.choice(n, 128, replace=False))
        matrix.read(coords=(rows,)).tables().concat()

    def chunked_rows(n_rows: int) -> np.ndarray:
        starts = rng.choice(n_rows // 64, 16, replace=False) * 64
        return np.sort(np.concatenate([np.arange(s, s + 64) for s in starts]))

    def soma_chunks():
        matrix.read(coords=(chunked_rows(n),)).tables().concat()

    results["TileDB-SOMA, 16 runs of 64 cells"] = timed(soma_chunks, args.repeats, per=8)
    results["TileDB-SOMA, random cells"] = timed(soma_random, args.repeats)

    backed = ad.read_h5ad(paths[0], backed="r")

    def backed_random():
        backed.X[np.sort(rng.choice(args.cells, 128, replace=False))]

    def backed_chunks():
        backed.X[chunked_rows(args.cells)]

    results["anndata backed (one file), 16 runs of 64 cells"] = timed(
        backed_chunks, args.repeats, per=8
    )
    results["anndata backed (one file), random cells"] = timed(backed_random, args.repeats)
    try:
        from lamindb.core import MappedCollection
    except ImportError:
        print("lamindb is not installed: MappedCollection not measured.")
    else:
        collection = MappedCollection([str(p) for p in paths], join="outer")

        def mapped_random():
            [collection[int(i)] for i in rng.choice(n, 128, replace=False)]

        def mapped_chunks():
            [collection[int(i)] for i in chunked_rows(n)]

        results["lamindb MappedCollection, 16 runs of 64 cells"] = timed(
            mapped_chunks, args.repeats, per=8
        )
        results["lamindb MappedCollection, random cells"] = timed(mapped_random, args.repeats)

    baseline = np.mean(results["TileDB-SOMA, 16 runs of 64 cells"])
    table = pd.DataFrame(
        {
            "method": list(results),
            "ms per 128 cells": [f"{np.mean(t):.1f} ± {np.std(t):.1f}" for t in results.values()],
            "ratio to TileDB-SOMA chunked": [
                f"{np.mean(t) / baseline:.1f}" for t in results.values()
            ],
        }
    )
    command = f"python benchmarks/store_reads.py --cells {args.cells} --repeats {args.repeats}"
    out = Path(args.out)
    table.to_csv(out / "store_reads.csv", index=False)
    text = f"`{command}` (2 files x {args.cells} cells x 2,000 genes, one thread)\n\n"
    (out / "store_reads.md").write_text(text + table.to_markdown(index=False) + "\n")
    print(text + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
