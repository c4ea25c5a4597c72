"""Read cells of a TileDB-SOMA cell store on the union of its datasets' panels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._ingest import GENE, MEASUREMENT, PROTEIN, ingest, read_metadata
from ._panels import PANELS_KEY

PROTEINS_OBSM_KEY = "protein_expression"
# TileDB's memory budget per open store: a read of scattered cells otherwise loads every
# tile it touches (up to TileDB's default of 10 GB), so memory would grow with the store.
TILEDB_MEMORY_BUDGET = 256 * 2**20
_OBS_SLICE = 65_536


def open_experiment(uri: str):
    """Open a SOMA experiment for reading under :data:`TILEDB_MEMORY_BUDGET`."""
    import tiledbsoma

    context = tiledbsoma.SOMATileDBContext(
        tiledb_config={"sm.mem.total_budget": TILEDB_MEMORY_BUDGET}
    )
    return tiledbsoma.Experiment.open(uri, context=context)


@dataclass
class CellBlock:
    """Rows read from a :class:`CellStore`: sparse counts plus each cell's panels.

    ``genes`` and ``proteins`` are CSR ``(cells, panel)`` counts on the store's union panels
    (``None`` when not read); ``gene_panel[dataset]`` and ``protein_panel[dataset]`` say
    which of them a cell's dataset measured. :meth:`dense` turns rows into dense arrays with
    NaN for the rest.
    """

    rows: np.ndarray
    genes: sp.csr_matrix | None
    proteins: sp.csr_matrix | None
    dataset: np.ndarray
    gene_panel: np.ndarray
    protein_panel: np.ndarray
    batch: np.ndarray

    def dense(self, take: slice | np.ndarray = slice(None)) -> dict[str, np.ndarray]:
        """Dense ``X`` (genes), ``proteins`` (NaN = unmeasured) and ``batch`` of ``take``."""
        out = {"batch": self.batch[take]}
        dataset = self.dataset[take]
        for key, matrix, panel in (
            ("X", self.genes, self.gene_panel),
            ("proteins", self.proteins, self.protein_panel),
        ):
            if matrix is not None:
                values = matrix[take].toarray()
                out[key] = np.where(panel[dataset], values, np.float32(np.nan))
        return out


def _encoded(column) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, values)`` of an Arrow string column, without a Python string per row."""
    encoded = column.combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy(), np.asarray(encoded.dictionary.to_pylist(), dtype=object)


def _codes(parts: list[tuple[np.ndarray, np.ndarray]], categories) -> np.ndarray:
    """Codes of the encoded ``parts`` in ``categories``, concatenated."""
    index = pd.Index(categories)
    return np.concatenate([index.get_indexer(values)[codes] for codes, values in parts])


class CellStore:
    """A collection of datasets with different panels, stored out of core with TileDB-SOMA.

    Written by :func:`~sctranslator.data.ingest` (``sctranslator ingest``): one SOMA
    Experiment whose measurement ``features`` holds genes (``feature_type`` ``"Gene
    Expression"``) and antibodies (``"Antibody Capture"``) side by side, as in 10x's
    matrices, as sparse ``counts``; ``obs`` has each cell's ``dataset`` and ``batch``; the
    experiment's metadata records each dataset's gene and protein panel. The store's
    genes and proteins are the unions of the panels. Reads return a cell's counts with NaN
    for every gene or protein its dataset did not measure: for
    :class:`~sctranslator.SCTRANSLATOR` an unmeasured gene is not a token and an unmeasured
    protein is left out of the loss. Only ``obs``'s dataset and batch codes (a few bytes per
    cell) are held in memory.

    Parameters
    ----------
    uri
        Store folder.

    Examples
    --------
    >>> store = sct.data.CellStore.ingest(["a.h5mu", "b.h5ad"], "atlas.soma", setup=setup)
    >>> model = sct.SCTRANSLATOR(store)
    """

    def __init__(self, uri: str | os.PathLike):

        self.uri = str(uri)
        self.metadata = read_metadata(uri)
        with open_experiment(self.uri) as experiment:
            var = (
                experiment.ms[MEASUREMENT]
                .var.read(column_names=["soma_joinid", "feature_name", "feature_type"])
                .concat()
                .to_pandas()
                .sort_values("soma_joinid")
            )
            joinids, datasets, batches = [], [], []
            n_obs = experiment.obs.count
            for start in range(0, n_obs, _OBS_SLICE):  # slices: TileDB's buffers stay small
                table = experiment.obs.read(
                    coords=(slice(start, start + _OBS_SLICE - 1),),
                    column_names=["soma_joinid", "dataset", "batch"],
                ).concat()
                joinids.append(table["soma_joinid"].to_numpy())
                datasets.append(_encoded(table["dataset"]))  # codes: no string per cell
                batches.append(_encoded(table["batch"]))
        joinids = np.concatenate(joinids)
        order = np.argsort(joinids, kind="stable")
        if not np.array_equal(joinids[order], np.arange(len(joinids))):
            raise ValueError(f"{uri}: cell ids are not contiguous; rewrite it with ingest.")
        genes, proteins = var[var.feature_type == GENE], var[var.feature_type == PROTEIN]
        self.genes = genes["feature_name"].to_numpy().astype(str)
        self.proteins = proteins["feature_name"].to_numpy().astype(str)
        self._gene_ids = genes["soma_joinid"].to_numpy()
        self._protein_ids = proteins["soma_joinid"].to_numpy()
        self._column = np.full(int(var["soma_joinid"].max()) + 1, -1, dtype=np.int64)
        self._column[self._gene_ids] = np.arange(len(self._gene_ids))
        self._column[self._protein_ids] = np.arange(len(self._protein_ids))
        self.datasets = list(self.metadata["datasets"])
        self.dataset_codes = _codes(datasets, self.datasets)[order]
        self.batches = np.unique(np.concatenate([values for _, values in batches])).astype(str)
        self.batch_codes = _codes(batches, self.batches).astype(np.int64)[order]
        panels = self.metadata["datasets"]
        self._gene_panel = np.stack([np.isin(self.genes, panels[d]["genes"]) for d in panels])
        self._protein_panel = np.stack(
            [np.isin(self.proteins, panels[d]["proteins"]) for d in panels]
        )
        self._experiment = None

    @classmethod
    def ingest(
        cls, inputs: Sequence[str | os.PathLike], uri: str | os.PathLike, **kwargs
    ) -> CellStore:
        """Write a store with :func:`~sctranslator.data.ingest` (same arguments), open it."""
        return cls(ingest(inputs, uri, **kwargs))

    def __repr__(self) -> str:
        return (
            f"CellStore({self.uri!r}): {self.n_obs} cells of {len(self.datasets)} datasets, "
            f"{len(self.genes)} genes, {len(self.proteins)} proteins"
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_experiment": None}  # handles do not travel between processes

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return len(self.batch_codes)

    def _opened(self):
        """Return the experiment, opened once per process."""
        if self._experiment is None:
            self._experiment = open_experiment(self.uri)
        return self._experiment

    def read(self, rows: np.ndarray, genes: bool = True, proteins: bool = True) -> CellBlock:
        """Read the cells ``rows`` (store positions), in the order given.

        Parameters
        ----------
        rows
            Cells to read, in any order, repeats allowed; reads are fastest for runs of
            consecutive cells.
        genes, proteins
            Which features to read.
        """
        rows = np.asarray(rows, dtype=np.int64)
        kinds = [
            (kind, ids, n)
            for kind, ids, n, keep in (
                ("gene", self._gene_ids, len(self.genes), genes),
                ("protein", self._protein_ids, len(self.proteins), proteins),
            )
            if keep
        ]
        matrices = {kind: sp.csr_matrix((len(rows), n), dtype=np.float32) for kind, _, n in kinds}
        columns = np.sort(np.concatenate([ids for _, ids, _ in kinds] or [[]])).astype(np.int64)
        if len(rows) and len(columns):
            unique, inverse = np.unique(rows, return_inverse=True)  # a row may come twice
            matrix = self._opened().ms[MEASUREMENT].X["counts"]
            table = matrix.read(coords=(unique, columns)).tables().concat()
            cell = np.searchsorted(unique, table["soma_dim_0"].to_numpy())
            feature = table["soma_dim_1"].to_numpy()
            values = table["soma_data"].to_numpy().astype(np.float32)
            for kind, ids, n in kinds:
                pick = np.isin(feature, ids)
                matrices[kind] = sp.csr_matrix(
                    (values[pick], (cell[pick], self._column[feature[pick]])),
                    shape=(len(unique), n),
                )[inverse]
        dataset = self.dataset_codes[rows]
        return CellBlock(
            rows=rows,
            genes=matrices.get("gene"),
            proteins=matrices.get("protein"),
            dataset=dataset,
            gene_panel=self._gene_panel,
            protein_panel=self._protein_panel,
            batch=self.batch_codes[rows],
        )

    def obs_names(self, rows: np.ndarray) -> np.ndarray:
        """Cell names (``"<dataset>:<cell>"``) of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        obs = (
            self._opened()
            .obs.read(coords=(np.unique(rows),), column_names=["soma_joinid", "obs_id"])
            .concat()
            .to_pandas()
            .set_index("soma_joinid")["obs_id"]
        )
        return obs.loc[rows].to_numpy().astype(str)

    def to_anndata(self, rows: np.ndarray) -> AnnData:
        """Return the cells ``rows`` as an in-memory AnnData laid out for ``setup_anndata``.

        ``X`` holds the RNA counts on the store's genes (NaN: unmeasured, with the panels in
        ``uns["sctranslator_panels"]``), ``obsm["protein_expression"]`` the proteins (NaN:
        unmeasured), ``obs["batch"]`` and ``obs["dataset"]`` categoricals with every category
        of the store.
        """
        rows = np.asarray(rows, dtype=np.int64)
        values = self.read(rows).dense()
        names = self.obs_names(rows)
        obs = pd.DataFrame(
            {
                "batch": pd.Categorical.from_codes(values["batch"], categories=self.batches),
                "dataset": pd.Categorical.from_codes(
                    self.dataset_codes[rows], categories=self.datasets
                ),
            },
            index=names,
        )
        panels = {d: self.metadata["datasets"][d]["genes"] for d in self.datasets}
        adata = AnnData(
            X=values["X"], obs=obs, var=pd.DataFrame(index=self.genes), uns={PANELS_KEY: panels}
        )
        adata.obsm[PROTEINS_OBSM_KEY] = pd.DataFrame(
            values["proteins"], index=names, columns=self.proteins
        )
        return adata
