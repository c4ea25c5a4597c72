import mudata
import pytest
import scvi
import torch
from helpers import batch, build, setup, write_sources

import sctranslator as sct


def pytest_configure(config):
    torch.set_num_threads(1)
    # The tests' own MuData objects (fixtures, helpers.batch) are built as mudata 0.4 builds
    # them, without pulling the modalities' columns. sctranslator itself sets no option when
    # imported (tests/test_import.py), and its own MuData calls do not pull either way.
    mudata.set_options(pull_on_update=False)


@pytest.fixture(scope="session")
def pbmc():
    """The paired demo MuData (p1_0 RNA only, p3_0 and p4_0 paired)."""
    return sct.datasets.pbmc_cite_mini()


@pytest.fixture(scope="session")
def trained(pbmc):
    """A small model trained briefly on p3_0 (fast; not for accuracy)."""
    scvi.settings.seed = 0
    train = setup(batch(pbmc, "p3_0"))
    model = sct.SCTRANSLATOR(train, n_hidden=32, max_genes=96)
    model.train(max_epochs=3, enable_progress_bar=False)
    return model


@pytest.fixture(scope="session")
def sources(pbmc, tmp_path_factory):
    """Three input files with different panels (see ``helpers.write_sources``)."""
    return write_sources(pbmc, tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="session")
def store(sources, tmp_path_factory):
    """The three inputs ingested into one cell store (read-only in the tests)."""
    return build(sources, tmp_path_factory.mktemp("store") / "atlas.soma")
