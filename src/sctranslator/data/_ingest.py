"""Write a collection of datasets with different panels into a TileDB-SOMA cell store."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._panels import PANELS_KEY
from ._rows import FileParts, RowChecks, RowMatrix, as_csr, open_parts
from ._validate import check_unique
from ._vocabulary import Vocabulary

logger = logging.getLogger(__name__)

MEASUREMENT = "features"
"""The store's one SOMA measurement: genes and antibodies side by side, as in 10x's matrices."""
METADATA_KEY = "sctranslator"
"""Experiment metadata: JSON with the format version and each dataset's panel."""
FORMAT = 1
_WRITE_CELLS = 100_000
"""At most this many cells are converted and written at a time."""
_WRITE_VALUES = 2**22
"""At most about this many stored values (non-zeros, dense entries) are written at a time:
memory holds one such piece, whatever the size of a file. Each piece is a TileDB fragment;
their metadata is consolidated when the store is complete."""
GENE, PROTEIN = "Gene Expression", "Antibody Capture"
_MUDATA_KEYS = {"rna_layer", "protein_layer", "batch_key", "modalities"}
_ANNDATA_KEYS = {"layer", "protein_expression_obsm_key", "protein_names_uns_key", "batch_key"}


# ---------------------------------------------------------------------------- datasets
@dataclass
class Chunk:
    """Consecutive cells of one dataset, ready to write: names, labels and CSR counts."""

    obs: pd.DataFrame
    """``dataset``, ``batch`` and ``cell`` of each cell; the index is ``"<dataset>:<cell>"``."""
    features: np.ndarray
    """Feature ids (``"gene:<name>"``, ``"protein:<name>"``), the columns of ``matrix``."""
    matrix: sp.csr_matrix


@dataclass
class Dataset:
    """One input file, opened and checked: its matrices are read from disk in row chunks.

    Use it as a context manager (the file is closed on exit); :meth:`chunks` reads, checks
    and converts its cells a piece at a time.
    """

    name: str
    source: str
    rna: RowMatrix
    genes: np.ndarray
    proteins: RowMatrix | None
    protein_names: np.ndarray
    cells: np.ndarray
    batch_codes: np.ndarray
    """Each cell's position in ``batch_names`` (codes: no string per cell)."""
    batch_names: np.ndarray
    missing_genes: bool
    parts: FileParts

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.parts.close()

    @property
    def features(self) -> np.ndarray:
        """Feature ids of the genes, then of the proteins."""
        ids = [f"gene:{g}" for g in self.genes] + [f"protein:{p}" for p in self.protein_names]
        return np.asarray(ids, dtype=object)

    def var(self) -> pd.DataFrame:
        """``feature_name`` and ``feature_type`` of the features, indexed by their ids."""
        return pd.DataFrame(
            {
                "feature_name": [*self.genes, *self.protein_names],
                "feature_type": [GENE] * len(self.genes) + [PROTEIN] * len(self.protein_names),
            },
            index=self.features,
        )

    def bounds(
        self, max_cells: int | None = None, max_values: int | None = None
    ) -> list[tuple[int, int]]:
        """Row ranges of at most ``max_cells`` cells and about ``max_values`` stored values."""
        max_cells = _WRITE_CELLS if max_cells is None else max_cells
        max_values = _WRITE_VALUES if max_values is None else max_values
        cost = self.rna.stored_per_row()
        if self.proteins is not None:
            cost = cost + self.proteins.stored_per_row()
        cumulative = np.cumsum(np.broadcast_to(cost, (len(self.cells),)), dtype=np.int64)
        out, start = [], 0
        while start < len(self.cells):
            before = cumulative[start - 1] if start else 0
            stop = int(np.searchsorted(cumulative, before + max_values, side="right"))
            stop = min(max(stop, start + 1), start + max_cells, len(self.cells))
            out.append((start, stop))
            start = stop
        return out

    def chunks(self) -> Iterator[Chunk]:
        """Yield the cells in pieces (see :meth:`bounds`), checking their values on the way.

        Bad values (NaN, infinite or negative counts, cells without RNA counts) raise after
        the last piece, with the counts over the whole file.
        """
        rna_checks = RowChecks(
            f"the RNA of {self.source}", allow_nan=self.missing_genes, require_nonempty=True
        )
        protein_checks = RowChecks(f"the proteins of {self.source}", allow_nan=True)
        features = self.features
        for start, stop in self.bounds():
            names = self.cells[start:stop]
            parts = [as_csr(self.rna[start:stop])]
            rna_checks.add(parts[0], names)
            if self.proteins is not None:
                parts.append(as_csr(self.proteins[start:stop]))
                protein_checks.add(parts[1], names)
            obs = pd.DataFrame(
                {
                    "dataset": self.name,
                    "batch": self.batch_names[self.batch_codes[start:stop]],
                    "cell": names,
                },
                index=[f"{self.name}:{cell}" for cell in names],
            )
            matrix = parts[0] if len(parts) == 1 else sp.hstack(parts, format="csr")
            yield Chunk(obs=obs, features=features, matrix=matrix)
            del parts, matrix
        rna_checks.check()
        protein_checks.check()


def read_dataset(path: str | os.PathLike, name: str, setup: Mapping | None = None) -> Dataset:
    """Open and check one ``.h5ad`` or ``.h5mu`` file for :func:`ingest`.

    ``setup`` holds the arguments of :meth:`~sctranslator.SCTRANSLATOR.setup_mudata` (for
    ``.h5mu``) and of :meth:`~sctranslator.SCTRANSLATOR.setup_anndata` (for ``.h5ad``); keys
    of the other kind are ignored. A file without proteins (no protein modality, or no
    ``protein_expression_obsm_key`` entry) is RNA-only. Names, panels and batch labels are
    read and checked here; the counts stay on disk and are checked as
    :meth:`Dataset.chunks` reads them. Close the returned dataset (``with``) when done.
    """
    setup = dict(setup or {})
    unknown = set(setup) - _MUDATA_KEYS - _ANNDATA_KEYS
    if unknown:
        raise ValueError(
            f"Unknown setup keys {sorted(unknown)}; allowed: "
            f"{sorted(_MUDATA_KEYS | _ANNDATA_KEYS)}."
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file {str(path)!r} does not exist.")
    if path.suffix not in (".h5mu", ".h5ad"):
        raise ValueError(f"Input file {str(path)!r} must be an .h5ad or .h5mu file.")
    parts = open_parts(path, setup)
    try:
        return _checked(parts, path, name, setup)
    except BaseException:
        parts.close()
        raise


def _checked(parts: FileParts, path: Path, name: str, setup: dict) -> Dataset:
    genes = np.asarray(parts.genes).astype(str)
    if len(genes) == 0:
        raise ValueError(f"{path} has no genes in its RNA.")
    check_unique(genes, what=f"gene (in {path.name})")
    _check_distinct_genes(genes, path)
    check_unique(parts.protein_names, what=f"protein (in {path.name})")
    check_unique(parts.cells, what=f"cell (in {path.name})")
    if parts.proteins is None:
        _report_rna_only(path, setup)
    batch_key = setup.get("batch_key")
    cells = np.asarray([str(cell) for cell in parts.cells], dtype=object)
    if batch_key is None:
        codes, names = np.zeros(len(cells), dtype=np.int64), np.asarray([name], dtype=object)
    else:
        labels = parts.obs_column(batch_key)
        if labels is None:
            raise KeyError(f"batch_key {batch_key!r} not found in the obs of {path}.")
        codes, values = pd.factorize(pd.Series(labels), use_na_sentinel=False)
        names = np.asarray([f"{name}:{value}" for value in values], dtype=object)
    return Dataset(
        name=name,
        source=str(path.resolve()),
        rna=parts.rna,
        genes=genes,
        proteins=parts.proteins,
        protein_names=np.asarray(parts.protein_names).astype(str),
        cells=cells,
        batch_codes=codes,
        batch_names=names,
        missing_genes=PANELS_KEY in parts.uns_keys,
        parts=parts,
    )


def _check_distinct_genes(genes: np.ndarray, path: Path) -> None:
    """Raise when two genes of one file are the same vocabulary token (``CD4``, ``cd4``)."""
    ids = Vocabulary.from_panels(genes).lookup_genes(genes)
    values, counts = np.unique(ids, return_counts=True)
    clash = np.isin(ids, values[counts > 1])
    if clash.any():
        groups = pd.Series(genes[clash]).groupby(ids[clash]).agg(list).tolist()
        raise ValueError(
            f"{path}: genes with different names are the same gene (case, or a previous "
            f"symbol): {groups[:5]}. Keep one name of each, e.g. sum or drop the others."
        )


def _report_rna_only(path: Path, setup: dict) -> None:
    """Log an RNA-only file; warn when the setup names proteins the file lacks (a typo?)."""
    if path.suffix == ".h5mu":
        named = (setup.get("modalities") or {}).get("protein_layer")
        where = f"modality {named or 'prot'!r}"
    else:
        named = setup.get("protein_expression_obsm_key")
        where = f"obsm[{named!r}]"
    message = f"{path} has no {where}: its cells are ingested as RNA-only context."
    if named is None:
        logger.info(message)
    else:
        warnings.warn(message, UserWarning, stacklevel=4)


# ------------------------------------------------------------------------------ writing
class _Writer:
    """Append chunks of cells to the SOMA experiment at ``target``, creating it at first.

    Cells get consecutive ids after those already there; a feature gets the next id the
    first time a chunk has it. Only the ids of the features are held in memory.
    """

    def __init__(self, target: Path):
        self.target = str(target)
        self.n_obs = 0
        self.features = pd.Index([], dtype=object)
        if target.exists():
            import tiledbsoma

            with tiledbsoma.Experiment.open(self.target) as experiment:
                self.n_obs = int(experiment.obs.count)
                var = (
                    experiment.ms[MEASUREMENT]
                    .var.read(column_names=["soma_joinid", "var_id"])
                    .concat()
                    .to_pandas()
                    .sort_values("soma_joinid")
                )
            self.features = pd.Index(var["var_id"].to_numpy(), dtype=object)

    def write(self, chunk: Chunk, var: pd.DataFrame, *, consolidate: bool = False) -> None:
        """Write ``chunk`` (``var``: its features' names and types, indexed by their ids)."""
        import pyarrow as pa
        import tiledbsoma
        import tiledbsoma.io

        new = chunk.features[self.features.get_indexer(chunk.features) < 0]
        first_var = len(self.features)
        self.features = self.features.append(pd.Index(new, dtype=object))
        n_cells = len(chunk.obs)
        if self.n_obs == 0 and first_var == 0:
            self._create(n_cells, len(self.features))
        else:
            tiledbsoma.io.resize_experiment(
                self.target,
                nobs=self.n_obs + n_cells,
                nvars={MEASUREMENT: len(self.features)},
            )
        matrix = chunk.matrix.tocoo()
        columns = self.features.get_indexer(chunk.features).astype(np.int64)
        counts = pa.table(
            {
                "soma_dim_0": matrix.row.astype(np.int64) + self.n_obs,
                "soma_dim_1": columns[matrix.col],
                "soma_data": matrix.data.astype(np.float32, copy=False),
            }
        )
        del matrix
        obs = chunk.obs.reset_index(names="obs_id")
        obs.insert(0, "soma_joinid", np.arange(self.n_obs, self.n_obs + n_cells, dtype=np.int64))
        options = tiledbsoma.TileDBWriteOptions(consolidate_and_vacuum=consolidate)
        with tiledbsoma.Experiment.open(self.target, "w") as experiment:
            measurement = experiment.ms[MEASUREMENT]
            _write_frame(experiment.obs, obs, options)
            if len(new):
                rows = var.loc[new].reset_index(names="var_id")
                ids = np.arange(first_var, first_var + len(new), dtype=np.int64)
                rows.insert(0, "soma_joinid", ids)
                _write_frame(measurement.var, rows, options)
            if len(counts) or consolidate:
                measurement.X["counts"].write(counts, platform_config=options)
        self.n_obs += n_cells

    def _create(self, n_obs: int, n_var: int) -> None:
        import pyarrow as pa
        import tiledbsoma

        strings = [(name, pa.large_string()) for name in ("dataset", "batch", "cell")]
        obs_schema = pa.schema([("obs_id", pa.large_string()), *strings])
        var_schema = pa.schema(
            [(name, pa.large_string()) for name in ("var_id", "feature_name", "feature_type")]
        )
        with tiledbsoma.Experiment.create(self.target) as experiment:
            experiment.add_new_dataframe("obs", schema=obs_schema, domain=[(0, n_obs - 1)])
            measurement = experiment.add_new_collection("ms").add_new_collection(
                MEASUREMENT, tiledbsoma.Measurement
            )
            measurement.add_new_dataframe("var", schema=var_schema, domain=[(0, n_var - 1)])
            measurement.add_new_collection("X").add_new_sparse_ndarray(
                "counts", type=pa.float32(), shape=(n_obs, n_var)
            )


def _write_frame(frame, values: pd.DataFrame, options) -> None:
    """Write ``values`` to the SOMA DataFrame ``frame``, cast to its schema."""
    import pyarrow as pa

    schema = frame.schema
    table = pa.Table.from_pandas(values[schema.names], preserve_index=False)
    frame.write(table.cast(schema), platform_config=options)


def _pieces(datasets: Sequence[tuple[str, Path]], setup, metadata: dict) -> Iterator[tuple]:
    """Yield ``(chunk, var)`` of every file in turn; record each file in ``metadata``."""
    for name, path in datasets:
        with read_dataset(path, name, setup) as dataset:
            var = dataset.var()
            for chunk in dataset.chunks():
                yield chunk, var
            metadata["datasets"][name] = {
                "source": dataset.source,
                "source_size": path.stat().st_size,
                "source_mtime": path.stat().st_mtime,
                "setup": dict(setup or {}),
                "cells": len(dataset.cells),
                "genes": list(map(str, dataset.genes)),
                "proteins": list(map(str, dataset.protein_names)),
            }
            logger.info("Ingested %s: %d cells from %s.", name, len(dataset.cells), path)


def ingest(
    inputs: Sequence[str | os.PathLike],
    uri: str | os.PathLike,
    *,
    setup: Mapping | None = None,
    names: Sequence[str] | None = None,
    append: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write datasets with different gene and protein panels into one TileDB-SOMA store.

    Each file is read, checked and written in turn, a piece of at most 100,000 cells and
    about four million stored values at a time, straight from the file on disk: memory holds
    one piece, whatever the size or the number of the files (bad values raise after a file's
    last piece, with their counts over the file). Each piece is one TileDB fragment; at the
    end TileDB-SOMA consolidates the fragments' metadata and commits, so that opening and
    reading the store do not slow down with the number of pieces. Writing goes to a
    temporary folder beside ``uri`` that replaces it at the end (an append copies the store
    first): an error or interruption leaves the store as it was and nothing partial behind.
    See :class:`~sctranslator.data.CellStore` for the layout.

    Parameters
    ----------
    inputs
        ``.h5ad``/``.h5mu`` files; each is a dataset, named after the file (or ``names``).
    uri
        Store folder (local).
    setup
        Where the counts are, as for :meth:`~sctranslator.SCTRANSLATOR.setup_mudata` and
        :meth:`~sctranslator.SCTRANSLATOR.setup_anndata`; see :func:`read_dataset`.
    names
        Dataset names; the file names without suffix by default.
    append
        Add the datasets to an existing store.
    overwrite
        Replace an existing store.

    Returns
    -------
    The store's path.

    Examples
    --------
    >>> setup = {"rna_layer": "counts", "protein_layer": "counts"}
    >>> sct.data.ingest(["lab_a.h5mu", "lab_b.h5mu"], "atlas.soma", setup=setup)
    >>> sct.data.ingest(["lab_c.h5ad"], "atlas.soma", append=True)
    """
    uri = Path(uri)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("No input files given.")
    names = [p.stem for p in inputs] if names is None else list(map(str, names))
    if len(names) != len(inputs):
        raise ValueError(f"{len(names)} names for {len(inputs)} inputs.")
    check_unique(names, what="dataset")
    if any(":" in name for name in names):
        raise ValueError(
            f"Dataset names may not contain ':' (it joins dataset and cell names): {names}."
        )
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Input files do not exist: {missing}.")
    exists = uri.exists()
    if exists and not (append or overwrite):
        raise FileExistsError(
            f"{uri} already exists; pass append=True (--append) to add datasets or "
            "overwrite=True (--overwrite) to replace it."
        )
    metadata = {"format": FORMAT, "datasets": {}}
    if exists:
        if not uri.is_dir():
            raise FileExistsError(f"{uri} is a file, not a store folder; choose another path.")
        if append or any(uri.iterdir()):  # overwrite replaces a store, never another folder
            existing = read_metadata(uri)
            metadata = existing if append else metadata
    if append:
        taken = sorted(set(names) & set(metadata["datasets"]))
        if taken:
            raise ValueError(
                f"Datasets {taken} are already in {uri}; give the new files other names."
            )
    uri.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=uri.parent, prefix=f".{uri.name}."))
    target = work / "store"
    try:
        if exists and append:
            shutil.copytree(uri, target)
        writer = _Writer(target)
        pieces = _pieces(list(zip(names, inputs, strict=True)), setup, metadata)
        piece = next(pieces, None)
        for following in pieces:  # one piece ahead: the last one consolidates
            writer.write(*piece)
            piece = following
        if piece is not None:
            writer.write(*piece, consolidate=True)
        elif not target.exists():
            raise ValueError(f"The input files {[str(p) for p in inputs]} hold no cells.")
        _write_metadata(target, metadata)
        if exists:
            old = work / "old"
            os.replace(uri, old)
            try:
                os.replace(target, uri)
            except BaseException:
                os.replace(old, uri)  # the previous store comes back
                raise
        else:
            os.replace(target, uri)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return uri


def read_metadata(uri: str | os.PathLike) -> dict:
    """Return the store's metadata (format, panels); raise when ``uri`` is not a store."""
    import tiledbsoma

    try:
        with tiledbsoma.Experiment.open(str(uri)) as experiment:
            text = experiment.metadata.get(METADATA_KEY)
    except (tiledbsoma.DoesNotExistError, tiledbsoma.SOMAError):
        raise FileNotFoundError(
            f"{uri} is not a cell store; write one with `sctranslator ingest` "
            "(sctranslator.data.ingest)."
        ) from None
    if text is None:
        raise ValueError(f"{uri} is a SOMA experiment but not an sctranslator cell store.")
    metadata = json.loads(text)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{uri} has store format {metadata.get('format')}; expected {FORMAT}.")
    return metadata


def _write_metadata(uri: Path, metadata: dict) -> None:
    import tiledbsoma

    with tiledbsoma.Experiment.open(str(uri), "w") as experiment:
        experiment.metadata[METADATA_KEY] = json.dumps(metadata)
