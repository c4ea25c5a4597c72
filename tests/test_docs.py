"""The documentation builds with warnings as errors, executing every tutorial.

The build runs the notebooks of ``tutorials/`` (stored without outputs) through myst-nb, so a
tutorial that no longer runs against the current code fails this test. It is the slowest test
of the suite (minutes: it trains the tutorials' small models).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sctranslator as sct

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))
PAGES = ["index", "installation", "user_guide", "api", "benchmarks", "changelog", "references"]
PUBLIC_MODULES = ["pp", "tl", "pl", "datasets", "metrics"]


def test_tutorials_are_stored_without_outputs():
    assert {p.stem for p in TUTORIALS} >= {"quickstart", "transfer", "downstream"}
    for path in TUTORIALS:
        notebook = json.loads(path.read_text())
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert code, path
        for cell in code:
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_every_tutorial_is_in_the_toctree():
    index = (ROOT / "tutorials" / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}(.*?)```", index, re.S).group(1).split()
    assert [p.stem for p in TUTORIALS if p.stem not in toctree] == []


FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
REPOSITORY_DATA = re.compile(r"\.\./shared|\bshared/data\b")


def user_code() -> list[tuple[str, str]]:
    """``(where, code)`` of every code block of the README and docs pages, and of every
    code cell of the tutorials: what a user who installed the package runs."""
    blocks = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for language, code in FENCE.findall(page.read_text()):
            if not language.startswith("{include}"):
                blocks.append((f"{page.name} ({language.strip() or 'text'})", code))
    for path in TUTORIALS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                blocks.append((path.name, "".join(cell["source"])))
    return blocks


def test_user_examples_read_no_repository_data():
    """A user has no ``../shared`` folder (the repository's development data): no example
    may read it. Data the package does not ship are fetched by a documented command."""
    blocks = user_code()
    assert any("cptac_ucec_bulk" in code for _, code in blocks)  # the bulk recipe is parsed
    offending = [
        f"{where}: {line.strip()}"
        for where, code in blocks
        for line in code.splitlines()
        if REPOSITORY_DATA.search(line)
    ]
    assert offending == [], offending


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)  # the notebooks' kernel must use its inline backend for figures
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return out


@pytest.mark.slow  # the `html` fixture builds the docs, executing every tutorial (minutes)
def test_docs_build_without_warnings_and_have_every_page(html):
    for page in PAGES:
        assert (html / f"{page}.html").is_file(), page
    assert (html / "_static" / "model.svg").read_text().lstrip().startswith("<?xml")
    assert "model.svg" in (html / "user_guide.html").read_text()
    references = (html / "references.html").read_text()
    for cited in ("Liu", "Hao", "Dou"):
        assert cited in references
    assert "Keep a Changelog" in (html / "changelog.html").read_text()


@pytest.mark.slow  # needs the docs build
def test_api_reference_documents_every_public_name(html):
    generated = html / "generated"
    assert (generated / "sctranslator.SCTRANSLATOR.html").is_file()
    for method in ("train", "predict_protein", "save", "load"):
        assert (generated / f"sctranslator.SCTRANSLATOR.{method}.html").is_file(), method
    for name in PUBLIC_MODULES:
        module = getattr(sct, name)
        assert (generated / f"sctranslator.{name}.html").is_file(), name
        for member in module.__all__:
            page = generated / f"sctranslator.{name}.{member}.html"
            assert page.is_file(), f"{name}.{member}"
            assert "Examples" in page.read_text(), f"{name}.{member} has no Examples section"


@pytest.mark.slow  # needs the docs build
@pytest.mark.parametrize("tutorial", [p.stem for p in TUTORIALS])
def test_tutorials_are_rendered_with_their_outputs(html, tutorial):
    page = (html / "tutorials" / f"{tutorial}.html").read_text()
    images = re.findall(r'<img [^>]*src="(\.\./_images/[^"]+\.png)"', page)
    assert images, f"{tutorial}: no figure in the rendered page"
    for image in images:
        assert (html / "tutorials" / image).resolve().read_bytes()[:4] == b"\x89PNG"
    assert "cell_output" in page
    assert "Traceback" not in page
