import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import MODALITIES, batch
from mudata import MuData

import sctranslator as sct


def small(pbmc):
    return batch(pbmc, "p3_0")[:60].copy()


def expect_error(mdata, match, error=ValueError, **kwargs):
    args = {
        "rna_layer": "counts",
        "protein_layer": "counts",
        "batch_key": "batch",
        "modalities": MODALITIES,
    }
    args.update(kwargs)
    rna_before = mdata["rna"].layers["counts"].copy() if "counts" in mdata["rna"].layers else None
    with pytest.raises(error, match=match):
        sct.SCTRANSLATOR.setup_mudata(mdata, **args)
    assert "_scvi_uuid" not in mdata.uns
    if rna_before is not None:
        after = mdata["rna"].layers["counts"]
        dense = [m.toarray() if sp.issparse(m) else m for m in (after, rna_before)]
        np.testing.assert_array_equal(*dense)


def test_nan_and_negative_rna_are_refused(pbmc):
    mdata = small(pbmc)
    counts = mdata["rna"].layers["counts"].toarray()
    counts[0, 0] = np.nan
    mdata["rna"].layers["counts"] = counts
    expect_error(mdata, "NaN")
    counts[0, 0] = -1
    mdata["rna"].layers["counts"] = counts
    expect_error(mdata, "negative")


def test_empty_cells_are_refused(pbmc):
    mdata = small(pbmc)
    counts = mdata["rna"].layers["counts"].tolil()
    counts[3, :] = 0
    mdata["rna"].layers["counts"] = counts.tocsr()
    expect_error(mdata, f"1 cells have no counts.*{mdata.obs_names[3]}")


def test_duplicated_names_are_refused(pbmc):
    mdata = small(pbmc)
    names = mdata["rna"].var_names.tolist()
    names[1] = names[0]
    mdata["rna"].var_names = names
    expect_error(mdata, "duplicated gene")
    mdata = small(pbmc)
    names = mdata["prot"].var_names.tolist()
    names[1] = names[0]
    mdata["prot"].var_names = names
    expect_error(mdata, "duplicated protein")


def test_unknown_layer_key_and_modality_are_named(pbmc):
    expect_error(small(pbmc), "'raw' not found", KeyError, rna_layer="raw")
    expect_error(
        small(pbmc),
        "'adt'.*not found",
        KeyError,
        modalities={"rna_layer": "rna", "protein_layer": "adt"},
    )
    expect_error(small(pbmc), "'donor' not found", KeyError, batch_key="donor")


def test_unpaired_and_disjoint_modalities_are_refused(pbmc):
    mdata = small(pbmc)
    unpaired = MuData({"rna": mdata["rna"].copy(), "prot": mdata["prot"][:30].copy()})
    expect_error(unpaired, "not paired.*pair_modalities")
    other = batch(pbmc, "p4_0")[:60]
    disjoint = MuData({"rna": mdata["rna"].copy(), "prot": other["prot"].copy()})
    expect_error(disjoint, "share no cells")


def test_all_missing_proteins_are_refused(pbmc):
    mdata = batch(pbmc, "p1_0")[:50].copy()
    expect_error(mdata, "no measured value")


def test_setup_anndata_with_proteins_in_obsm(pbmc):
    mdata = small(pbmc)
    adata = mdata["rna"].copy()
    adata.obsm["protein_expression"] = pd.DataFrame(
        mdata["prot"].layers["counts"], index=adata.obs_names, columns=mdata["prot"].var_names
    )
    sct.SCTRANSLATOR.setup_anndata(
        adata, layer="counts", protein_expression_obsm_key="protein_expression", batch_key="batch"
    )
    model = sct.SCTRANSLATOR(adata, n_hidden=16)
    assert model.summary_stats.n_proteins == 224 and model.summary_stats.n_vars == 500
    with pytest.raises(KeyError, match="not found in adata.obsm"):
        sct.SCTRANSLATOR.setup_anndata(adata, protein_expression_obsm_key="adt")
    array_adata = ad.AnnData(adata.layers["counts"], obs=adata.obs)
    array_adata.obsm["prot"] = adata.obsm["protein_expression"].to_numpy()
    with pytest.raises(ValueError, match="protein_names_uns_key"):
        sct.SCTRANSLATOR.setup_anndata(array_adata, protein_expression_obsm_key="prot")
