import pytest
import scvi
import torch
from helpers import batch, setup

import sctranslator as sct


def pytest_configure(config):
    torch.set_num_threads(1)


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
