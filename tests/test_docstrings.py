"""Every public function, class and method has numpydoc Parameters and Examples sections."""

import inspect
import re

import pytest

import sctranslator as sct

MODULES = {
    "sctranslator": sct,
    "sctranslator.pp": sct.pp,
    "sctranslator.tl": sct.tl,
    "sctranslator.pl": sct.pl,
    "sctranslator.datasets": sct.datasets,
    "sctranslator.metrics": sct.metrics,
}

# Names allowed to lack a section, each with the reason. Keep it empty: add a name only with a
# comment on why, and remove it when its docstring is fixed (a stale entry fails the test).
ALLOWED_MISSING: dict[str, set[str]] = {}


def _own_members(cls) -> dict:
    """Members that ``cls`` and its sctranslator base classes define (the nearest first)."""
    members = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("sctranslator"):
            members.update(vars(klass))
    return members


def _public_objects():
    """(qualified name, documented object, callable whose signature is documented)."""
    for module_name, module in MODULES.items():
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue
            qualified = f"{module_name}.{name}"
            yield qualified, obj, obj.__init__ if inspect.isclass(obj) else obj
            if inspect.isclass(obj):
                # Methods defined by sctranslator, the class's own and those of its mixins;
                # those inherited from scvi-tools are theirs.
                for member_name, member in _own_members(obj).items():
                    if member_name.startswith("_"):
                        continue
                    if isinstance(member, classmethod | staticmethod):
                        member = member.__func__
                    if isinstance(member, property) or not callable(member):
                        continue
                    yield f"{qualified}.{member_name}", member, member


def _takes_parameters(function) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name not in ("self", "cls") for p in signature.parameters.values())


def _has_section(doc: str, title: str) -> bool:
    return re.search(rf"^{title}\n-{{{len(title)}}}[ \t]*$", doc, re.M) is not None


def _missing_sections(obj, signature_of) -> set[str]:
    doc = inspect.getdoc(obj) or ""
    required = {"Examples"} | ({"Parameters"} if _takes_parameters(signature_of) else set())
    return {title for title in required if not _has_section(doc, title)}


PUBLIC = list(_public_objects())


def test_the_public_api_is_found():
    names = {name for name, _, _ in PUBLIC}
    assert {"sctranslator.SCTRANSLATOR", "sctranslator.SCTRANSLATOR.train"} <= names
    inherited = {"save", "load", "setup_mudata", "fine_tune", "calibrate", "model_card"}
    assert {f"sctranslator.SCTRANSLATOR.{name}" for name in inherited} <= names
    assert {"sctranslator.pp.pair_modalities", "sctranslator.metrics.evaluate"} <= names
    for module_name, module in MODULES.items():
        if module is not sct:
            assert any(name.startswith(f"{module_name}.") for name in names), module_name


@pytest.mark.parametrize(("name", "obj", "signature_of"), PUBLIC, ids=[p[0] for p in PUBLIC])
def test_docstring_has_parameters_and_examples(name, obj, signature_of):
    missing = _missing_sections(obj, signature_of) - ALLOWED_MISSING.get(name, set())
    assert not missing, f"{name}: docstring has no {' or '.join(sorted(missing))} section"


def test_allow_list_is_not_stale():
    found = {name: _missing_sections(obj, signature_of) for name, obj, signature_of in PUBLIC}
    stale = {
        name: allowed - found.get(name, set())
        for name, allowed in ALLOWED_MISSING.items()
        if allowed - found.get(name, set())
    }
    assert not stale, f"fixed or removed, take off ALLOWED_MISSING: {stale}"
