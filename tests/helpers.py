"""Helpers shared by the tests."""

import sctranslator as sct
from sctranslator._mudata import shared_var_names

MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}


def batch(mdata, name):
    with shared_var_names(mdata.mod.values()):  # 13 PBMC antibodies are named like their genes
        return mdata[mdata.obs["batch"] == name].copy()


def setup(mdata):
    sct.SCTRANSLATOR.setup_mudata(
        mdata, rna_layer="counts", protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    return mdata
