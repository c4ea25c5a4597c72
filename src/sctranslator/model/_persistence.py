"""Saving and loading models as plain data: safetensors weights and JSON settings."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sctranslator.data import Vocabulary

FORMAT = "sctranslator-model"
# Version 2: the fitted components in files of their own (version 1 kept them in the weights).
FORMAT_VERSION = 2
WEIGHTS_FILE = "weights.safetensors"
# The model's fitted components (attribute names) and the file each is saved in.
COMPONENT_FILES = {
    "panel_statistics": "panel.safetensors",
    "reference_mapping": "mapping.safetensors",
    "calibration": "calibration.safetensors",
}
SETTINGS_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
# Folders of shipped references, inside the package.
_REFERENCES = "sctranslator.references"


def _encode(value: Any) -> Any:
    """JSON form of registries and settings: arrays and frames become tagged plain data."""
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__ndarray__": [_encode(v) for v in value.tolist()], "dtype": str(value.dtype)}
    if isinstance(value, pd.DataFrame):
        return {"__frame__": _encode(value.reset_index().to_dict(orient="list"))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Vocabulary):
        return {"__vocabulary__": {"tokens": value.tokens, "ensembl": value.ensembl}}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"Cannot save a value of type {type(value).__name__} as plain data.")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__frame__" in value:
        frame = pd.DataFrame(_decode(value["__frame__"]))
        return frame.set_index(frame.columns[0])
    if "__vocabulary__" in value:
        return Vocabulary(**value["__vocabulary__"])
    return {k: _decode(v) for k, v in value.items()}


def shipped_references() -> list[str]:
    """Names of the reference models shipped with the package (for :meth:`load_pretrained`).

    Returns
    -------
    Sorted list of names, e.g. ``["pbmc"]``.

    Examples
    --------
    >>> sct.model.shipped_references()
    ['pbmc']
    """
    root = resources.files(_REFERENCES)
    return sorted(p.name for p in root.iterdir() if (p / SETTINGS_FILE).is_file())


def resolve_model_folder(name_or_path: str | os.PathLike) -> Path:
    """Return the folder of a saved model: a path, or the name of a shipped reference."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if isinstance(name_or_path, str) and os.sep not in name_or_path:
        if name_or_path in shipped_references():
            return Path(str(resources.files(_REFERENCES) / name_or_path))
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a folder nor a shipped reference; shipped references: "
            f"{shipped_references()}."
        )
    raise FileNotFoundError(f"No saved model folder at {path}.")


def write_model(
    folder: Path,
    state: dict[str, torch.Tensor],
    components: dict[str, dict[str, torch.Tensor]],
    settings: dict,
    card: str,
) -> None:
    """Write weights, fitted components, settings and card into a new ``folder``.

    ``components`` maps each name of :data:`COMPONENT_FILES` to its state; an empty state
    (an unfitted component) writes no file.
    """
    folder.mkdir(parents=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if v is not None}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
    for name, component_state in components.items():
        if component_state:
            save_file(component_state, str(folder / COMPONENT_FILES[name]))
    settings = {"format": FORMAT, "format_version": FORMAT_VERSION, **settings}
    settings["sctranslator_version"] = metadata.version("sctranslator")
    (folder / SETTINGS_FILE).write_text(json.dumps(_encode(settings), indent=1))
    (folder / CARD_FILE).write_text(card)
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():  # safetensors writes owner-only files; use the umask
        path.chmod(0o666 & ~umask)


def replace_folder(target: Path, write, overwrite: bool) -> None:
    """Call ``write(staging)`` on a fresh folder beside ``target``, then move it into place.

    An existing ``target`` is refused unless ``overwrite``; then the files of ``target`` that
    ``write`` did not produce (the user's own) are linked or copied into the staging folder,
    and the folders are swapped by renames: readers see the old or the new model, never a
    mix, and an interrupted save leaves the old one.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staging = Path(tmp) / "new"
        write(staging)
        if not target.exists():
            staging.rename(target)
            return
        for item in target.iterdir():
            if not (staging / item.name).exists():
                if item.is_dir():
                    shutil.copytree(item, staging / item.name, copy_function=_link_or_copy)
                else:
                    _link_or_copy(item, staging / item.name)
        old = Path(tmp) / "old"
        target.rename(old)
        try:
            staging.rename(target)
        except BaseException:
            old.rename(target)
            raise


def _link_or_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def read_model(
    folder: Path, device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]], dict]:
    """Read and check a model folder: weights, component states and settings.

    Errors say what is wrong and what to do.
    """
    settings_path, weights_path = folder / SETTINGS_FILE, folder / WEIGHTS_FILE
    if not settings_path.is_file():
        if any(folder.glob("*model.pt")):
            raise ValueError(
                f"{folder} holds a model saved by sctranslator 0.1 (a pickled model.pt), which "
                "this version does not read: its architecture has changed since. Train the model "
                "again and save it, or use it with sctranslator 0.1."
            )
        raise FileNotFoundError(f"{folder} has no {SETTINGS_FILE}: it is not a saved model.")
    try:
        settings = _decode(json.loads(settings_path.read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{settings_path} is corrupted ({error}); save the model again."
        ) from error
    if settings.get("format") != FORMAT:
        raise ValueError(f"{settings_path} is not a saved sctranslator model.")
    version = settings.get("format_version")
    if version != FORMAT_VERSION:
        advice = (
            "upgrade sctranslator"
            if isinstance(version, int) and version > FORMAT_VERSION
            else "train the model again with this version and save it"
        )
        raise ValueError(
            f"{folder} was saved in model format {version} by sctranslator "
            f"{settings.get('sctranslator_version')}; this version reads format "
            f"{FORMAT_VERSION}: {advice}."
        )
    paths = {None: weights_path} | {
        name: folder / file for name, file in COMPONENT_FILES.items() if (folder / file).exists()
    }
    tensors = {}
    for name, path in paths.items():
        try:
            tensors[name] = load_file(str(path), device=str(device))
        except (SafetensorError, OSError, FileNotFoundError) as error:
            raise ValueError(
                f"{path} is missing or corrupted ({error}); save the model again."
            ) from error
    state = tensors.pop(None)
    return state, {name: tensors.get(name, {}) for name in COMPONENT_FILES}, settings
