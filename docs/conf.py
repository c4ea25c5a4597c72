"""Sphinx configuration of the sctranslator documentation."""

from __future__ import annotations

import os
from datetime import date
from importlib.metadata import version as _version

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tutorials train small models on the CPU

project = "sctranslator"
author = "sctranslator developers"
copyright = f"{date.today().year}, {author}"
release = _version("sctranslator")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
    "sphinxcontrib.bibtex",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "generated/*.ipynb",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]
# ``.rst`` first: autosummary writes its generated pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "groupwise"
autodoc_default_options = {"inherited-members": False}
autodoc_typehints = "description"
autoclass_content = "class"
typehints_use_signature = False
typehints_use_rtype = True
always_document_param_types = False
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = True
napoleon_use_param = True

# No intersphinx: the build runs offline (CI, RTD builds of forks). References to classes of
# other packages (scvi-tools, anndata, torch...) therefore cannot resolve; they render as
# code and are not treated as errors. Our own cross-references are still checked.
nitpicky = False
suppress_warnings = ["myst.header"]

# -- Notebooks -------------------------------------------------------------------------------
# Tutorials are stored without outputs and executed at every build, so each figure comes from
# the current code. A failing cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Training logs and library notices on stderr are not part of the tutorials' content.
nb_output_stderr = "remove"
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# -- References ------------------------------------------------------------------------------
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"

# -- HTML ------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "sctranslator"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
