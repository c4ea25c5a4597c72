"""The one reader of paired cells: RNA, proteins and batches, from any data the model knows.

- Registered data (an AnnData or MuData set up with the model) are read through their
  :class:`~scvi.data.AnnDataManager`; a :class:`~sctranslator.data.CellStore` through its own
  reads. :func:`read_cells` yields row chunks of either, keyed like scvi-tools' fields.
- Paired cells that are not registered (``calibrate``'s cells) are read by
  :func:`unregistered_proteins` under the setup arguments the model was registered with.
- A query laid out otherwise than the registered data (counts in ``X``, no batch column, an
  AnnData for a MuData) is laid out as registered by :func:`registered_layout`, in a new
  object that shares its matrices.
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

from sctranslator._mudata import no_pull, shared_var_names

from ._store import PROTEINS_OBSM_KEY, CellStore
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


# ------------------------------------------------------------------ a query laid out as registered
QUERY_BATCH = "query"
"""The batch of a query's cells when the query has no batch column of the reference's."""


def holds_counts(matrix, n_rows: int = 1000) -> bool:
    """Whether the first ``n_rows`` of ``matrix`` are whole non-negative numbers (raw counts)."""
    if matrix is None:
        return False
    block = matrix[: min(n_rows, matrix.shape[0])]
    values = block.data if hasattr(block, "data") and hasattr(block, "nnz") else np.asarray(block)
    values = np.asarray(values)
    return bool(np.all(values >= 0) and np.allclose(values, np.round(values)))


def _counts(adata: AnnData, layer: str | None, what: str, notes: list[str]):
    """Return the raw counts of ``adata``: in ``layer`` (``X`` if None), else wherever they are.

    A missing ``layer`` falls back to ``X`` when ``X`` holds counts; ``X`` that does not hold
    counts falls back to ``layers["counts"]`` when that does. Each fallback is noted.
    """
    if layer is not None and layer in adata.layers:
        return adata.layers[layer]
    if layer is None:
        if holds_counts(adata.X) or "counts" not in adata.layers:
            return adata.X
        if holds_counts(adata.layers["counts"]):
            notes.append(f"{what} read from layers['counts'] (X does not hold raw counts)")
            return adata.layers["counts"]
        return adata.X
    if holds_counts(adata.X) or (what == "the proteins" and adata.X is not None):
        notes.append(f"{what} read from X (there is no layer {layer!r})")
        return adata.X
    raise KeyError(
        f"{what.capitalize()} of the query has no layer {layer!r} (layers: "
        f"{list(adata.layers)}) and its X does not hold raw counts (whole non-negative "
        f"numbers): put the raw counts in `.layers[{layer!r}]` or in `.X`."
    )


def _obsm_proteins(adata: AnnData, key: str, names_key: str | None) -> pd.DataFrame:
    """Return the proteins of an AnnData in ``obsm[key]``, as a DataFrame."""
    if key not in adata.obsm:
        raise KeyError(
            f"The query is an AnnData without proteins in obsm[{key!r}] (obsm keys: "
            f"{list(adata.obsm)}): put its protein counts there as a DataFrame, or pass a "
            "MuData with modalities 'rna' and 'prot'."
        )
    proteins = adata.obsm[key]
    if isinstance(proteins, pd.DataFrame):
        return proteins
    if names_key is None or names_key not in adata.uns:
        raise ValueError(
            f"obsm[{key!r}] is an array without protein names: make it a DataFrame whose "
            "columns are the protein names."
        )
    return pd.DataFrame(
        _dense(proteins), index=adata.obs_names, columns=list(adata.uns[names_key])
    )


def _shallow(adata: AnnData, counts, layer: str | None) -> AnnData:
    """Return an AnnData sharing ``adata``'s matrices, ``counts`` in ``layer`` (``X`` if None).

    It has its own obs, var, layers and uns; scvi-tools' keys in ``uns`` are left out, so that
    the new object registers on its own.
    """
    uns = {k: v for k, v in adata.uns.items() if not str(k).startswith("_scvi")}
    layers = dict(adata.layers)
    if layer is not None:
        layers[layer] = counts
    return AnnData(
        X=counts if layer is None else adata.X,
        obs=adata.obs.copy(),
        var=adata.var.copy(),
        layers=layers,
        obsm=dict(adata.obsm),
        uns=uns,
    )


def registered_layout(
    data: AnnData | MuData,
    setup_method_name: str,
    setup_args: dict,
    *,
    new_batch: str = QUERY_BATCH,
) -> tuple[AnnData | MuData, list[str]]:
    """Return paired cells laid out as a model's registered data, and what was added.

    A query for a model (its setup method and arguments) may be an AnnData with proteins in
    ``obsm`` or a MuData with RNA and protein modalities, with counts in ``X`` or in the
    registered layers, with or without the batch column. When ``data`` is already laid out
    as registered, it is returned itself. Otherwise a new object is returned that shares
    ``data``'s matrices (``data`` is not changed): the counts in the registered layers (or
    ``X``), the proteins where the model reads them and, when the batch column is missing,
    every cell in one new batch ``new_batch``.

    Parameters
    ----------
    data
        Paired RNA and protein counts.
    setup_method_name
        ``"setup_mudata"`` or ``"setup_anndata"``, as in the model's registry.
    setup_args
        The arguments the model was set up with.
    new_batch
        The batch of the cells when ``data`` has no batch column.

    Returns
    -------
    The data laid out as registered, and one line per change (empty when ``data`` is
    returned as it is).

    Examples
    --------
    >>> args = reference.registry_["setup_args"]
    >>> laid_out, changes = registered_layout(mdata, "setup_mudata", args)
    """
    mudata_layout = setup_method_name == "setup_mudata"
    modalities = setup_args.get("modalities") or {}
    rna_mod = modalities.get("rna_layer") or "rna"
    prot_mod = modalities.get("protein_layer") or "prot"
    batch_mod = modalities.get("batch_key") if mudata_layout else None
    rna_layer = setup_args.get("rna_layer" if mudata_layout else "layer")
    prot_layer = setup_args.get("protein_layer") if mudata_layout else None
    obsm_key = setup_args.get("protein_expression_obsm_key") or PROTEINS_OBSM_KEY
    batch_key = setup_args.get("batch_key")
    if data.is_view:
        data = data.copy()
    if isinstance(data, MuData):
        rna = get_modality(data, mod_key=rna_mod, what="the RNA")
        prot = get_modality(data, mod_key=prot_mod, what="the proteins")
        obs = data.obs if batch_mod is None else data.mod[batch_mod].obs
        if not mudata_layout and batch_key not in obs and batch_key in rna.obs:
            obs = rna.obs
    else:
        rna, prot, obs = data, None, data.obs
    has_batch = batch_key is None or batch_key in obs
    if has_batch and isinstance(data, MuData) == mudata_layout:
        located = [(rna_layer, rna)] + ([(prot_layer, prot)] if mudata_layout else [])
        if all(_in_place(layer, modality) for layer, modality in located) and (
            mudata_layout or obsm_key in data.obsm
        ):
            return data, []
    notes: list[str] = []
    if rna.isbacked:
        rna = rna.to_memory()
    rna_counts = _counts(rna, rna_layer, "the RNA", notes)
    if prot is None:
        proteins = _obsm_proteins(data, obsm_key, setup_args.get("protein_names_uns_key"))
        proteins = proteins.set_axis(rna.obs_names)
    else:
        if not prot.obs_names.equals(rna.obs_names):
            raise ValueError(
                f"The modalities {rna_mod!r} and {prot_mod!r} do not hold the same cells in "
                "the same order; pair them first with `sct.pp.pair_modalities`."
            )
        counts = _counts(prot, prot_layer, "the proteins", notes)
        proteins = pd.DataFrame(_dense(counts), index=prot.obs_names, columns=prot.var_names)
    proteins = proteins.astype(np.float32)
    obs = obs.copy()
    if not has_batch:
        obs[batch_key] = pd.Categorical([new_batch] * len(obs))
        notes.append(
            f"the query's {len(obs)} cells have no obs[{batch_key!r}]: they are one new "
            f"batch, {new_batch!r} (see obs[{batch_key!r}] of the model's data)"
        )
    if mudata_layout:
        out = _paired_mudata(rna, rna_counts, proteins, prot, setup_args)
        if batch_mod is not None:
            out.mod[batch_mod].obs = obs.loc[out.mod[batch_mod].obs_names]
        elif out.obs_names.equals(obs.index):
            out.obs = obs
        if isinstance(data, AnnData):
            notes.append(f"laid out as a MuData with modalities {rna_mod!r} and {prot_mod!r}")
        return out, notes
    out = _shallow(rna, rna_counts, rna_layer)
    out.obs = obs.loc[out.obs_names]
    out.obsm[obsm_key] = proteins
    if isinstance(data, MuData):
        notes.append(f"laid out as an AnnData with the proteins in obsm[{obsm_key!r}]")
    return out, notes


def _in_place(layer: str | None, adata: AnnData) -> bool:
    """Whether the counts of ``adata`` are where the model reads them (``layer``, or ``X``)."""
    if layer is not None:
        return layer in adata.layers
    return "counts" not in adata.layers or holds_counts(adata.X)


def _paired_mudata(
    rna: AnnData, rna_counts, proteins: pd.DataFrame, prot: AnnData | None, setup_args: dict
) -> MuData:
    """Return a MuData of ``rna`` (``rna_counts`` where registered) and ``proteins``."""
    modalities = setup_args.get("modalities") or {}
    prot_layer = setup_args.get("protein_layer")
    values = proteins.to_numpy()
    prot_new = AnnData(
        X=values if prot_layer is None else None,
        obs=pd.DataFrame(index=proteins.index) if prot is None else prot.obs.copy(),
        var=pd.DataFrame(index=proteins.columns) if prot is None else prot.var.copy(),
        layers={} if prot_layer is None else {prot_layer: values},
    )
    rna_new = _shallow(rna, rna_counts, setup_args.get("rna_layer"))
    with no_pull(), shared_var_names((rna_new, prot_new)):
        return MuData(
            {
                modalities.get("rna_layer") or "rna": rna_new,
                modalities.get("protein_layer") or "prot": prot_new,
            }
        )
