"""The private scvi-tools API sctranslator relies on, in one place.

scvi-tools has no public way to ask, before a model exists, whether an AnnData or MuData was
set up with a model class (``BaseModelClass.get_anndata_manager`` needs a model instance).
``tests/test_layers.py`` fails loudly when it moves or scvi-tools leaves the tested range.
"""

from __future__ import annotations

import re

import scvi
from anndata import AnnData
from mudata import MuData
from scvi.data import AnnDataManager

# scvi-tools releases, from (included) and to (excluded), this module was checked with.
TESTED_SCVI = ((1, 4, 2), (1, 5, 0))


def scvi_version() -> tuple[int, int, int]:
    """Return the installed scvi-tools release as ``(major, minor, patch)``."""
    return tuple(int(part) for part in re.findall(r"\d+", scvi.__version__)[:3])


def setup_manager(model_cls: type, adata: AnnData | MuData) -> AnnDataManager | None:
    """Return the manager of ``model_cls``'s latest setup of ``adata``, ``None`` if not set up."""
    find = getattr(model_cls, "_get_most_recent_anndata_manager", None)
    if find is None:
        raise ImportError(
            f"scvi-tools {scvi.__version__} lacks BaseModelClass._get_most_recent_anndata_"
            f"manager, which sctranslator needs (checked with scvi-tools {TESTED_SCVI}); "
            "install a checked release or update sctranslator._scvi_compat."
        )
    return find(adata)
