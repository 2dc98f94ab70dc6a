"""Sphinx configuration of the course website. Build it with ``python tools/build_site.py`` (it stages the source
tree, sets the budget and the execution cache, and names a failing notebook cell); see that file."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path[:0] = [str(HERE / "_ext"), str(REPO_ROOT)]   # the site extension; this checkout's course_lib

from course_lib.colab import BRANCH, REPO  # noqa: E402

project = "Generative Adversarial Networks, from theory to GPU training"
author = "the course's authors"
copyright = "the course's authors, MIT licence"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",                # the docstrings are Google style (Args:, Returns:, Raises:)
    "sphinx.ext.mathjax",                  # MathJax from its CDN, for readers; nothing is downloaded at build time
    "sphinx.ext.viewcode",
    "course_site",
]
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["**/.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# Markdown and notebooks
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "substitution"]
myst_heading_anchors = 3

# Notebook execution (tools/build_site.py overrides the cache folder per budget and the budget itself)
nb_execution_mode = "cache"
nb_execution_cache_path = str(REPO_ROOT / "build" / "site-cache" / "quick" / "jupyter")
nb_execution_timeout = 1800              # seconds per cell
nb_execution_raise_on_error = True       # a failing cell stops the build; build_site.py names notebook and cell
nb_execution_show_tb = True
nb_execution_in_temp = False             # run in the notebook's folder, as a student does
nb_merge_streams = True

# The site extension (docs/_ext/course_site.py)
course_repo_root = str(REPO_ROOT)
course_budget = "quick"                  # also the MyST substitution {{ budget }}

# API reference
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True,
                           "ignore-module-all": True}   # a name re-exported in __all__ is documented once, at home
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_use_ivar = True                 # "Attributes:" as fields: no second description of a dataclass field

# HTML
html_theme = "sphinx_book_theme"
html_title = "GANs, from theory to GPU training"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "repository_url": f"https://github.com/{REPO}",
    "repository_branch": BRANCH,
    "use_repository_button": True,
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
html_show_sourcelink = False
