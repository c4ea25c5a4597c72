"""Write a cells x features matrix to an ``.h5ad`` or ``.h5mu`` file block by block."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctranslator._io import write_atomic
from sctranslator._mudata import no_pull

SUFFIXES = (".h5ad", ".h5mu")


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking its suffix and existence.

    Raises
    ------
    ValueError
        The suffix is not ``.h5ad`` or ``.h5mu``.
    FileExistsError
        The file exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"Output {str(path)!r} must end with one of {SUFFIXES}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    return path


def write_blocks(
    path: str | os.PathLike,
    blocks: Iterable[np.ndarray],
    obs_names: Sequence[str],
    var: pd.DataFrame,
    uns: dict | None = None,
    modality: str = "prot_pred",
    overwrite: bool = False,
) -> Path:
    """Write row blocks of a ``(cells, features)`` matrix to disk as they come.

    The file is laid out first (``obs``, ``var``, ``uns`` and an empty chunked ``float32``
    ``X`` of the final shape) and each block is then written into its rows, so memory holds
    one block at a time whatever the number of cells. An ``.h5ad`` file holds one AnnData;
    an ``.h5mu`` file holds a MuData with the single modality ``modality``. Writing goes to
    a temporary file beside ``path`` that is renamed into place at the end: an interrupted
    write leaves nothing behind.

    Parameters
    ----------
    path
        Target file, ``.h5ad`` or ``.h5mu``.
    blocks
        Row blocks ``(rows, len(var))`` in order; together exactly ``len(obs_names)`` rows.
    obs_names
        Cell names.
    var
        Feature annotation; its index gives the feature names.
    uns
        Unstructured annotation of the AnnData.
    modality
        Name of the modality in an ``.h5mu`` file.
    overwrite
        Replace an existing file.

    Returns
    -------
    The path written.

    Examples
    --------
    >>> blocks = (np.ones((2, 3)) * i for i in range(2))
    >>> write_blocks("out.h5ad", blocks, ["a", "b", "c", "d"], pd.DataFrame(index=["x", "y", "z"]))
    >>> anndata.read_h5ad("out.h5ad").X[:, 0]
    array([0., 0., 1., 1.], dtype=float32)
    """
    path = check_output_path(path, overwrite)
    skeleton = AnnData(obs=pd.DataFrame(index=pd.Index(obs_names).astype(str)), var=var.copy())
    skeleton.uns.update(uns or {})
    n_obs, n_vars = skeleton.shape

    def write(temporary: str) -> None:
        if path.suffix == ".h5mu":
            with no_pull():
                MuData({modality: skeleton}).write_h5mu(temporary)
            group_name = f"mod/{modality}"
        else:
            skeleton.write_h5ad(temporary)
            group_name = "/"
        with h5py.File(temporary, "r+") as file:
            if "X" in file[group_name]:  # MuData writes a placeholder for a missing X
                del file[group_name]["X"]
            rows = max(1, min(n_obs, 2**20 // max(n_vars, 1)))
            matrix = file[group_name].create_dataset(
                "X",
                shape=(n_obs, n_vars),
                dtype="float32",
                chunks=(rows, n_vars) if n_obs else None,
            )
            matrix.attrs["encoding-type"] = "array"
            matrix.attrs["encoding-version"] = "0.2.0"
            start = 0
            for block in blocks:
                block = np.asarray(block, dtype=np.float32)
                if block.ndim != 2 or block.shape[1] != n_vars or start + len(block) > n_obs:
                    raise ValueError(
                        f"Block of shape {block.shape} at row {start} does not fit a "
                        f"({n_obs}, {n_vars}) matrix."
                    )
                matrix[start : start + len(block)] = block
                start += len(block)
            if start != n_obs:
                raise ValueError(f"Blocks held {start} rows; expected {n_obs}.")

    return write_atomic(path, write, overwrite=overwrite)
