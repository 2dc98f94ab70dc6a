"""Google Colab: the notebooks' first cell, and the "Open in Colab" links.

Colab gives a free GPU (usually a T4: float16 with gradient scaling, no native bfloat16), but a notebook opened
there from GitHub comes alone: the course is not installed and ipywidgets need Colab's custom widget manager.
So every notebook's first code cell is ``FIRST_CELL``: a few lines of plain Python (they run *before*
``course_lib`` exists on Colab) that, only on Colab, install the course from its repository with pip and enable
the widget manager. Its last line imports ``course_lib`` everywhere, before any cell imports torch, so that the
course's CPU-thread rule (``course_lib.threads``) is in force before torch starts its thread pool.
``tools/add_colab_cell.py`` writes it into the notebooks; this module is its one home.

    >>> in_colab()                        # False on a laptop, Binder or CI
    >>> colab_url("notebooks/05_gpu_training.ipynb")
    'https://colab.research.google.com/github/OWNER/gan-course/blob/main/notebooks/05_gpu_training.ipynb'
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import PurePosixPath

__all__ = ["REPO", "BRANCH", "INSTALL_URL", "FIRST_CELL", "MARKER", "in_colab", "colab_url", "badge", "setup"]

REPO = "OWNER/gan-course"  # placeholder GitHub owner/name, as in the README's Binder links and tests/test_binder.py
BRANCH = "main"
INSTALL_URL = f"git+https://github.com/{REPO}.git@{BRANCH}"
MARKER = "# Colab set-up"  # the first line of FIRST_CELL: how tools/add_colab_cell.py recognises the cell

FIRST_CELL = f'''{MARKER}: on Google Colab only, install the course and enable its widgets; everywhere, size
# torch's CPU threads to this machine by importing course_lib before torch (course_lib.threads).
import os, sys
if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{INSTALL_URL}"], check=True)
    from google.colab import output
    output.enable_custom_widget_manager()
    print("Colab: course installed. A GPU? Runtime > Change runtime type > a GPU.")
import course_lib'''


def in_colab(modules: Mapping | None = None, environ: Mapping | None = None) -> bool:
    """True inside a Google Colab kernel: ``google.colab`` is imported there at start-up, and Colab sets the
    ``COLAB_RELEASE_TAG`` environment variable. The arguments (default ``sys.modules``, ``os.environ``) are for
    tests."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or "COLAB_RELEASE_TAG" in environ


def colab_url(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The Colab address that opens ``notebook`` (a path inside the repository, e.g.
    ``notebooks/05_gpu_training.ipynb``) straight from GitHub."""
    path = PurePosixPath(str(notebook).replace("\\", "/"))
    if path.suffix != ".ipynb" or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"notebook must be a relative path to an .ipynb file inside the repository, got {notebook!r}")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path}"


def badge(notebook: str) -> str:
    """Markdown for an "Open in Colab" badge linking to ``notebook``."""
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)})"


def setup() -> bool:
    """Run ``FIRST_CELL`` here (the same code the notebooks carry). Returns whether it did anything, i.e. whether
    this is Colab."""
    exec(compile(FIRST_CELL, "<colab first cell>", "exec"), {"__name__": "__colab_setup__"})
    return in_colab()
