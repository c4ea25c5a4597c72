"""Translate single-cell transcriptomes into proteomes."""

import warnings
from importlib.metadata import version

import mudata

from . import data, datasets, metrics, model, module, nn, pl, pp, tl, train
from .model import SCTRANSLATOR

# mudata < 0.4 pulls the modalities' obs/var columns into the global tables on every MuData()
# and update(), and warns (FutureWarning) that it will stop doing so. sctranslator never reads
# pulled columns (it sets the global obs itself and reads var from the modalities), so it adopts
# mudata 0.4's default. Pulling also warned "Cannot join columns with the same name" whenever
# gene and protein names coincide (CD9 the gene, CD9 the antibody). In a mudata where the option
# is gone, not pulling is the only behaviour.
try:
    mudata.set_options(pull_on_update=False)
except ValueError:
    pass

# Lightning <= 2.6 builds torch's deprecated ``LeafSpec`` in its data loader code, so the first
# ``Trainer.fit`` with a recent torch (2.13 here) prints this FutureWarning. The cause is inside
# Lightning, not in how we call it, and no argument of ours avoids it; the filter matches only
# that message from that Lightning module. Remove it once Lightning no longer emits it.
warnings.filterwarnings(
    "ignore",
    message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    category=FutureWarning,
    module=r"lightning\.pytorch\.utilities\._pytree",
)

__version__ = version("sctranslator")

__all__ = [
    "SCTRANSLATOR",
    "data",
    "datasets",
    "metrics",
    "model",
    "module",
    "nn",
    "pl",
    "pp",
    "tl",
    "train",
]
