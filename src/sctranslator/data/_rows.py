"""Read an ``.h5ad``/``.h5mu`` file for :func:`~sctranslator.data.ingest` in row chunks.

Names, panels and labels are read whole (a few bytes per cell or feature); the RNA and
protein matrices stay on disk and are read a range of rows at a time through h5py and
anndata's backed sparse datasets, so memory does not grow with the size of a file. A matrix
in another layout (CSC) and a file without anndata's or MuData's encoding attributes (written
before anndata 0.8) are read into memory, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)


class RowMatrix:
    """A cells x features matrix read by ranges of rows (``matrix[start:stop]``).

    Holds a dense h5py dataset, anndata's backed CSR dataset, the numeric columns of a
    DataFrame stored in the file, or an in-memory matrix.
    """

    def __init__(self, source, shape: tuple[int, int], indptr=None, columns=None):
        self._source = source
        self.shape = (int(shape[0]), int(shape[1]))
        self._indptr = indptr
        self._columns = columns

    @classmethod
    def of(cls, matrix) -> RowMatrix:
        """Wrap an in-memory matrix (dense, sparse or a DataFrame of numbers)."""
        if isinstance(matrix, pd.DataFrame):
            matrix = matrix.to_numpy(dtype=np.float32)
        if sp.issparse(matrix):
            matrix = sp.csr_matrix(matrix)
            return cls(matrix, matrix.shape, indptr=matrix.indptr)
        return cls(matrix, np.shape(matrix))

    @classmethod
    def open(cls, element) -> RowMatrix:
        """Wrap a matrix element of an open h5 file, read lazily where its encoding allows."""
        from anndata.io import read_elem, sparse_dataset

        if isinstance(element, h5py.Dataset):
            if element.ndim != 2:
                raise ValueError(f"{element.name} is not a cells x features matrix.")
            return cls(element, element.shape)
        encoding = element.attrs.get("encoding-type")
        if encoding == "csr_matrix":
            return cls(sparse_dataset(element), element.attrs["shape"], indptr=element["indptr"])
        if encoding == "dataframe":
            columns = [element[name] for name in element.attrs["column-order"]]
            n_rows = len(element[element.attrs["_index"]])
            return cls(None, (n_rows, len(columns)), columns=columns)
        logger.info("%s (%s) is read into memory.", element.name, encoding)  # e.g. CSC
        return cls.of(read_elem(element))

    def stored_per_row(self) -> np.ndarray | int:
        """Values stored per row: non-zeros of a sparse matrix, else the number of columns."""
        if self._indptr is None:
            return self.shape[1]
        return np.diff(np.asarray(self._indptr[:], dtype=np.int64))

    def __getitem__(self, rows: slice):
        if self._columns is not None:
            blocks = [_column(column, rows) for column in self._columns]
            return np.column_stack(blocks) if blocks else np.zeros((0, 0), np.float32)
        return self._source[rows]


def _column(column, rows: slice) -> np.ndarray:
    """Rows of one DataFrame column stored in an h5 file, as ``float32``."""
    from anndata.io import read_elem

    values = column[rows] if isinstance(column, h5py.Dataset) else read_elem(column)[rows]
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"Column {column.name} is not numeric; protein counts must be numbers."
        ) from None


class _Part:
    """An AnnData's parts that ingest reads: an AnnData group of a file, or an AnnData."""

    def __init__(self, group: h5py.Group | None = None, adata=None):
        self._group, self._adata = group, adata

    def _read(self, key: str):
        from anndata.io import read_elem

        return read_elem(self._group[key])

    def _index(self, key: str) -> np.ndarray:
        if self._adata is not None:
            return np.asarray(getattr(self._adata, f"{key}_names"))
        frame = self._group[key]
        return np.asarray(self._read(f"{key}/{frame.attrs['_index']}"))

    @property
    def obs_names(self) -> np.ndarray:
        return self._index("obs")

    @property
    def var_names(self) -> np.ndarray:
        return self._index("var")

    def obs_column(self, name: str) -> np.ndarray | None:
        """One ``obs`` column, or ``None`` when there is none of that name."""
        if self._adata is not None:
            return self._adata.obs[name].to_numpy() if name in self._adata.obs else None
        obs = self._group["obs"]
        if name not in list(obs.attrs.get("column-order", [])):
            return None
        return np.asarray(self._read(f"obs/{name}"))

    def keys(self, attr: str) -> list[str]:
        """Keys of ``layers``, ``obsm`` or ``uns``."""
        if self._adata is not None:
            return list(getattr(self._adata, attr))
        return list(self._group[attr]) if attr in self._group else []

    def matrix(self, layer: str | None, what: str) -> RowMatrix:
        """``X`` or ``layers[layer]``, with the errors of :func:`~sctranslator.data.get_matrix`."""
        if layer is not None and layer not in self.keys("layers"):
            raise KeyError(
                f"Layer {layer!r} not found in {what}; available layers: {self.keys('layers')}."
            )
        if self._adata is not None:
            from ._validate import get_matrix

            return RowMatrix.of(get_matrix(self._adata, layer=layer, what=what))
        key = "X" if layer is None else f"layers/{layer}"
        if key not in self._group:
            raise ValueError(f"{what} has no `.X`; pass the layer that holds the counts.")
        return RowMatrix.open(self._group[key])

    def obsm(self, key: str) -> tuple[RowMatrix, np.ndarray | None]:
        """``obsm[key]`` and its column names when it is a DataFrame (else ``None``)."""
        if self._adata is not None:
            value = self._adata.obsm[key]
            columns = np.asarray(value.columns) if isinstance(value, pd.DataFrame) else None
            return RowMatrix.of(value), columns
        element = self._group[f"obsm/{key}"]
        columns = None
        if element.attrs.get("encoding-type") == "dataframe":
            columns = np.asarray(list(element.attrs["column-order"]), dtype=str)
        return RowMatrix.open(element), columns

    def uns(self, key: str):
        return self._adata.uns[key] if self._adata is not None else self._read(f"uns/{key}")


@dataclass
class FileParts:
    """What ingest reads of one file: names, labels, and the matrices as :class:`RowMatrix`."""

    genes: np.ndarray
    cells: np.ndarray
    rna: RowMatrix
    proteins: RowMatrix | None
    protein_names: np.ndarray
    uns_keys: list[str]
    obs: pd.DataFrame | None
    """Global obs of a MuData (``None``: the RNA's own obs)."""
    _part: _Part
    _file: h5py.File | None

    def obs_column(self, name: str) -> np.ndarray | None:
        """Column ``name`` of the cells' obs, in the RNA's cell order, or ``None``."""
        if self.obs is None:
            return self._part.obs_column(name)
        if name not in self.obs:
            return None
        return self.obs[name].reindex(pd.Index(self.cells)).to_numpy()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def open_parts(path: Path, setup: dict) -> FileParts:
    """Open ``path`` (``.h5ad`` or ``.h5mu``) as :class:`FileParts`; errors name the fix."""
    handle = h5py.File(path, "r")
    try:
        encoding = str(handle.attrs.get("encoding-type", "")).lower()
        if path.suffix == ".h5mu":
            if encoding == "mudata":
                return _from_mudata(handle, None, setup, path)
            handle.close()
            return _from_mudata(None, _read_mudata(path), setup, path)
        if encoding == "anndata":
            return _from_anndata(_Part(handle), handle, setup, path)
        handle.close()
        logger.info("%s predates anndata's encoding attributes: read into memory.", path)
        import anndata

        return _from_anndata(_Part(adata=anndata.read_h5ad(path)), None, setup, path)
    except BaseException:
        if handle.id.valid:
            handle.close()
        raise


def _read_mudata(path: Path):
    import mudata

    from sctranslator._mudata import no_pull, shared_var_names

    logger.info("%s lacks MuData's encoding attributes: read into memory.", path)
    with no_pull(), shared_var_names(None):
        return mudata.read_h5mu(path)


def _from_mudata(handle: h5py.File | None, mdata, setup: dict, path: Path) -> FileParts:
    modalities = setup.get("modalities") or {"rna_layer": "rna", "protein_layer": "prot"}
    if mdata is not None:
        names = list(mdata.mod)
    else:
        group = handle.get("mod", {})
        names = list(group.attrs.get("mod-order", [])) if hasattr(group, "attrs") else []
        names = [str(n) for n in names if n in group] + sorted(set(group) - set(names))

    def part(key: str) -> _Part:
        return _Part(adata=mdata.mod[key]) if mdata is not None else _Part(handle[f"mod/{key}"])

    rna_key = modalities.get("rna_layer", "rna")
    if rna_key not in names:
        raise KeyError(
            f"{path} has no RNA modality {rna_key!r} (modalities: {names}); set "
            "setup['modalities']['rna_layer'] to the modality with the RNA counts."
        )
    rna = part(rna_key)
    batch_modality = modalities.get("batch_key")
    if batch_modality is not None and batch_modality not in names:
        raise KeyError(
            f"{path} has no modality {batch_modality!r} (modalities: {names}) for "
            "setup['modalities']['batch_key']."
        )
    if batch_modality is not None:
        obs = None if batch_modality == rna_key else _frame(part(batch_modality), setup)
    elif mdata is not None:
        obs = mdata.obs
    else:
        obs = _frame(_Part(handle), setup)
    counts = rna.matrix(setup.get("rna_layer"), what=f"the RNA of {path}")
    proteins, protein_names = None, np.array([], dtype=str)
    protein_key = modalities.get("protein_layer", "prot")
    if protein_key in names:
        protein = part(protein_key)
        if not pd.Index(protein.obs_names).equals(pd.Index(rna.obs_names)):
            raise ValueError(
                f"{path}: the {rna_key!r} and {protein_key!r} modalities are not paired cell "
                "by cell; use `sctranslator.pp.pair_modalities` first and save the result."
            )
        proteins = protein.matrix(setup.get("protein_layer"), what=f"the proteins of {path}")
        protein_names = protein.var_names
    return FileParts(
        genes=rna.var_names,
        cells=rna.obs_names,
        rna=counts,
        proteins=proteins,
        protein_names=np.asarray(protein_names),
        uns_keys=rna.keys("uns"),
        obs=obs,
        _part=rna,
        _file=handle,
    )


def _frame(part: _Part, setup: dict) -> pd.DataFrame:
    """Return the obs of ``part`` with the setup's batch column only (empty when it lacks it)."""
    key = setup.get("batch_key")
    frame = pd.DataFrame(index=pd.Index(part.obs_names))
    column = None if key is None else part.obs_column(key)
    if column is not None:
        frame[key] = column
    return frame


def _from_anndata(part: _Part, handle, setup: dict, path: Path) -> FileParts:
    counts = part.matrix(setup.get("layer"), what=f"the RNA of {path}")
    key = setup.get("protein_expression_obsm_key")
    proteins, names = None, np.array([], dtype=str)
    if key is not None and key in part.keys("obsm"):
        proteins, names = part.obsm(key)
        if names is None:
            names_key = setup.get("protein_names_uns_key")
            if names_key is None or names_key not in part.keys("uns"):
                raise ValueError(
                    f"{path}: obsm[{key!r}] is an array; set setup['protein_names_uns_key'] "
                    "to the uns key with the protein names."
                )
            names = np.asarray(part.uns(names_key))
    return FileParts(
        genes=part.var_names,
        cells=part.obs_names,
        rna=counts,
        proteins=proteins,
        protein_names=names,
        uns_keys=part.keys("uns"),
        obs=None,
        _part=part,
        _file=handle,
    )


@dataclass
class RowChecks:
    """Counts of bad values over the row chunks of one matrix, raised as one error at the end.

    The messages are those of :func:`~sctranslator.data.check_values` on the whole matrix.
    """

    what: str
    allow_nan: bool = False
    require_nonempty: bool = False
    n_nan: int = 0
    n_inf: int = 0
    n_neg: int = 0
    empty: list = field(default_factory=list)

    def add(self, block: sp.csr_matrix, names: np.ndarray) -> None:
        values = block.data
        nan = np.isnan(values)
        self.n_nan += int(nan.sum())
        self.n_inf += int(np.isinf(values).sum())
        self.n_neg += int((values < 0).sum())
        if self.require_nonempty:
            kept = sp.csr_matrix(
                (np.where(nan, 0, values), block.indices, block.indptr), shape=block.shape
            )
            self.empty.extend(names[np.asarray(kept.sum(axis=1)).ravel() <= 0])

    def check(self) -> None:
        """Raise on NaN (unless allowed), infinite or negative values, or empty rows."""
        if self.n_nan and not self.allow_nan:
            raise ValueError(
                f"{self.what} contains {self.n_nan} NaN values; expected non-negative counts."
            )
        if self.n_inf:
            raise ValueError(f"{self.what} contains {self.n_inf} infinite values.")
        if self.n_neg:
            raise ValueError(
                f"{self.what} contains {self.n_neg} negative values; expected non-negative counts."
            )
        if self.empty:
            examples = ", ".join(map(str, self.empty[:5]))
            raise ValueError(
                f"{len(self.empty)} cells have no counts in {self.what}, e.g. {examples}. "
                "Filter them out first (e.g. `sc.pp.filter_cells(adata, min_counts=1)`)."
            )


def as_csr(block) -> sp.csr_matrix:
    """``float32`` CSR of a row block; NaN (unmeasured) is kept as a stored value."""
    if sp.issparse(block):
        block = sp.csr_matrix(block, dtype=np.float32)
        block.eliminate_zeros()  # explicit zeros are not stored; NaN is
        return block
    block = np.asarray(block, dtype=np.float32)
    rows, cols = np.nonzero(block != 0)  # NaN != 0: stored
    return sp.csr_matrix((block[rows, cols], (rows, cols)), shape=block.shape)
