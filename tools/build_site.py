"""Build the course website into ``build/site/``: the worked notebooks with their outputs, INSTRUCTORS.md, the
benchmark pages and the API reference of ``course_lib``, with Sphinx, myst-nb and the book theme, offline.

    python tools/build_site.py                  # quick budget (what CI builds), into build/site/
    python tools/build_site.py --budget cpu     # the published site: the notebooks' CPU budgets
    python tools/build_site.py --check          # no execution, no HTML: only the table of contents and links

Needs the docs extra: ``python -m pip install -e ".[docs]"``.

How it works:

* The pages are not copied into ``docs/``: the build links them into a source tree under ``build/site-src/`` laid
  out as the repository is (``solutions/``, ``benchmarks/``, ``figures/``, ``INSTRUCTORS.md`` and the pages of
  ``docs/``), so relative links and images between them resolve as they do on GitHub.
* Notebooks are executed with myst-nb's cache mode (jupyter-cache): an unchanged notebook is not run again
  (``--fresh`` runs them all, e.g. after a change in ``course_lib``, which the cache does not see). The
  cache, like Sphinx's own environment, has one folder per budget (``build/site-cache/<budget>/``), so a ``cpu``
  build never shows ``quick`` outputs. The kernels get the budget through ``COURSE_BUDGET``.
* Any warning fails the build (Sphinx ``-W``, all warnings reported): a broken cross-reference, a missing image, a
  page or notebook left out of the table of contents. A notebook cell that raises stops the build at once, and the
  message names the notebook and the cell.
"""
from __future__ import annotations

import argparse
import os
import pkgutil
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ("quick", "cpu", "gpu")          # course_lib.budget.MODES (not imported: this runs before any check)
DOCS_PACKAGES = {"sphinx": "sphinx", "myst_nb": "myst-nb", "jupyter_cache": "jupyter-cache",
                 "sphinx_book_theme": "sphinx-book-theme"}
INSTALL_HINT = 'python -m pip install -e ".[docs]"'
CELL_TIMEOUT_S = {"quick": 600, "cpu": 1800, "gpu": 1800}   # per cell; quick: nbval's limit (pyproject.toml)
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
API_PLACEHOLDER = "<!-- course_lib modules -->"   # in docs/api.md


class SiteBuildError(RuntimeError):
    """The site could not be built; the message says why and what to do."""


def missing_docs_packages() -> list[str]:
    """The PyPI names of the site's build dependencies that cannot be imported here."""
    import importlib.util
    return [pip_name for module, pip_name in DOCS_PACKAGES.items() if importlib.util.find_spec(module) is None]


def require_docs_packages() -> None:
    """Raise ``SiteBuildError`` naming the install extra when a build dependency is missing."""
    missing = missing_docs_packages()
    if missing:
        raise SiteBuildError(f"the site needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                             f"not installed: install the docs extra with  {INSTALL_HINT}")


def source_files(repo: Path) -> dict[str, Path]:
    """What the site is made of: {path inside the source tree: file of ``repo``}. The pages of ``docs/``, the
    worked notebooks, INSTRUCTORS.md, the benchmark pages (``benchmarks/README.md`` and ``RESULTS-*.md``; the
    ``*_notes.md`` files are parts of those pages) with their images, and ``figures/`` for the notebooks' images."""
    patterns = ["docs/*.md", "solutions/*.ipynb", "INSTRUCTORS.md", "benchmarks/README.md", "benchmarks/RESULTS-*.md",
                "figures/**/*"] + [f"benchmarks/*{ext}" for ext in IMAGE_SUFFIXES]
    files: dict[str, Path] = {}
    for pattern in patterns:
        for path in sorted(repo.glob(pattern)):
            if path.is_file():
                rel = path.relative_to(repo)
                files[(rel.relative_to("docs") if rel.parts[0] == "docs" else rel).as_posix()] = path
    return files


def api_page(text: str, repo: Path) -> str:
    """The API page with its placeholder replaced by an autosummary of every module of ``course_lib`` (found on
    disk, so a new module appears by itself; ``__main__`` is left out: importing it runs the command line)."""
    modules = ["course_lib"] + [f"course_lib.{m.name}" for m in pkgutil.iter_modules([str(repo / "course_lib")])
                                if m.name != "__main__"]
    listing = "\n".join(f"   {name}" for name in modules)
    return text.replace(API_PLACEHOLDER, f"```{{eval-rst}}\n.. autosummary::\n   :toctree: generated\n\n{listing}\n```")


def _write_if_changed(dst: Path, data: bytes, mtime: float | None = None) -> None:
    if dst.is_file() and dst.read_bytes() == data:
        return                             # unchanged: Sphinx does not read it again
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    if mtime is not None:
        os.utime(dst, (mtime, mtime))


def stage_sources(repo: Path, stage: Path) -> None:
    """Make ``stage`` a copy of ``source_files(repo)`` and nothing else (autosummary writes its pages afresh).
    Copies, not links: MyST resolves relative links of linked files to the link's target, outside the tree."""
    wanted = source_files(repo)
    for rel, src in wanted.items():
        data = src.read_bytes()
        if rel == "api.md":
            data = api_page(data.decode("utf-8"), repo).encode("utf-8")
        # the API page is made here: when its module list changes it is new (its source's time would hide that)
        _write_if_changed(stage / rel, data, None if rel == "api.md" else src.stat().st_mtime)
    for path in sorted(stage.rglob("*"), reverse=True):   # files and then their folders, deepest first
        rel = path.relative_to(stage)
        if rel.as_posix() in wanted:
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()


def kernel_environment(budget: str, repo: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the notebook kernels inherit: the budget, no downloads, static widget figures, no progress
    bars, this checkout's ``course_lib`` first on the path. ``MPLBACKEND`` is removed: ipykernel then uses the
    inline backend, and the figures become cell outputs (with ``Agg`` they would not)."""
    if budget not in BUDGETS:
        raise SiteBuildError(f"unknown budget {budget!r}: use one of {', '.join(BUDGETS)}")
    env = dict(os.environ if environ is None else environ)
    env.pop("MPLBACKEND", None)
    env.update({"COURSE_BUDGET": budget, "COURSE_OFFLINE": "1", "COURSE_STATIC_WIDGETS": "1", "TQDM_DISABLE": "1",
                "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join([str(repo)] + [p for p in
                                                                                   [env.get("PYTHONPATH")] if p])})
    if budget == "quick":
        env["COURSE_QUICK"] = "1"          # as in the tests (conftest.py): one thread per kernel on shared runners
        env.setdefault("OMP_NUM_THREADS", "1")
    else:
        env.pop("COURSE_QUICK", None)
    return env


def cache_folder(budget: str, work: Path | None = None) -> Path:
    """The jupyter-cache folder of ``budget``'s executed notebooks (``build/site-cache/<budget>/jupyter``), which
    ``build`` reads and ``tools/run_student_budget.py --site-cache`` can fill."""
    return (work or ROOT / "build").resolve() / "site-cache" / budget / "jupyter"


def _exception_chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "orig_exc", None) or exc.__cause__ or exc.__context__


def _cell_snippet(message: str) -> str | None:
    """The cell source nbclient quotes between two dashed lines in its error messages."""
    lines = message.splitlines()
    dashes = [i for i, line in enumerate(lines) if line.strip() and set(line.strip()) == {"-"}]
    if len(dashes) < 2:
        return None
    return "\n".join(lines[dashes[0] + 1:dashes[1]]).strip("\n")


def find_failing_cell(cells: list[dict], message: str) -> int | None:
    """Index (from 0, every cell counted) of the code cell that an nbclient error ``message`` quotes, or None."""
    snippet = _cell_snippet(message)
    if not snippet:
        return None
    sources = [("".join(c.get("source", "")) if c.get("cell_type") == "code" else None) for c in cells]
    for i, src in enumerate(sources):
        if src is not None and src.strip() == snippet.strip():
            return i
    first = next((line for line in snippet.splitlines() if line.strip()), "")
    return next((i for i, src in enumerate(sources) if src is not None and first and first in src), None)


def describe_notebook_failure(exc: BaseException, stage: Path, repo: Path, budget: str) -> str | None:
    """A message naming the notebook and the cell where execution failed, or None if ``exc`` is no notebook
    failure. ``exc`` is what the Sphinx build raised (myst-nb's ``ExecutionError``, caused by nbclient's error)."""
    import json
    chain = list(_exception_chain(exc))
    failure = next((e for e in chain if type(e).__name__ == "ExecutionError"), None)
    if failure is None:
        return None
    path = Path(str(failure.args[0]) if failure.args else "")
    try:
        rel = path.relative_to(stage).as_posix()
    except ValueError:
        rel = path.as_posix()
    cause = next((e for e in chain if e is not failure and type(e).__name__ in
                  {"CellExecutionError", "CellTimeoutError", "DeadKernelError"}), None) or failure.__cause__
    detail = str(cause) if cause is not None else ""
    cell_text = "an unknown cell"
    try:
        cells = json.loads((repo / rel).read_text(encoding="utf-8"))["cells"]
        index = find_failing_cell(cells, detail)
        if index is not None:
            number = sum(1 for c in cells[:index + 1] if c.get("cell_type") == "code")
            total = sum(c.get("cell_type") == "code" for c in cells)
            cell_text = f"cell {index} (code cell {number} of {total}; cells counted from 0, markdown included)"
    except (OSError, ValueError, KeyError):
        pass
    reason = (f"{cause.ename}: {cause.evalue}" if getattr(cause, "ename", None)
              else (detail.strip().splitlines() or [type(cause).__name__ if cause else "unknown error"])[0])
    snippet = _cell_snippet(detail)
    shown = "\n".join("    " + line for line in (snippet or "").splitlines()[:8])
    return (f"site build stopped: {rel} failed in {cell_text} with the {budget} budget:\n{reason}\n"
            + (f"the cell:\n{shown}\n" if shown else "")
            + f"Run it alone to see the whole traceback: COURSE_BUDGET={budget} python -m pytest {rel}  "
              f"(or run it in JupyterLab), fix it, then build again.")


def build(budget: str = "quick", repo: Path = ROOT, work: Path | None = None, out: Path | None = None,
          check: bool = False, fresh: bool = False) -> int:
    """Build the site of ``repo`` into ``out`` (default ``<work>/site``, with ``work`` default ``build/``); return
    Sphinx's status (0: built without a warning). ``check``: no execution and no HTML, only reading every page and
    resolving its links and table of contents. ``fresh``: forget this budget's executed notebooks and run them all
    again (the cache knows the notebooks, not ``course_lib``: use it after changing the library). Raises
    ``SiteBuildError`` when a dependency is missing or a notebook fails."""
    require_docs_packages()
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    repo = repo.resolve()
    kernel_env = kernel_environment(budget, repo, dict(os.environ))   # checks the budget first
    work = (work or ROOT / "build").resolve()
    out = out or work / "site"
    cache = work / "site-cache" / ("check" if check else budget)
    stage = work / "site-src"
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
    stage_sources(repo, stage)
    overrides = {
        "course_repo_root": str(repo),
        "course_budget": budget,
        "nb_execution_mode": "off" if check else "cache",
        "nb_execution_cache_path": str(cache_folder("check" if check else budget, work)),
        "nb_execution_timeout": CELL_TIMEOUT_S[budget],
    }
    saved_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(kernel_env)          # nbclient's kernels inherit os.environ
    try:
        with patch_docutils(str(repo / "docs")), docutils_namespace():
            app = Sphinx(str(stage), str(repo / "docs"), str(cache / "dummy" if check else out),
                         str(cache / "doctrees"), "dummy" if check else "html", confoverrides=overrides,
                         warningiserror=True, keep_going=True)
            app.build(force_all=not check)   # every page written: the HTML folder is shared by the budgets
            return app.statuscode
    except Exception as exc:
        message = describe_notebook_failure(exc, stage, repo, budget)
        if message is None:
            raise
        raise SiteBuildError(message) from exc
    finally:
        os.environ.clear()
        os.environ.update(saved_env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=BUDGETS, default="quick",
                        help="training budget of the notebooks (course_lib.budget; default: quick, as in CI)")
    parser.add_argument("--check", action="store_true",
                        help="no execution, no HTML: only check the table of contents, links and images")
    parser.add_argument("--fresh", action="store_true",
                        help="run every notebook again (the cache is keyed on the notebooks, not on course_lib)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: build/site)")
    args = parser.parse_args(argv)
    try:
        status = build(args.budget, out=args.out, check=args.check, fresh=args.fresh)
    except SiteBuildError as err:
        print(f"build_site: {err}", file=sys.stderr)
        return 2
    where = "checked" if args.check else f"built into {(args.out or ROOT / 'build' / 'site')}"
    if status:
        print(f"build_site: the site has warnings (listed above), which fail the build; fix them ({where})",
              file=sys.stderr)
    else:
        print(f"build_site: site {where} with the {args.budget} budget")
    return status


if __name__ == "__main__":
    sys.exit(main())
