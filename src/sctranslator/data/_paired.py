"""The one reader of paired cells: RNA, proteins and batches, from any data the model knows.

- Registered data (an AnnData or MuData set up with the model) are read through their
  :class:`~scvi.data.AnnDataManager`; a :class:`~sctranslator.data.CellStore` through its own
  reads. :func:`read_cells` yields row chunks of either, keyed like scvi-tools' fields.
- Paired cells that are not registered (``calibrate``'s cells) are read by
  :func:`unregistered_proteins` under the setup arguments the model was registered with.
- :func:`sample_rows` is the one seeded draw of rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.dataloaders import AnnDataLoader

from ._store import CellStore
from ._validate import get_matrix, get_modality

CHUNK_SIZE = 8192


def sample_rows(rows: Sequence[int], n: int) -> np.ndarray:
    """``rows`` sorted, or a sorted draw of ``n`` of them (``scvi.settings.seed``) when more."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, n, replace=False))
    return rows


def _dense(block) -> np.ndarray:
    block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
    return block.astype(np.float32, copy=False)


def read_cells(
    source: AnnDataManager | CellStore,
    rows: Sequence[int],
    *,
    rna: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield the proteins (NaN: unmeasured), batch codes and optionally RNA of ``rows``.

    Parameters
    ----------
    source
        The manager of registered data, or a cell store.
    rows
        Cells, in the order they are yielded.
    rna
        Also read the RNA counts (``X``).
    chunk_size
        Cells per yielded chunk.

    Yields
    ------
    Dicts with ``proteins`` ``(cells, proteins)`` float32, ``batch`` ``(cells,)`` int64 and,
    with ``rna``, ``X`` ``(cells, genes)`` float32, each dense.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(source, CellStore):
        for start in range(0, len(rows), chunk_size):
            values = source.read(rows[start : start + chunk_size], genes=rna).dense()
            chunk = {
                REGISTRY_KEYS.PROTEIN_EXP_KEY: values["proteins"],
                REGISTRY_KEYS.BATCH_KEY: values["batch"].astype(np.int64),
            }
            if rna:
                chunk[REGISTRY_KEYS.X_KEY] = values["X"]
            yield chunk
        return
    if rna:  # RNA may be large, sparse or on disk: scvi-tools' loader reads and densifies it
        loader = AnnDataLoader(
            source,
            indices=rows,
            batch_size=chunk_size,
            shuffle=False,
            data_and_attributes=[
                REGISTRY_KEYS.X_KEY,
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                REGISTRY_KEYS.BATCH_KEY,
            ],
        )
        for tensors in loader:
            chunk = {key: value.numpy() for key, value in tensors.items()}
            batch = chunk[REGISTRY_KEYS.BATCH_KEY].ravel().astype(np.int64)
            yield {**chunk, REGISTRY_KEYS.BATCH_KEY: batch}
        return
    proteins = source.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    proteins = proteins.to_numpy() if isinstance(proteins, pd.DataFrame) else proteins
    batches = np.asarray(source.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
    for start in range(0, len(rows), chunk_size):
        chunk_rows = rows[start : start + chunk_size]
        yield {
            REGISTRY_KEYS.PROTEIN_EXP_KEY: _dense(proteins[chunk_rows]),
            REGISTRY_KEYS.BATCH_KEY: batches[chunk_rows].astype(np.int64),
        }


def read_all_cells(
    source: AnnDataManager | CellStore, rows: Sequence[int], *, rna: bool = False
) -> dict[str, np.ndarray]:
    """:func:`read_cells` of ``rows`` in one dict."""
    chunks = list(read_cells(source, rows, rna=rna))
    keys = [REGISTRY_KEYS.PROTEIN_EXP_KEY, REGISTRY_KEYS.BATCH_KEY]
    keys += [REGISTRY_KEYS.X_KEY] if rna else []
    if not chunks:
        return {key: np.zeros((0,), dtype=np.float32) for key in keys}
    return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in keys}


def rna_location(setup_args: dict) -> tuple[str | None, str | None]:
    """Return the RNA modality (``None`` for an AnnData) and layer of ``setup_args``."""
    modality = (setup_args.get("modalities") or {}).get("rna_layer")
    return modality, setup_args.get("rna_layer", setup_args.get("layer"))


def rna_modality(data: AnnData | MuData, setup_args: dict) -> AnnData:
    """Return the RNA AnnData of ``data``: itself, or its RNA modality under ``setup_args``."""
    if not isinstance(data, MuData):
        return data
    modality = rna_location(setup_args)[0] or "rna"
    return get_modality(data, mod_key=modality, what="the RNA")


def protein_names(data: AnnData | MuData, setup_args: dict) -> list[str]:
    """Protein names of ``data`` laid out as under ``setup_args``."""
    if isinstance(data, MuData):
        modality = (setup_args.get("modalities") or {}).get("protein_layer", "prot")
        return list(get_modality(data, mod_key=modality, what="the proteins").var_names)
    key = setup_args["protein_expression_obsm_key"]
    if key not in data.obsm:
        raise KeyError(
            f"The model was set up with proteins in obsm[{key!r}] of an AnnData (a model "
            f"trained on a cell store: obsm['protein_expression'] and obs['batch']); the "
            f"data has obsm keys {list(data.obsm)}. Put its proteins there as a DataFrame."
        )
    proteins = data.obsm[key]
    if isinstance(proteins, pd.DataFrame):
        return list(proteins.columns)
    return list(data.uns[setup_args["protein_names_uns_key"]])


def unregistered_proteins(
    data: AnnData | MuData, setup_args: dict
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Protein counts, names and batch labels of paired cells that are not registered.

    ``data`` is laid out as the registered data (``setup_args``: the same modalities, layers
    or ``obsm`` key); without the batch column every cell is in one batch.

    Returns
    -------
    Counts ``(cells, proteins)`` float32, the protein names and a batch label per cell.
    """
    names = protein_names(data, setup_args)
    if isinstance(data, MuData):
        modalities = setup_args.get("modalities") or {}
        modality = get_modality(data, mod_key=modalities.get("protein_layer"), what="the proteins")
        counts = get_matrix(modality, layer=setup_args.get("protein_layer"), what="the proteins")
        batch_mod = modalities.get("batch_key")
        obs = data.obs if batch_mod is None else data.mod[batch_mod].obs
    else:
        counts = data.obsm[setup_args["protein_expression_obsm_key"]]
        obs = data.obs
    counts = counts.to_numpy() if isinstance(counts, pd.DataFrame) else counts
    batch_key = setup_args.get("batch_key")
    groups = obs[batch_key].to_numpy() if batch_key in obs else np.zeros(len(obs))
    return _dense(counts), names, groups
