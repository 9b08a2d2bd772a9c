"""Sphinx configuration of the hyperspy-hnmf documentation.

Build (warnings are errors)::

    python -m pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")
# exspy 0.3 imports signal classes from HyperSpy's old paths; keep that
# deprecation notice (not ours to fix) off the gallery pages.
warnings.filterwarnings("ignore", message=r"Importing `\w+` from `hyperspy\._signals")

import hyperspy_hnmf  # noqa: E402

project = "hyperspy-hnmf"
author = "hyperspy-hnmf developers"
copyright = "2026, hyperspy-hnmf developers"
release = version = hyperspy_hnmf.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "benchmarks_page",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "api/generated/*.examples", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

autosummary_generate = True
autosummary_ignore_module_all = False  # a module's page lists its __all__
templates_path = ["_templates"]
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = "hyperspy-hnmf"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = ["_static"]
html_css_files = ["gallery.css"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",
    "ignore_pattern": r"(__init__|/output/).*",
    # Each cell's figures are captured by matplotlib's scraper and shown
    # full width after that cell (docs/_static/gallery.css).
    "image_scrapers": ("matplotlib",),
    "capture_repr": (),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}
