"""Sphinx extension for the course website (``docs/conf.py`` loads it).

It does four things, so that neither the notebooks nor the Markdown pages need anything site-specific:

* every worked notebook page (``solutions/NN_*.ipynb``) gets, under its title, an "Open in Binder" and an
  "Open in Colab" badge that open the *exercise* version (``notebooks/NN_*.ipynb``);
* the notebooks' Colab set-up cell is left off the pages (it does nothing outside Colab);
* a relative link to a file of the repository that is not a page of the site (``../course_lib/train.py``,
  ``notebooks/03_first_gan_2d.ipynb``, ``README.md``) becomes a link to that file on GitHub; a link to a file that
  exists nowhere stays a broken cross-reference, which fails the build;
* markup problems inside ``course_lib`` docstrings are printed as notes and do not fail the build.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.logging import WarningStreamHandler

from course_lib.colab import BRANCH, MARKER, REPO, colab_url

SOLUTIONS = "solutions"                    # the worked notebooks: the pages of the site
EXERCISES = "notebooks"                    # the student versions the badges open
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def binder_url(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The mybinder.org address that opens ``notebook`` (a path inside the repository) in JupyterLab, the pattern
    of the README's Binder links."""
    return f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/{PurePosixPath(notebook)}"


def github_url(path: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The GitHub page of ``path`` (a file inside the repository)."""
    return f"https://github.com/{repo}/blob/{branch}/{PurePosixPath(path)}"


def exercise_path(docname: str) -> str | None:
    """``solutions/03_first_gan_2d`` -> ``notebooks/03_first_gan_2d.ipynb``; None for any other page."""
    parts = PurePosixPath(docname).parts
    if len(parts) != 2 or parts[0] != SOLUTIONS:
        return None
    return f"{EXERCISES}/{parts[1]}.ipynb"


def _badge(alt: str, image: str, url: str) -> nodes.reference:
    ref = nodes.reference("", "", refuri=url, classes=["course-launch"])
    ref += nodes.image(uri=image, alt=alt, candidates={"?": image})   # remote: as Sphinx's image collector marks it
    return ref


def drop_colab_setup_cell(app: Sphinx, doctree: nodes.document) -> None:
    """Leave the notebooks' Colab set-up cell (``course_lib.colab.FIRST_CELL``) off the pages: it does nothing
    outside Colab, and a reader of the site needs none of it."""
    if exercise_path(app.env.docname) is None:
        return
    for cell in list(doctree.findall(nodes.container)):
        if "cell" in cell["classes"]:
            code = next(iter(cell.findall(nodes.literal_block)), None)
            if code is not None and code.astext().startswith(MARKER):
                cell.parent.remove(cell)


def add_launch_badges(app: Sphinx, doctree: nodes.document) -> None:
    """Under the title of a worked notebook page: badges opening its exercise version on Binder and on Colab."""
    exercise = exercise_path(app.env.docname)
    if exercise is None:
        return
    para = nodes.paragraph(classes=["course-launch-badges"])
    para += nodes.Text("Exercises: ")
    para += _badge("Open the exercises in Binder", BINDER_BADGE, binder_url(exercise))
    para += nodes.Text(" ")
    para += _badge("Open the exercises in Colab", COLAB_BADGE, colab_url(exercise))
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, para)
    else:
        doctree.insert(0, para)


class RepositoryLinks(SphinxPostTransform):
    """A relative link to a repository file that is not a page of the site points to the file on GitHub.

    Runs before MyST resolves its references (priority 9), so only links MyST would call missing are touched."""

    default_priority = 5

    def run(self, **kwargs) -> None:
        root = Path(self.config.course_repo_root or Path(self.env.srcdir)).resolve()
        docdir = PurePosixPath(self.env.docname).parent
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") is not None:
                continue
            target = str(node["reftarget"]).split("#", 1)[0]
            if not target or "://" in target:
                continue
            rel = PurePosixPath(*(docdir / target).parts)
            resolved = (root / rel).resolve()
            if not resolved.is_relative_to(root) or not resolved.exists():
                continue                   # stays a pending reference: MyST reports it missing
            ref = nodes.reference("", "", *node.children, refuri=github_url(resolved.relative_to(root).as_posix()),
                                  internal=False, classes=["course-repo-link"])
            node.replace_self(ref)


def share_budget(app: Sphinx, config) -> None:
    """Make the budget available to the pages as the MyST substitution ``{{ budget }}``."""
    config.myst_substitutions = {**config.myst_substitutions, "budget": config.course_budget}


class DocstringMarkupNotFatal(logging.Filter):
    """Show reStructuredText markup problems of ``course_lib`` docstrings (an unclosed ````literal````, an odd
    indentation) as notes instead of warnings: they do not fail the site, which fails on what breaks a reader's
    path (a broken link, a missing image, a page left out of the table of contents). Counted in ``self.count``."""

    def __init__(self, status) -> None:
        super().__init__()
        self.status, self.count = status, 0

    def filter(self, record: logging.LogRecord) -> bool:
        location = str(getattr(record, "location", "") or "")
        if getattr(record, "type", "") == "docutils" and ("docstring of " in location or "generated/" in location):
            self.count += 1
            message = record.msg % record.args if record.args else record.msg
            print(f"note (docstring markup, not fatal): {location}: {message}", file=self.status)
            return False
        return True


def _demote_docstring_markup(app: Sphinx) -> None:
    for handler in logging.getLogger("sphinx").handlers:
        if isinstance(handler, WarningStreamHandler):
            handler.filters.insert(0, DocstringMarkupNotFatal(sys.stdout))   # before Sphinx counts the warning


def setup(app: Sphinx) -> dict:
    _demote_docstring_markup(app)
    app.add_config_value("course_repo_root", "", "env")   # the repository the staged source tree mirrors
    app.add_config_value("course_budget", "quick", "env")  # the budget the notebooks ran with (shown on the site)
    app.connect("config-inited", share_budget)
    app.connect("doctree-read", add_launch_badges)
    app.connect("doctree-read", drop_colab_setup_cell)
    app.add_post_transform(RepositoryLinks)
    # env_version: bump it when a change here alters the pages, so that Sphinx reads every page again
    return {"version": "1", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}
