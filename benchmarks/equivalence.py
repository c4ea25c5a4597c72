"""Predictions of this code against those of an earlier commit, on the same cells and seed.

A refactoring that promises unchanged behaviour is checked here: the shipped PBMC reference
(zero-shot prediction, intervals and novelty of the RNA-only batch p1_0) and a model trained
with the defaults on PBMC batch p3_0 (seed 0, ``--max-epochs``; prediction, intervals and
novelty of batch p4_0) are computed by this checkout and, in a fresh process, by the code of
``--baseline`` (checked out into a temporary git worktree). Writes the largest absolute
difference of each output to ``results/equivalence.md``.

    python benchmarks/equivalence.py --baseline 8e88158 --threads 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}


def outputs(max_epochs: int) -> dict[str, np.ndarray]:
    """Predictions of the shipped reference and of a freshly trained default model."""
    import scvi
    import torch

    import sctranslator as sct

    mdata = sct.datasets.pbmc_cite_mini()
    by_batch = mdata.obs["batch"].to_numpy()
    reference = sct.SCTRANSLATOR.load_pretrained("pbmc", accelerator="cpu")
    rna_only = mdata["rna"][by_batch == "p1_0"].copy()
    result = {"reference_prediction": reference.predict_protein(rna_only).to_numpy()}
    lower, upper = reference.predict_protein_interval(rna_only, level=0.9)
    result["reference_lower"], result["reference_upper"] = lower.to_numpy(), upper.to_numpy()
    result["reference_novelty"] = reference.get_novelty(rna_only).to_numpy()

    scvi.settings.seed = 0
    torch.set_num_threads(1)
    train = mdata[by_batch == "p3_0"].copy()
    query = mdata["rna"][by_batch == "p4_0"].copy()
    sct.SCTRANSLATOR.setup_mudata(
        train,
        rna_layer="counts",
        protein_layer="counts",
        batch_key="batch",
        modalities=MODALITIES,
    )
    model = sct.SCTRANSLATOR(train)
    model.train(max_epochs=max_epochs, enable_progress_bar=False)
    result["trained_prediction"] = model.predict_protein(query).to_numpy()
    lower, upper = model.predict_protein_interval(query, level=0.9)
    result["trained_lower"], result["trained_upper"] = lower.to_numpy(), upper.to_numpy()
    result["trained_novelty"] = model.get_novelty(query).to_numpy()
    result["trained_reliability"] = model.protein_reliability.to_numpy()
    return result


def baseline_outputs(commit: str, max_epochs: int, threads: int) -> dict[str, np.ndarray]:
    """Run :func:`outputs` with the package of ``commit``, in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        try:
            saved = Path(tmp) / "baseline.npz"
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--write",
                    str(saved),
                    "--max-epochs",
                    str(max_epochs),
                    "--threads",
                    str(threads),
                ],
                check=True,
                env=env,
                cwd=tmp,
            )
            with np.load(saved) as stored:
                return dict(stored)
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                check=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="commit whose predictions are the reference")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.write:
        np.savez(args.write, **outputs(args.max_epochs))
        return
    import sctranslator

    print(f"baseline {args.baseline}; this code: {sctranslator.__file__}")
    old = baseline_outputs(args.baseline, args.max_epochs, args.threads)
    new = outputs(args.max_epochs)
    rows = []
    for name, value in new.items():
        difference = np.nanmax(np.abs(value - old[name]))
        same_nan = bool((np.isnan(value) == np.isnan(old[name])).all())
        rows.append(f"| {name} | {value.shape} | {difference:.2e} | {same_nan} |")
    table = "\n".join(
        [
            f"Outputs of this code against commit `{args.baseline}` (seed 0, "
            f"{args.max_epochs} epochs, {args.threads} torch thread).",
            "",
            "| output | shape | largest absolute difference | NaN in the same places |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "equivalence.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
