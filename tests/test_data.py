import numpy as np
import pytest
from mudata import MuData

import sctranslator as sct


def test_pbmc_cite_mini_is_the_paired_real_data(pbmc):
    assert pbmc.shape == (1200, 724)
    assert set(pbmc.mod) == {"rna", "prot"}
    assert (pbmc["rna"].obs_names == pbmc["prot"].obs_names).all()
    assert {"CD3-1", "CD4-2", "HLA-DR", "CD45RA"} <= set(pbmc["prot"].var_names)
    assert pbmc["prot"].var.loc["CD3-1", "source_name"] == "cd3.1"
    rna_only = (pbmc.obs["batch"] == "p1_0").to_numpy()
    assert np.isnan(pbmc["prot"].layers["counts"][rna_only]).all()
    assert not np.isnan(pbmc["prot"].layers["counts"][~rna_only]).any()
    assert set(pbmc.obs["batch"].cat.categories) == {"p1_0", "p3_0", "p4_0"}


def test_mosaic_and_pairing_leave_the_source_unchanged():
    mosaic = sct.datasets.pbmc_cite_mini(paired=False)
    assert mosaic.n_obs == 1600 and mosaic["prot"].n_obs == 1200
    before = mosaic["prot"].X.copy()
    paired = sct.pp.pair_modalities(mosaic, rna="rna", protein="prot")
    assert paired.n_obs == 1200
    assert mosaic.n_obs == 1600 and (mosaic["prot"].X != before).nnz == 0


def test_pairing_needs_shared_cells(pbmc):
    left = pbmc[pbmc.obs["batch"] == "p3_0"]
    right = pbmc[pbmc.obs["batch"] == "p4_0"]
    with pytest.raises(ValueError, match="share no cells"):
        sct.pp.pair_modalities(MuData({"rna": left["rna"].copy(), "prot": right["prot"].copy()}))


def test_normalize_protein_keeps_missing_values(pbmc):
    clr = sct.pp.normalize_protein(pbmc["prot"], layer="counts")
    rna_only = (pbmc.obs["batch"] == "p1_0").to_numpy()
    assert clr.shape == (1200, 224)
    assert clr[rna_only].isna().all().all() and clr[~rna_only].notna().all().all()
