"""Importing sctranslator changes nothing outside the package; its contexts are scoped."""

import json
import subprocess
import sys
import warnings

import mudata
import numpy as np
import pytest
from helpers import batch

import sctranslator as sct
from sctranslator._mudata import no_pull
from sctranslator._warnings import quiet_dependencies

# The dependencies are imported first: several install warning filters of their own when
# imported (torch, lightning, scipy...), which is theirs to do, not sctranslator's.
STATE_BEFORE_AND_AFTER_IMPORT = """
import json, warnings
import anndata, docrep, h5py, igraph, lightning, matplotlib, mudata, numpy, pandas, safetensors
import scanpy, scipy, scvi, sklearn, torch, torchmetrics, tqdm, yaml
from mudata._core.config import OPTIONS

def state():
    return {"options": dict(OPTIONS), "filters": [repr(f) for f in warnings.filters]}

before = state()
import sctranslator
print(json.dumps({"before": before, "after": state()}))
"""

MUDATA_PULL_WARNING = r"From 0\.4 \.update\(\) will not pull"


def test_importing_sets_no_mudata_option_and_no_warning_filter():
    result = subprocess.run(
        [sys.executable, "-c", STATE_BEFORE_AND_AFTER_IMPORT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["after"]["options"] == state["before"]["options"]
    assert len(state["after"]["filters"]) == len(state["before"]["filters"])
    assert state["after"]["filters"] == state["before"]["filters"]


def test_no_pull_applies_only_inside_its_context():
    from mudata._core.config import OPTIONS

    with mudata.set_options(pull_on_update=None):
        with no_pull():
            assert OPTIONS["pull_on_update"] is False
        assert OPTIONS["pull_on_update"] is None
        with pytest.raises(RuntimeError), no_pull():
            raise RuntimeError  # restored on errors too
        assert OPTIONS["pull_on_update"] is None


def test_quiet_dependencies_silences_only_lightnings_leafspec_warning():
    filters = list(warnings.filters)
    message = "`isinstance(treespec, LeafSpec)` is deprecated, use ..."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_dependencies():
            warnings.warn_explicit(
                message, FutureWarning, "_pytree.py", 1, "lightning.pytorch.utilities._pytree"
            )
            warnings.warn_explicit(message, FutureWarning, "other.py", 1, "other.module")
            warnings.warn_explicit("another", FutureWarning, "_pytree.py", 1, "lightning.x")
        warnings.warn_explicit(
            message, FutureWarning, "_pytree.py", 1, "lightning.pytorch.utilities._pytree"
        )
    assert [str(w.message) for w in caught] == [message, "another", message]
    assert warnings.filters == filters


def test_the_mudata_objects_sctranslator_builds_are_not_pulled(pbmc):
    """With mudata's default (pull, and warn), the package's own MuData calls neither pull nor
    warn: datasets, pp and tl construct, copy and update inside ``no_pull``."""
    cells = batch(pbmc, "p4_0")
    with mudata.set_options(pull_on_update=None), warnings.catch_warnings():
        warnings.filterwarnings("error", message=MUDATA_PULL_WARNING, category=FutureWarning)
        mosaic = sct.datasets.pbmc_cite_mini(paired=False)
        paired = sct.pp.pair_modalities(mosaic)
        joined = sct.pp.concat_panels({"a": paired[:20], "b": cells[:20]})
        synthetic = sct.datasets.synthetic_cite(n_cells=60, n_genes=40, n_proteins=5)
        clustered = sct.tl.cluster(
            cells, protein="prot", protein_layer="counts", connectivities="gauss", copy=True
        )
    for mdata in (mosaic, paired, joined, synthetic, clustered):
        assert not any(":" in column for column in mdata.obs.columns), list(mdata.obs.columns)
    assert np.array_equal(clustered["prot"].X, cells["prot"].X)
