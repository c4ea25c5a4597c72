"""Write a collection of datasets with different panels into a TileDB-SOMA cell store."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from ._panels import allows_missing_genes
from ._validate import check_unique, check_values, get_matrix, get_modality, iter_row_chunks
from ._vocabulary import Vocabulary

logger = logging.getLogger(__name__)

MEASUREMENT = "features"
"""The store's one SOMA measurement: genes and antibodies side by side, as in 10x's matrices."""
METADATA_KEY = "sctranslator"
"""Experiment metadata: JSON with the format version and each dataset's panel."""
FORMAT = 1
_WRITE_CELLS = 100_000
"""Cells converted and written at a time (one TileDB fragment each: more of them slow reads)."""
GENE, PROTEIN = "Gene Expression", "Antibody Capture"
_MUDATA_KEYS = {"rna_layer", "protein_layer", "batch_key", "modalities"}
_ANNDATA_KEYS = {"layer", "protein_expression_obsm_key", "protein_names_uns_key", "batch_key"}


@dataclass
class Dataset:
    """One input file, read and checked: RNA counts, proteins (or none) and batch labels."""

    name: str
    source: str
    rna: object
    genes: np.ndarray
    proteins: object | None
    protein_names: np.ndarray
    cells: np.ndarray
    batches: np.ndarray

    def to_anndata(self, rows: slice = slice(None)) -> AnnData:
        """Genes and proteins of ``rows`` as one AnnData (features ``"<type>:<name>"``)."""
        parts = [_sparse(self.rna[rows])]
        if self.proteins is not None:
            parts.append(_sparse(self.proteins[rows]))
        var = pd.DataFrame(
            {
                "feature_name": [*self.genes, *self.protein_names],
                "feature_type": [GENE] * len(self.genes) + [PROTEIN] * len(self.protein_names),
            }
        )
        ids = [f"gene:{g}" for g in self.genes] + [f"protein:{p}" for p in self.protein_names]
        var.index = ids
        cells = self.cells[rows]
        obs = pd.DataFrame(
            {"dataset": self.name, "batch": self.batches[rows], "cell": cells},
            index=[f"{self.name}:{cell}" for cell in cells],
        )
        return AnnData(X=sp.hstack(parts, format="csr", dtype=np.float32), obs=obs, var=var)


def _sparse(matrix) -> sp.csr_matrix:
    """``float32`` CSR copy, built in row chunks; NaN (unmeasured) is kept as a stored value."""
    blocks = [sp.csr_matrix(block.astype(np.float32)) for _, block in iter_row_chunks(matrix)]
    return sp.vstack(blocks, format="csr")


def read_dataset(path: str | os.PathLike, name: str, setup: Mapping | None = None) -> Dataset:
    """Read and check one ``.h5ad`` or ``.h5mu`` file for :func:`ingest`.

    ``setup`` holds the arguments of :meth:`~sctranslator.SCTRANSLATOR.setup_mudata` (for
    ``.h5mu``) and of :meth:`~sctranslator.SCTRANSLATOR.setup_anndata` (for ``.h5ad``); keys
    of the other kind are ignored. A file without proteins (no protein modality, or no
    ``protein_expression_obsm_key`` entry) is RNA-only.
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
    if path.suffix == ".h5mu":
        import mudata

        from sctranslator._mudata import no_pull, shared_var_names

        with no_pull(), shared_var_names(None):
            mdata = mudata.read_h5mu(path)
        rna, proteins, names, obs = _from_mudata(mdata, setup, path)
    elif path.suffix == ".h5ad":
        import anndata

        adata = anndata.read_h5ad(path)
        rna, proteins, names, obs = _from_anndata(adata, setup, path)
    else:
        raise ValueError(f"Input file {str(path)!r} must be an .h5ad or .h5mu file.")
    genes = np.asarray(rna.var_names).astype(str)
    if len(genes) == 0:
        raise ValueError(f"{path} has no genes in its RNA.")
    check_unique(genes, what=f"gene (in {path.name})")
    _check_distinct_genes(genes, path)
    check_unique(names, what=f"protein (in {path.name})")
    check_unique(np.asarray(rna.obs_names), what=f"cell (in {path.name})")
    layer = setup.get("rna_layer" if path.suffix == ".h5mu" else "layer")
    counts = get_matrix(rna, layer=layer, what=f"the RNA of {path}")
    check_values(
        counts,
        what=f"the RNA of {path}",
        obs_names=rna.obs_names,
        allow_nan=allows_missing_genes(rna),
        require_nonempty=True,
    )
    if proteins is None:
        _report_rna_only(path, setup)
    else:
        check_values(
            proteins, what=f"the proteins of {path}", obs_names=rna.obs_names, allow_nan=True
        )
    batch_key = setup.get("batch_key")
    if batch_key is not None and batch_key not in obs:
        raise KeyError(f"batch_key {batch_key!r} not found in the obs of {path}.")
    batches = (
        np.full(rna.n_obs, name, dtype=object)
        if batch_key is None
        else np.asarray([f"{name}:{value}" for value in obs[batch_key].astype(str)], dtype=object)
    )
    return Dataset(
        name=name,
        source=str(path.resolve()),
        rna=counts,
        genes=genes,
        proteins=proteins,
        protein_names=np.asarray(names).astype(str),
        cells=np.asarray(rna.obs_names).astype(str),
        batches=batches,
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
        warnings.warn(message, UserWarning, stacklevel=3)


def _from_mudata(mdata: MuData, setup: dict, path: Path):
    modalities = setup.get("modalities") or {"rna_layer": "rna", "protein_layer": "prot"}
    rna_key = modalities.get("rna_layer", "rna")
    if rna_key not in mdata.mod:
        raise KeyError(
            f"{path} has no RNA modality {rna_key!r} (modalities: {list(mdata.mod)}); set "
            "setup['modalities']['rna_layer'] to the modality with the RNA counts."
        )
    rna = mdata.mod[rna_key]
    protein_key = modalities.get("protein_layer", "prot")
    obs = mdata.obs if modalities.get("batch_key") is None else mdata[modalities["batch_key"]].obs
    obs = obs.reindex(rna.obs_names) if len(obs) else pd.DataFrame(index=rna.obs_names)
    if protein_key not in mdata.mod:
        return rna, None, np.array([], dtype=str), obs
    protein = get_modality(mdata, mod_key=protein_key, what=f"the proteins of {path}")
    if not protein.obs_names.equals(rna.obs_names):
        raise ValueError(
            f"{path}: the {rna_key!r} and {protein_key!r} modalities are not paired cell by "
            "cell; use `sctranslator.pp.pair_modalities` first and save the result."
        )
    matrix = get_matrix(protein, layer=setup.get("protein_layer"), what=f"the proteins of {path}")
    return rna, matrix, np.asarray(protein.var_names), obs


def _from_anndata(adata: AnnData, setup: dict, path: Path):
    key = setup.get("protein_expression_obsm_key")
    if key is None or key not in adata.obsm:
        return adata, None, np.array([], dtype=str), adata.obs
    proteins = adata.obsm[key]
    if isinstance(proteins, pd.DataFrame):
        return adata, proteins.to_numpy(dtype=np.float32), np.asarray(proteins.columns), adata.obs
    names_key = setup.get("protein_names_uns_key")
    if names_key is None or names_key not in adata.uns:
        raise ValueError(
            f"{path}: obsm[{key!r}] is an array; set setup['protein_names_uns_key'] to the uns "
            "key with the protein names."
        )
    return adata, proteins, np.asarray(adata.uns[names_key]), adata.obs


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

    Each file is read, checked and written in turn (100,000 cells at a time), so memory holds
    one dataset at a time.
    Writing goes to a temporary folder beside ``uri`` that replaces it at the end (an append
    copies the store first): an error or interruption leaves the store as it was and nothing
    partial behind. See :class:`~sctranslator.data.CellStore` for the layout.

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
        for name, path in zip(names, inputs, strict=True):
            dataset = read_dataset(path, name, setup)
            for start in range(0, len(dataset.cells), _WRITE_CELLS):
                _write(target, dataset.to_anndata(slice(start, start + _WRITE_CELLS)))
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
            del dataset
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


def _write(target: Path, adata: AnnData) -> None:
    """Create the store at ``target`` from ``adata``, or append ``adata`` to it."""
    import tiledbsoma.io

    mapping = None
    if target.exists():
        mapping = tiledbsoma.io.register_anndatas(
            str(target),
            [adata],
            measurement_name=MEASUREMENT,
            obs_field_name="obs_id",
            var_field_name="var_id",
        )
        mapping.prepare_experiment(str(target))
    tiledbsoma.io.from_anndata(
        str(target),
        adata,
        MEASUREMENT,
        registration_mapping=mapping,
        X_layer_name="counts",
        uns_keys=[],
    )


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
