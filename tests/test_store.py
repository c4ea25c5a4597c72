"""The cell store: ingest files with different panels, read them back, train from disk."""

import dataclasses
import hashlib
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scvi
from helpers import MUDATA_SETUP, NAN_CELL, batch

import sctranslator as sct
from sctranslator._mudata import shared_var_names
from sctranslator.data import CellStore, StoreDataModule, ingest
from sctranslator.data._store_loader import StoreLoader, StoreSampler


def expected(store, sources, names, kind):
    """Dense counts of the cells ``names`` on the store's panel ``kind``, NaN = unmeasured."""
    columns = store.genes if kind == "rna" else store.proteins
    out = pd.DataFrame(np.nan, index=list(names), columns=columns)
    for name in names:
        dataset, cell = name.split(":", 1)
        source = getattr(sources[dataset], kind)
        if source is not None:
            out.loc[name, source.columns] = source.loc[cell].to_numpy()
    return out.to_numpy()


def snapshot(uri):
    """Every file under ``uri`` with its content's hash."""
    return {
        str(path.relative_to(uri)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(uri).rglob("*"))
        if path.is_file()
    }


def leftovers(uri):
    """Temporary folders that ingest left beside ``uri``."""
    return sorted(Path(uri).parent.glob(f".{Path(uri).name}.*"))


def bad_mudata(pbmc, path):
    """An .h5mu whose RNA is under another modality name."""
    cells = (pbmc.obs["batch"] == "p4_0").to_numpy()
    with shared_var_names(None):
        md.MuData(
            {"gex": pbmc["rna"][cells].copy(), "prot": pbmc["prot"][cells].copy()}
        ).write_h5mu(path)
    return path


# --------------------------------------------------------------------------------- ingest
def test_store_reads_back_the_counts_with_nan_outside_each_panel(store, sources):
    assert store.datasets == ["p3_0", "p4_0", "p1_0"]
    assert store.n_obs == sum(len(s.rna) for s in sources.values())
    assert set(store.genes) == set().union(*(s.rna.columns for s in sources.values()))
    assert set(store.proteins) == set(sources["p3_0"].proteins.columns) | set(
        sources["p4_0"].proteins.columns
    )
    assert len(set(store.genes)) == len(store.genes) == 500
    assert len(set(store.proteins)) == len(store.proteins) == 224
    assert sorted(store.batches) == sorted(store.datasets)  # no batch_key: one per dataset

    names = store.obs_names(np.arange(store.n_obs))
    assert sorted(names) == sorted(
        f"{dataset}:{cell}" for dataset, s in sources.items() for cell in s.rna.index
    )

    rows = np.random.default_rng(0).permutation(store.n_obs)[:500]  # unsorted, all datasets
    values = store.read(rows).dense()
    assert values["X"].shape == (500, 500) and values["proteins"].shape == (500, 224)
    np.testing.assert_array_equal(names[rows], store.obs_names(rows))
    np.testing.assert_array_equal(values["X"], expected(store, sources, names[rows], "rna"))
    np.testing.assert_array_equal(
        values["proteins"], expected(store, sources, names[rows], "proteins")
    )
    datasets = np.array([name.split(":")[0] for name in names[rows]])
    np.testing.assert_array_equal(store.batches[values["batch"]], datasets)
    assert np.isnan(values["proteins"][datasets == "p1_0"]).all()  # the RNA-only file
    assert not np.isnan(
        values["X"][datasets == "p1_0"][:, np.isin(store.genes, sources["p1_0"].rna.columns)]
    ).any()

    nan_cell = np.flatnonzero(names == f"p3_0:{sources['p3_0'].rna.index[NAN_CELL]}")
    assert np.isnan(store.read(nan_cell).dense()["proteins"]).all()

    # the order of the rows asked for, not the store's
    single = np.array([store.read([row]).dense()["X"][0] for row in rows[:5]])
    np.testing.assert_array_equal(single, values["X"][:5])
    backwards = store.read(rows[::-1]).dense()
    np.testing.assert_array_equal(backwards["X"], values["X"][::-1])
    np.testing.assert_array_equal(backwards["proteins"], values["proteins"][::-1])

    only_proteins = store.read(rows[:10], genes=False).dense()
    assert "X" not in only_proteins
    np.testing.assert_array_equal(only_proteins["proteins"], values["proteins"][:10])


def test_a_file_written_in_pieces_reads_back_the_same(store, sources, tmp_path, monkeypatch):
    monkeypatch.setattr(sct.data._ingest, "_WRITE_CELLS", 150)  # 400 cells: three pieces
    pieces = CellStore.ingest([sources["p3_0"].path], tmp_path / "s.soma", setup=MUDATA_SETUP)
    assert pieces.n_obs == 400
    rows = np.arange(400)
    names = pieces.obs_names(rows)
    same = np.flatnonzero(np.isin(store.obs_names(np.arange(store.n_obs)), names))
    np.testing.assert_array_equal(store.obs_names(same), names)
    mine, theirs = pieces.read(rows).dense(), store.read(same).dense()
    for key, panel in (("X", "genes"), ("proteins", "proteins")):
        ours = pd.DataFrame(mine[key], columns=getattr(pieces, panel))
        reference = pd.DataFrame(theirs[key], columns=getattr(store, panel))[ours.columns]
        np.testing.assert_array_equal(ours.to_numpy(), reference.to_numpy())


def test_to_anndata_lays_cells_out_for_setup_anndata(store, sources):
    rows = np.array([900, 3, 450])
    adata = store.to_anndata(rows)
    np.testing.assert_array_equal(adata.obs_names, store.obs_names(rows))
    np.testing.assert_array_equal(adata.var_names, store.genes)
    np.testing.assert_array_equal(adata.X, expected(store, sources, adata.obs_names, "rna"))
    proteins = adata.obsm["protein_expression"]
    np.testing.assert_array_equal(proteins.columns, store.proteins)
    np.testing.assert_array_equal(proteins, expected(store, sources, adata.obs_names, "proteins"))
    assert list(adata.obs["batch"].cat.categories) == list(store.batches)


def test_reading_a_row_twice_gives_the_same_counts_twice(store):
    values = store.read([3, 3, 5]).dense()
    np.testing.assert_array_equal(values["X"][0], values["X"][1])


def test_append_adds_cells_and_genes_and_keeps_the_earlier_cells(sources, tmp_path):
    uri = tmp_path / "atlas.soma"
    ingest([sources["p3_0"].path, sources["p4_0"].path], uri, setup=MUDATA_SETUP)
    before = CellStore(uri)
    old_rows = np.arange(before.n_obs)
    old_names = before.obs_names(old_rows)
    old = before.read(old_rows).dense()
    assert set(before.genes) == set(sources["p3_0"].rna.columns) | set(sources["p4_0"].rna.columns)

    ingest([sources["p1_0"].path], uri, append=True)
    after = CellStore(uri)
    assert after.datasets == ["p3_0", "p4_0", "p1_0"]
    assert after.n_obs == before.n_obs + len(sources["p1_0"].rna)
    new_genes = set(after.genes) - set(before.genes)
    assert new_genes == set(sources["p1_0"].rna.columns[-50:])  # genes[450:]
    assert set(before.genes) <= set(after.genes)
    assert list(after.proteins) == list(before.proteins)

    names = after.obs_names(np.arange(after.n_obs))
    rows = pd.Index(names).get_indexer(old_names)
    assert (rows >= 0).all()
    new = after.read(rows).dense()
    kept = pd.Index(after.genes).get_indexer(before.genes)
    np.testing.assert_array_equal(new["X"][:, kept], old["X"])
    assert np.isnan(np.delete(new["X"], kept, axis=1)).all()  # new genes: unmeasured
    np.testing.assert_array_equal(new["proteins"], old["proteins"])
    np.testing.assert_array_equal(after.batches[new["batch"]], before.batches[old["batch"]])
    added = np.setdiff1d(np.arange(after.n_obs), rows)
    np.testing.assert_array_equal(
        after.read(added).dense()["X"], expected(after, sources, names[added], "rna")
    )
    assert not leftovers(uri)

    files = snapshot(uri)
    with pytest.raises(ValueError, match=r"\['p1_0'\] are already in"):
        ingest([sources["p1_0"].path], uri, append=True)
    with pytest.raises(ValueError, match=r"\['p3_0'\] are already in"):
        ingest([sources["p1_0"].path], uri, names=["p3_0"], append=True)
    assert snapshot(uri) == files
    assert not leftovers(uri)
    assert CellStore(uri).n_obs == after.n_obs


# ----------------------------------------------------------------------------- atomicity
def test_a_failed_ingest_leaves_no_store_and_no_temporary_folder(pbmc, sources, tmp_path):
    bad = bad_mudata(pbmc, tmp_path / "bad.h5mu")
    uri = tmp_path / "atlas.soma"
    with pytest.raises(KeyError, match=r"no RNA modality 'rna' \(modalities: \['gex', 'prot'\]"):
        ingest([sources["p3_0"].path, bad], uri, setup=MUDATA_SETUP)
    assert not uri.exists()
    assert not leftovers(uri)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5mu"]


def test_a_failed_append_or_overwrite_leaves_the_store_as_it_was(pbmc, sources, tmp_path):
    bad = bad_mudata(pbmc, tmp_path / "bad.h5mu")
    uri = tmp_path / "atlas.soma"
    ingest([sources["p3_0"].path], uri, setup=MUDATA_SETUP)
    files = snapshot(uri)
    for mode in ({"append": True}, {"overwrite": True}):
        with pytest.raises(KeyError, match="no RNA modality"):
            ingest([sources["p4_0"].path, bad], uri, setup=MUDATA_SETUP, **mode)
        assert snapshot(uri) == files
        assert not leftovers(uri)
    assert CellStore(uri).datasets == ["p3_0"]


# -------------------------------------------------------------------------------- errors
@pytest.mark.filterwarnings("ignore:Variable names are not unique:UserWarning")
def test_ingest_refuses_bad_inputs_and_names_the_problem(sources, tmp_path):
    uri = tmp_path / "atlas.soma"
    with pytest.raises(FileNotFoundError, match="nope.h5mu"):
        ingest([sources["p3_0"].path, tmp_path / "nope.h5mu"], uri)
    text = tmp_path / "p3_0.csv"
    text.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"must be an \.h5ad or \.h5mu"):
        ingest([text], uri)
    with pytest.raises(ValueError, match=r"Unknown setup keys \['rna_layr'\]"):
        ingest([sources["p3_0"].path], uri, setup={"rna_layr": "counts"})
    with pytest.raises(ValueError, match="duplicated dataset"):
        ingest([sources["p3_0"].path, sources["p4_0"].path], uri, names=["a", "a"])

    rna = sources["p1_0"].rna
    duplicated = ad.AnnData(X=rna.to_numpy(dtype=np.float32), obs=pd.DataFrame(index=rna.index))
    duplicated.var_names = [*rna.columns[:-1], rna.columns[0]]
    duplicated.write_h5ad(tmp_path / "dup.h5ad")
    with pytest.raises(ValueError, match=rf"duplicated gene \(in dup\.h5ad\).*{rna.columns[0]}"):
        ingest([tmp_path / "dup.h5ad"], uri)
    with pytest.raises(ValueError, match="may not contain ':'"):
        ingest([sources["p1_0"].path], uri, names=["lab:a"])

    def write(name, genes, values):
        path = tmp_path / f"{name}.h5ad"
        cells = pd.DataFrame(index=[f"c{i}" for i in range(len(values))])
        ad.AnnData(
            X=np.asarray(values, dtype=np.float32), obs=cells, var=pd.DataFrame(index=genes)
        ).write_h5ad(path)
        return path

    clash = write("clash", ["CD4", "cd4", "MS4A1"], [[1, 2, 3], [1, 0, 1]])
    with pytest.raises(ValueError, match=r"the same gene.*\['CD4', 'cd4'\]"):
        ingest([clash], uri)
    with pytest.raises(ValueError, match="no genes"):
        ingest([write("nogenes", [], np.zeros((2, 0)))], uri)
    with pytest.raises(ValueError, match="NaN"):
        ingest([write("nan", ["CD4", "MS4A1"], [[1, np.nan], [1, 2]])], uri)
    with pytest.raises(ValueError, match="1 cells have no counts"):
        ingest([write("empty", ["CD4", "MS4A1"], [[0, 0], [1, 2]])], uri)
    assert not uri.exists() and not leftovers(uri)


def test_overwrite_replaces_a_store_never_another_folder_or_a_file(sources, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(FileNotFoundError, match="not a cell store"):
        ingest([sources["p1_0"].path], folder, overwrite=True)
    assert (folder / "precious.txt").read_text() == "keep me"
    a_file = tmp_path / "store.txt"
    a_file.write_text("keep me too")
    with pytest.raises(FileExistsError, match="is a file"):
        ingest([sources["p1_0"].path], a_file, overwrite=True)
    assert a_file.read_text() == "keep me too"


def test_a_named_protein_location_the_file_lacks_warns(sources, tmp_path):
    with pytest.warns(UserWarning, match=r"no obsm\['proteins'\]: its cells are ingested as RNA"):
        setup = {"protein_expression_obsm_key": "proteins"}
        ingest([sources["p1_0"].path], tmp_path / "s.soma", setup=setup)


def test_a_store_of_mostly_rna_only_cells_builds_a_model(sources, pbmc, tmp_path):
    few = batch(pbmc, "p3_0")[:5].copy()  # 5 paired cells, then 400 RNA-only ones
    with shared_var_names(None):
        few.write(tmp_path / "few.h5mu")
    files = [tmp_path / "few.h5mu", sources["p1_0"].path]
    uri = ingest(files, tmp_path / "s.soma", setup=MUDATA_SETUP)
    model = sct.SCTRANSLATOR(CellStore(uri), n_hidden=16)
    assert model.summary_stats.n_cells == 405
    with pytest.raises(ValueError, match=r"do not apply to a cell store.*chunk_size"):
        model.train(max_epochs=1, datasplitter_kwargs={"shuffle_set_split": False})


def test_an_existing_store_needs_append_or_overwrite(sources, tmp_path):
    uri = tmp_path / "atlas.soma"
    ingest([sources["p3_0"].path], uri, setup=MUDATA_SETUP)
    files = snapshot(uri)
    with pytest.raises(FileExistsError, match="already exists; pass append=True"):
        ingest([sources["p1_0"].path], uri)
    assert snapshot(uri) == files

    ingest([sources["p1_0"].path], uri, overwrite=True)
    replaced = CellStore(uri)
    assert replaced.datasets == ["p1_0"]
    assert replaced.n_obs == len(sources["p1_0"].rna)
    assert set(replaced.genes) == set(sources["p1_0"].rna.columns)
    assert len(replaced.proteins) == 0
    assert not leftovers(uri)


def test_cell_store_refuses_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(FileNotFoundError, match="is not a cell store"):
            CellStore(path)


def test_one_setup_serves_h5mu_and_h5ad_files(sources, tmp_path):
    ingest(
        [sources["p3_0"].path, sources["p1_0"].path],
        tmp_path / "atlas.soma",
        setup={**MUDATA_SETUP, "layer": None},
    )
    assert CellStore(tmp_path / "atlas.soma").n_obs == 800


# ----------------------------------------------------------------------- split, sampling
def test_split_is_seeded_disjoint_and_covering(store):
    split = StoreDataModule(store, train_size=0.75, seed=3)
    assert split.n_train == 900 and split.n_val == 300 and len(split.test_idx) == 0
    assert not np.intersect1d(split.train_idx, split.val_idx).size
    np.testing.assert_array_equal(
        np.union1d(split.train_idx, split.val_idx), np.arange(store.n_obs)
    )
    again = StoreDataModule(store, train_size=0.75, seed=3)
    np.testing.assert_array_equal(again.train_idx, split.train_idx)
    other = StoreDataModule(store, train_size=0.75, seed=4)
    assert not np.array_equal(other.train_idx, split.train_idx)
    with pytest.raises(ValueError, match="must not exceed 1"):
        StoreDataModule(store, train_size=0.8, validation_size=0.3)


def test_default_split_puts_every_cell_in_training_or_validation(store):
    split = StoreDataModule(store)  # train_size=0.9
    assert split.n_train + split.n_val == store.n_obs


def test_ranks_share_each_epoch_without_overlap():
    rows = np.sort(np.random.default_rng(0).choice(5000, 1001, replace=False))
    kwargs = {"seed": 5, "chunk_size": 16, "window": 96, "world_size": 2}
    samplers = [StoreSampler(rows, True, rank=r, **kwargs) for r in (0, 1)]
    orders = [sampler.order() for sampler in samplers]
    assert len(orders[0]) == len(orders[1]) == len(samplers[0]) == 500
    assert not np.intersect1d(*orders).size
    both = np.concatenate(orders)
    assert len(np.unique(both)) == len(rows) - len(rows) % 2
    assert np.isin(both, rows).all()
    # shuffled cell by cell within each window, yet a window (one read) holds a few runs of
    # consecutive rows: the chunks of 15-16 cells
    position = np.searchsorted(rows, orders[0])
    assert np.mean(np.diff(position) == 1) < 0.2
    for start in range(0, 500, 96):
        window = np.sort(position[start : start + 96])
        assert np.sum(np.diff(window) != 1) <= 8

    for sampler in samplers:
        sampler.set_epoch(1)
    later = np.concatenate([sampler.order() for sampler in samplers])
    assert not np.array_equal(later, both)
    assert len(np.unique(later)) == len(rows) - 1

    same = StoreSampler(rows[::-1], True, rank=1, **kwargs)
    same.set_epoch(1)
    np.testing.assert_array_equal(same.order(), samplers[1].order())
    same.set_epoch(0)
    np.testing.assert_array_equal(same.order(), orders[1])
    other_seed = StoreSampler(rows, True, rank=1, **{**kwargs, "seed": 6})
    assert not np.array_equal(other_seed.order(), orders[1])

    in_order = [StoreSampler(rows, False, rank=r, world_size=2).order() for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(in_order), rows)


class RowStore:
    """A store whose reads report each cell's row as its batch, to follow the loader."""

    def __init__(self, store):
        self.store = store

    def read(self, rows, **kwargs):
        return dataclasses.replace(self.store.read(rows, **kwargs), batch=np.asarray(rows))


def test_loader_reads_the_sampler_order_in_minibatches_and_resumes(store):
    rows = np.arange(0, store.n_obs, 3)

    def batches(state=None, epoch=0):
        sampler = StoreSampler(rows, True, seed=1, chunk_size=16)
        sampler.set_epoch(epoch)
        loader = StoreLoader(RowStore(store), sampler, batch_size=30, block_size=100)
        if state is not None:
            loader.load_state_dict(state)
        return loader, list(loader)

    loader, full = batches()
    assert len(full) == len(loader) == 14
    seen = np.concatenate([b["batch"].numpy().ravel() for b in full])
    np.testing.assert_array_equal(seen, loader.sampler.order())
    first = full[0]
    assert first["X"].shape == (30, len(store.genes))
    assert first["proteins"].shape == (30, len(store.proteins))
    values = store.read(first["batch"].numpy().ravel()).dense()
    np.testing.assert_array_equal(first["X"].numpy(), values["X"])
    np.testing.assert_array_equal(first["proteins"].numpy(), values["proteins"])

    _, resumed = batches({"epoch": 0, "consumed": 5})
    assert len(resumed) == len(full) - 5
    for a, b in zip(resumed, full[5:], strict=True):
        np.testing.assert_array_equal(a["batch"].numpy(), b["batch"].numpy())
    _, other_epoch = batches({"epoch": 0, "consumed": 5}, epoch=1)
    assert len(other_epoch) == len(full)  # a state of another epoch is not applied


# ------------------------------------------------------------------------------ training
def test_model_trains_on_the_store_and_predicts(store, sources, pbmc):
    scvi.settings.seed = 0
    model = sct.SCTRANSLATOR(store, n_hidden=32, max_genes=96)
    model.train(max_epochs=3, accelerator="cpu", enable_progress_bar=False)
    assert len(model.history["pearson_validation"]) == 3
    assert np.isfinite(model.history["pearson_validation"].to_numpy(dtype=float)).all()

    mask = model.panel_statistics.measured.cpu().numpy()
    assert mask.shape == (len(store.batches), len(store.proteins))
    for code, dataset in enumerate(store.batches):
        source = sources[dataset].proteins
        panel = np.isin(store.proteins, [] if source is None else source.columns)
        assert not mask[code, ~panel].any(), dataset
        if source is not None:
            assert mask[code, panel].mean() > 0.9, dataset
    assert not mask[list(store.batches).index("p1_0")].any()

    query = pbmc["rna"][:20]
    query = ad.AnnData(X=query.layers["counts"].copy(), obs=query.obs.copy(), var=query.var.copy())
    predicted = model.predict_protein(query)
    assert isinstance(predicted, pd.DataFrame)
    np.testing.assert_array_equal(predicted.columns, store.proteins)
    np.testing.assert_array_equal(predicted.index, query.obs_names)
    assert np.isfinite(predicted.to_numpy()).all()

    from_store = model.predict_protein(indices=np.arange(10))
    np.testing.assert_array_equal(from_store.index, store.obs_names(range(10)))
    np.testing.assert_array_equal(from_store.columns, store.proteins)
    rows = np.array([900, 3, 450, 0, 899])
    on_disk = model.predict_protein(indices=rows)
    np.testing.assert_array_equal(on_disk.index, store.obs_names(rows))
    in_memory = model.predict_protein(store.to_anndata(rows))
    np.testing.assert_allclose(on_disk.to_numpy(), in_memory.to_numpy(), rtol=1e-5, atol=1e-6)

    lower, upper = model.predict_protein_interval(indices=rows)
    assert lower.shape == upper.shape == (5, len(store.proteins))
    assert (lower.to_numpy() <= upper.to_numpy()).all()
    assert model.protein_reliability.index.tolist() == list(store.proteins)
