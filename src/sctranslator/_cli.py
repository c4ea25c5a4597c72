"""Command line: ``sctranslator demo``, ``predict``, ``ingest`` and ``train``.

Errors in the user's input (a missing file, a file without RNA, an existing output, a bad
configuration) are printed to stderr as one line starting with ``sctranslator: error:`` and
end the command with exit code 1; usage errors (unknown options) exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_USER_ERRORS = (OSError, KeyError, ValueError, TypeError)
_INPUT_SUFFIXES = (".h5ad", ".h5mu")
_CONFIG_KEYS = {"input", "output", "store", "setup", "model", "train", "backed", "seed"}


def main(argv: list[str] | None = None) -> int:
    """Run the ``sctranslator`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    The exit code: 0 on success, 1 on an error in the input, 2 on a usage error.

    Examples
    --------
    >>> main(["predict", "--model", "model_dir", "--input", "rna.h5ad", "--output", "out.h5mu"])
    0
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except _USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"sctranslator: error: {message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sctranslator", description="Translate single-cell RNA into proteins."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="Train on embedded PBMC CITE-seq cells and translate a held-out batch."
    )
    demo.add_argument(
        "--out", default="sctranslator_demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="maximum training epochs (default: the model's, see SCTRANSLATOR.train)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace existing output files")
    demo.set_defaults(run=_run_demo)

    predict = commands.add_parser(
        "predict",
        help="Predict proteins from the RNA of an .h5ad/.h5mu file, streaming to disk.",
        description="Predict proteins from RNA. The input is opened backed and read, predicted "
        "and written one batch of cells at a time, so memory does not grow with the cells.",
    )
    predict.add_argument(
        "--model",
        required=True,
        help="folder of a saved SCTRANSLATOR model, or a shipped reference name (pbmc)",
    )
    predict.add_argument(
        "--input",
        required=True,
        help="RNA counts: an .h5ad file (RNA in .X or the layer the model was set up with) or "
        "an .h5mu file with the model's RNA modality",
    )
    predict.add_argument(
        "--output",
        required=True,
        help="predictions: .h5mu (a MuData with the modality 'prot_pred') or .h5ad",
    )
    predict.add_argument(
        "--proteins", nargs="+", help="proteins to predict (default: the model's proteins)"
    )
    predict.add_argument("--batch-size", type=int, default=None, help="cells per batch")
    predict.add_argument(
        "--transform-batch", default=None, help="predict as if measured in this training batch"
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    predict.set_defaults(run=_run_predict)

    train = commands.add_parser(
        "train",
        help="Train a model from a JSON or YAML configuration and save it.",
        description="Train a model. The configuration (JSON, or YAML with a .yaml/.yml suffix) "
        "has the keys 'input' (an .h5mu or .h5ad file; a list of them, with different panels; "
        "or a cell store folder written by 'sctranslator ingest'), 'output' (model folder), "
        "'setup' (arguments of setup_mudata for .h5mu, setup_anndata for .h5ad; not for a "
        "store), and "
        "optionally 'store' (where a list of inputs is ingested first: required under DDP, "
        "otherwise a temporary store), 'model' (arguments of SCTRANSLATOR), 'train' "
        "(arguments of SCTRANSLATOR.train, e.g. strategy='ddp', ckpt_path), 'backed' (open a "
        "single input backed) and 'seed'. Relative paths are relative to the configuration "
        "file.",
    )
    train.add_argument("--config", required=True, help="JSON or YAML configuration file")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model files of an existing output folder",
    )
    train.set_defaults(run=_run_train)

    ingest = commands.add_parser(
        "ingest",
        help="Write .h5ad/.h5mu files with different panels into one cell store (TileDB-SOMA).",
        description="Write the configuration's 'input' files into the cell store 'store', one "
        "file at a time, with the configuration's 'setup' (as for 'train'). The store is "
        "written to a temporary folder that replaces it at the end, so an error leaves it as "
        "it was. 'sctranslator train' then takes the store as its 'input'.",
    )
    ingest.add_argument("--config", required=True, help="JSON or YAML configuration file")
    ingest.add_argument("--append", action="store_true", help="add the inputs to the store")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.set_defaults(run=_run_ingest)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from sctranslator._demo import run_demo

    try:
        run_demo(args.out, max_epochs=args.max_epochs, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"sctranslator: {error}", file=sys.stderr)
        return 1
    return 0


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist.")
    if path.suffix not in _INPUT_SUFFIXES:
        raise ValueError(f"{what} {str(path)!r} must be an .h5ad or .h5mu file.")
    return path


def _read(path: Path, backed: bool):
    """Read an AnnData (``.h5ad``) or MuData (``.h5mu``), backed when asked."""
    if path.suffix == ".h5mu":
        import mudata

        from sctranslator._mudata import no_pull, shared_var_names

        # Genes and proteins may share names (CD9); SCTRANSLATOR checks each modality's names.
        with no_pull(), shared_var_names(None):
            return mudata.read_h5mu(path, backed=backed)
    import anndata

    return anndata.read_h5ad(path, backed="r" if backed else None)


def _run_predict(args: argparse.Namespace) -> int:
    from sctranslator.data import check_output_path
    from sctranslator.model import SCTRANSLATOR

    source = _existing_file(args.input, "Input file")
    output = check_output_path(args.output, args.overwrite)
    model = SCTRANSLATOR.load(args.model, adata=None, accelerator="cpu")
    data = _read(source, backed=True)
    path = model.predict_protein(
        data,
        proteins=args.proteins,
        batch_size=args.batch_size,
        transform_batch=args.transform_batch,
        progress_bar=not args.no_progress,
        output=output,
        overwrite=args.overwrite,
    )
    print(f"Wrote predictions for {data.n_obs} cells to {path}.")
    return 0


def _load_config(path: Path, required: set[str]) -> dict:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        config = yaml.safe_load(text)
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Configuration {str(path)!r} is not valid JSON: {error}.") from None
    if not isinstance(config, dict):
        raise ValueError(f"Configuration {str(path)!r} must be a mapping of keys to values.")
    unknown = set(config) - _CONFIG_KEYS
    missing = required - set(config)
    if unknown:
        raise ValueError(
            f"Unknown configuration keys {sorted(unknown)}; allowed: {sorted(_CONFIG_KEYS)}."
        )
    if missing:
        raise ValueError(f"Configuration {str(path)!r} lacks the keys {sorted(missing)}.")
    return config


def _config(path: str, required: set[str]) -> tuple[Path, dict]:
    config_path = Path(path)
    if not config_path.is_file():
        raise FileNotFoundError(f"Configuration file {str(config_path)!r} does not exist.")
    return config_path, _load_config(config_path, required)


def _inputs(config_path: Path, config: dict) -> list[Path]:
    """Return the input files (one or a list), relative to the configuration file."""
    inputs = config["input"] if isinstance(config["input"], list) else [config["input"]]
    if not inputs:
        raise ValueError("'input' is an empty list; give .h5ad/.h5mu files or a cell store.")
    return [_existing_file(config_path.parent / path, "Input file") for path in inputs]


def _run_ingest(args: argparse.Namespace) -> int:
    from sctranslator.data import CellStore, ingest

    config_path, config = _config(args.config, {"input", "store", "setup"})
    store = ingest(
        _inputs(config_path, config),
        config_path.parent / config["store"],
        setup=config["setup"],
        append=args.append,
        overwrite=args.overwrite,
    )
    print(f"Wrote {CellStore(store)!r}.")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    config_path, config = _config(args.config, {"input", "output"})
    output = config_path.parent / config["output"]
    if output.exists() and not args.overwrite:
        raise FileExistsError(
            f"{output} already exists; pass --overwrite to replace its model files."
        )
    source = config_path.parent / config["input"] if isinstance(config["input"], str) else None
    if source is not None and source.is_dir():
        return _train_and_save(args, config, output, _open_store(source))
    if "setup" not in config:  # a store knows its layout; files need it
        raise ValueError(f"Configuration {str(config_path)!r} lacks the key 'setup'.")
    if isinstance(config["input"], list):
        return _train_on_files(args, config_path, config, output)

    from sctranslator.model import SCTRANSLATOR

    source = _existing_file(source, "Input file")
    data = _read(source, backed=bool(config.get("backed", False)))
    if source.suffix == ".h5mu":
        SCTRANSLATOR.setup_mudata(data, **config["setup"])
    else:
        SCTRANSLATOR.setup_anndata(data, **config["setup"])
    return _train_and_save(args, config, output, data)


def _open_store(path: Path):
    from sctranslator.data import CellStore

    return CellStore(path)


def _train_on_files(args, config_path: Path, config: dict, output: Path) -> int:
    """Ingest a list of inputs into the configuration's store (or a temporary one), train.

    An existing store is reused when it holds exactly these files, unchanged and ingested
    with the same setup; ``--overwrite`` rewrites it. Under DDP only the first process
    ingests; the others are started by it (Lightning) after the store is written. Processes
    started together on several nodes (e.g. by SLURM) need the store ingested beforehand.
    """
    import tempfile

    from sctranslator.data import ingest

    inputs = _inputs(config_path, config)
    distributed = "ddp" in str((config.get("train") or {}).get("strategy", ""))
    if "store" not in config:
        if distributed:
            raise ValueError(
                "Under DDP a list of inputs needs the key 'store' (every process reads it); or "
                "run `sctranslator ingest` first and give the store as 'input'."
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=".sctranslator-") as work:
            store = ingest(inputs, Path(work) / "store", setup=config["setup"])
            return _train_and_save(args, config, output, _open_store(store))
    store = config_path.parent / config["store"]
    if _first_process() and not (store.exists() and _holds(store, inputs, config["setup"])):
        if store.exists() and not args.overwrite:
            raise FileExistsError(
                f"The store {store} does not hold exactly the input files as they are now "
                "(other files, changed files or another setup); pass --overwrite to ingest "
                "them again, or give another 'store'."
            )
        ingest(inputs, store, setup=config["setup"], overwrite=args.overwrite)
    elif not store.exists():
        raise FileNotFoundError(
            f"The store {store} does not exist in this process; ingest it first "
            "(`sctranslator ingest`) when the processes start together on several nodes."
        )
    return _train_and_save(args, config, output, _open_store(store))


def _first_process() -> bool:
    """Whether this is the first process of a (possibly distributed) run."""
    import os

    ranks = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "RANK")
    return all(os.environ.get(key, "0") == "0" for key in ranks)


def _holds(store: Path, inputs: list[Path], setup: dict) -> bool:
    """Whether ``store`` holds exactly ``inputs``, unchanged since they were ingested."""
    from sctranslator.data import read_metadata

    datasets = read_metadata(store)["datasets"]
    if set(datasets) != {p.stem for p in inputs}:
        return False
    return all(
        Path(datasets[p.stem]["source"]).resolve() == p.resolve()
        and datasets[p.stem].get("source_size") == p.stat().st_size
        and datasets[p.stem].get("source_mtime") == p.stat().st_mtime
        and datasets[p.stem].get("setup") == dict(setup)
        for p in inputs
    )


def _train_and_save(args, config: dict, output: Path, data) -> int:
    import scvi

    from sctranslator._warnings import quiet_banners
    from sctranslator.model import SCTRANSLATOR

    with quiet_banners():  # no "Seed set to"; see scvi.settings.verbosity
        scvi.settings.seed = config.get("seed", 0)
    model = SCTRANSLATOR(data, **config.get("model", {}))
    model.train(**config.get("train", {}))
    if model.trainer.is_global_zero:  # under DDP every process runs this; one saves
        model.save(output, overwrite=args.overwrite)
        print(f"Trained {len(model.history['mse_train'])} epochs; saved the model to {output}.")
    return 0
