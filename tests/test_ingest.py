"""Ingest reads each file in row chunks: bounded memory, the same store, the same checks."""

import tracemalloc

import anndata as ad
import h5py
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sctranslator as sct
from sctranslator._mudata import no_pull, shared_var_names
from sctranslator.data import CellStore, ingest

SETUP = {"protein_expression_obsm_key": "protein", "batch_key": "batch"}


def cells(n_cells, *, n_genes=300, nnz=20, n_proteins=6, seed=0):
    """An AnnData with sparse RNA counts in X, proteins in obsm and two batches."""
    rng = np.random.default_rng(seed)
    columns = np.sort(rng.random((n_cells, n_genes)).argpartition(nnz, axis=1)[:, :nnz], axis=1)
    rna = sp.csr_matrix(
        (
            rng.integers(1, 9, n_cells * nnz).astype(np.float32),
            columns.ravel(),
            np.arange(0, n_cells * nnz + 1, nnz),
        ),
        shape=(n_cells, n_genes),
    )
    names = pd.Index([f"c{i}" for i in range(n_cells)])
    adata = ad.AnnData(
        X=rna,
        obs=pd.DataFrame({"batch": pd.Categorical(rng.choice(["a", "b"], n_cells))}, index=names),
        var=pd.DataFrame(index=[f"GENE{j}" for j in range(n_genes)]),
    )
    proteins = rng.poisson(5, (n_cells, n_proteins)).astype(np.float32)
    proteins[3, 1] = np.nan  # unmeasured in this cell
    adata.obsm["protein"] = pd.DataFrame(
        proteins, index=names, columns=[f"PROT{j}" for j in range(n_proteins)]
    )
    return adata


def read_back(uri, adata):
    """The store's counts of ``adata``'s cells and features, in ``adata``'s order."""
    store = CellStore(uri)
    names = pd.Index(store.obs_names(np.arange(store.n_obs)))
    rows = names.get_indexer([f"{store.datasets[0]}:{c}" for c in adata.obs_names])
    assert (rows >= 0).all()
    values = store.read(rows).dense()
    genes = pd.Index(store.genes).get_indexer(adata.var_names)
    proteins = pd.Index(store.proteins).get_indexer(adata.obsm["protein"].columns)
    batches = store.batches[values["batch"]]
    return values["X"][:, genes], values["proteins"][:, proteins], batches


def test_a_file_read_in_value_bounded_pieces_reads_back_exactly(tmp_path, monkeypatch):
    adata = cells(500)
    adata.write_h5ad(tmp_path / "lab.h5ad")
    monkeypatch.setattr(sct.data._ingest, "_WRITE_VALUES", 1000)  # 38 cells of 26 values
    uri = ingest([tmp_path / "lab.h5ad"], tmp_path / "s.soma", setup=SETUP)
    rna, proteins, batches = read_back(uri, adata)
    np.testing.assert_array_equal(rna, adata.X.toarray())
    np.testing.assert_array_equal(proteins, adata.obsm["protein"].to_numpy())
    assert list(batches) == [f"lab:{b}" for b in adata.obs["batch"]]
    fragments = uri / "ms" / "features" / "X" / "counts" / "__fragments"
    assert len(list(fragments.iterdir())) == 14  # one per piece: ceil(500 / 38)


def test_layouts_read_lazily_or_into_memory_give_the_same_store(tmp_path, monkeypatch):
    """Dense X, CSC X (read into memory), proteins as an array with names in uns, an .h5mu
    without MuData's encoding attributes (read into memory by mudata): each ingests to the
    same counts and batches as CSR X with proteins as a DataFrame."""
    monkeypatch.setattr(sct.data._ingest, "_WRITE_CELLS", 70)
    adata = cells(200)
    adata.write_h5ad(tmp_path / "csr.h5ad")
    expected = read_back(
        ingest([tmp_path / "csr.h5ad"], tmp_path / "csr.soma", setup=SETUP), adata
    )

    dense = adata.copy()
    dense.X = dense.X.toarray()
    csc = adata.copy()
    csc.X = sp.csc_matrix(csc.X)
    array = adata.copy()
    array.uns["protein_names"] = np.asarray(array.obsm["protein"].columns)
    array.obsm["protein"] = array.obsm["protein"].to_numpy()
    setups = {
        "dense": SETUP,
        "csc": SETUP,
        "array": {**SETUP, "protein_names_uns_key": "protein_names"},
    }
    for name, data in (("dense", dense), ("csc", csc), ("array", array)):
        data.write_h5ad(tmp_path / f"{name}.h5ad")
    files = {name: tmp_path / f"{name}.h5ad" for name in setups}
    rna = ad.AnnData(adata.X, obs=adata.obs, var=adata.var)
    prot = ad.AnnData(adata.obsm["protein"], obs=adata.obs[[]])
    with no_pull(), shared_var_names(None):
        md.MuData({"rna": rna, "prot": prot}).write(tmp_path / "old.h5mu")
    with h5py.File(tmp_path / "old.h5mu", "a") as handle:  # read by mudata, into memory
        del handle.attrs["encoding-type"]
    files["old"] = tmp_path / "old.h5mu"
    setups["old"] = {"batch_key": "batch", "modalities": {"batch_key": "rna"}}
    for name, path in files.items():
        uri = ingest([path], tmp_path / f"{name}.soma", setup=setups[name], names=["csr"])
        for got, want in zip(read_back(uri, adata), expected, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_ingest_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    """Python-side peak memory (numpy, h5py, pandas; traced) of a file three times as large
    grows by less than half its extra counts (the old reader held the whole file)."""
    monkeypatch.setattr(sct.data._ingest, "_WRITE_VALUES", 2**16)
    sizes = {"small": 3_000, "large": 9_000}
    matrix = {}
    for name, n_cells in sizes.items():
        adata = cells(n_cells, n_genes=500, nnz=100, n_proteins=4, seed=n_cells)
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
        matrix[name] = adata.X.data.nbytes + adata.X.indices.nbytes
    ingest([tmp_path / "small.h5ad"], tmp_path / "warm.soma", setup=SETUP)  # lazy imports
    peaks = {}
    tracemalloc.start()
    try:
        for name in sizes:
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            ingest([tmp_path / f"{name}.h5ad"], tmp_path / f"{name}.soma", setup=SETUP)
            peaks[name] = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    extra = matrix["large"] - matrix["small"]  # 4.8 MB
    assert peaks["large"] - peaks["small"] < extra / 2, (peaks, extra)
    assert CellStore(tmp_path / "large.soma").n_obs == 9_000


def test_bad_values_in_any_piece_are_counted_over_the_whole_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sct.data._ingest, "_WRITE_CELLS", 50)
    adata = cells(200)
    counts = adata.X.tolil()
    counts[0, 0] = -1.0  # first piece
    counts[199, 5] = -2.0  # last piece
    adata.X = counts.tocsr()
    adata.write_h5ad(tmp_path / "neg.h5ad")
    with pytest.raises(ValueError, match=r"neg\.h5ad contains 2 negative values"):
        ingest([tmp_path / "neg.h5ad"], tmp_path / "s.soma", setup=SETUP)
    empty = cells(200)
    counts = empty.X.tolil()
    counts[120, :] = 0  # a cell without counts in the third piece
    empty.X = counts.tocsr()
    empty.write_h5ad(tmp_path / "empty.h5ad")
    with pytest.raises(ValueError, match="1 cells have no counts.*e.g. c120"):
        ingest([tmp_path / "empty.h5ad"], tmp_path / "s.soma", setup=SETUP)
    assert not (tmp_path / "s.soma").exists()
    assert not list(tmp_path.glob(".s.soma.*"))


def test_a_batch_modality_the_file_lacks_is_named(tmp_path):
    adata = cells(20)
    rna = ad.AnnData(adata.X, obs=adata.obs, var=adata.var)
    prot = ad.AnnData(adata.obsm["protein"].to_numpy(), obs=adata.obs[[]])
    with no_pull(), shared_var_names(None):
        md.MuData({"rna": rna, "prot": prot}).write(tmp_path / "lab.h5mu")
    setup = {"batch_key": "batch", "modalities": {"batch_key": "donor"}}
    with pytest.raises(KeyError, match=r"no modality 'donor' \(modalities: \['rna', 'prot'\]"):
        ingest([tmp_path / "lab.h5mu"], tmp_path / "s.soma", setup=setup)
    setup["modalities"]["batch_key"] = "rna"
    store = CellStore(ingest([tmp_path / "lab.h5mu"], tmp_path / "s.soma", setup=setup))
    assert sorted(store.batches) == ["lab:a", "lab:b"]


def test_a_store_written_by_tiledbsoma_io_takes_appends(tmp_path):
    """Stores written before (``tiledbsoma.io.from_anndata``, one registration per piece)
    take new datasets: their cells and features keep their ids, new features get new ones."""
    import json

    import tiledbsoma.io

    first, second = cells(60, seed=1), cells(40, n_genes=320, seed=2)
    features = [f"gene:{g}" for g in first.var_names]
    features += [f"protein:{p}" for p in first.obsm["protein"].columns]
    names = [*first.var_names, *first.obsm["protein"].columns]
    kinds = ["Gene Expression"] * first.n_vars + ["Antibody Capture"] * 6
    old = ad.AnnData(
        X=sp.hstack([first.X, sp.csr_matrix(first.obsm["protein"].to_numpy())], format="csr"),
        obs=pd.DataFrame(
            {"dataset": "old", "batch": "old", "cell": first.obs_names.to_numpy()},
            index=[f"old:{c}" for c in first.obs_names],
        ),
        var=pd.DataFrame({"feature_name": names, "feature_type": kinds}, index=features),
    )
    uri = tmp_path / "old.soma"
    tiledbsoma.io.from_anndata(str(uri), old, "features", X_layer_name="counts", uns_keys=[])
    panel = {"genes": list(first.var_names), "proteins": list(first.obsm["protein"].columns)}
    metadata = {"format": 1, "datasets": {"old": {"cells": 60, **panel}}}
    with tiledbsoma.Experiment.open(str(uri), "w") as experiment:
        experiment.metadata["sctranslator"] = json.dumps(metadata)

    second.write_h5ad(tmp_path / "new.h5ad")
    ingest([tmp_path / "new.h5ad"], uri, setup=SETUP, append=True)
    store = CellStore(uri)
    assert store.datasets == ["old", "new"] and store.n_obs == 100
    assert len(store.genes) == 320  # 20 new genes
    rna, proteins, _ = read_back(uri, first)  # the first dataset's cells, unchanged
    np.testing.assert_array_equal(rna, first.X.toarray())
    np.testing.assert_array_equal(proteins, first.obsm["protein"].to_numpy())
    values = store.read(np.arange(60, 100)).dense()
    genes = pd.Index(store.genes).get_indexer(second.var_names)
    np.testing.assert_array_equal(values["X"][:, genes], second.X.toarray())
