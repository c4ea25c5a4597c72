"""Layering: the torch module and layers stand alone, and scvi-tools' private API is fenced."""

import ast
from pathlib import Path

import pytest
from scvi.model.base import BaseModelClass

import sctranslator as sct
from sctranslator import _scvi_compat

PACKAGE = Path(sct.__file__).parent
HIGHER = ("model", "train", "tl", "pl", "pp", "_cli")


def _imports(path: Path) -> set[str]:
    """Absolute names of the sctranslator modules ``path`` imports."""
    package = ["sctranslator", *path.parent.relative_to(PACKAGE).parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith("sctranslator")}


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "module").glob("*.py")) + sorted((PACKAGE / "nn").glob("*.py")),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_module_and_nn_import_nothing_above_them(path):
    above = {
        name
        for name in _imports(path)
        for higher in HIGHER
        if f"{name}.".startswith(f"sctranslator.{higher}.")
    }
    assert not above, f"{path.name} imports {sorted(above)}"


def test_the_import_check_sees_relative_imports():
    imports = _imports(PACKAGE / "module" / "_translator.py")
    assert "sctranslator.module._weights" in imports and "sctranslator.nn" in imports


def test_private_scvi_api_is_where_sctranslator_expects_it():
    low, high = _scvi_compat.TESTED_SCVI
    version = _scvi_compat.scvi_version()
    assert low <= version < high, (
        f"scvi-tools {version} is outside the range sctranslator._scvi_compat was checked with "
        f"({low} to {high}); check BaseModelClass._get_most_recent_anndata_manager, then widen it."
    )
    assert callable(getattr(BaseModelClass, "_get_most_recent_anndata_manager", None))


def test_setup_manager_finds_the_setup_of_a_data_object(pbmc):
    from helpers import batch, setup

    fresh = batch(pbmc, "p3_0")
    assert _scvi_compat.setup_manager(sct.SCTRANSLATOR, fresh) is None
    registered = setup(batch(pbmc, "p3_0"))
    manager = _scvi_compat.setup_manager(sct.SCTRANSLATOR, registered)
    assert manager is not None and manager.adata is registered
