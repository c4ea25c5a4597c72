"""Helpers shared by the tests."""

import sctranslator as sct

MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}


def batch(mdata, name):
    return mdata[mdata.obs["batch"] == name].copy()


def setup(mdata):
    sct.SCTRANSLATOR.setup_mudata(
        mdata, rna_layer="counts", protein_layer="counts", batch_key="batch", modalities=MODALITIES
    )
    return mdata
