"""The course website (tools/build_site.py, docs/): how its build fails, its deployment workflow, and the built site
in a real (headless) Chromium.

* A notebook cell that raises stops the build, naming the notebook and the cell; a notebook left out of the table
  of contents fails it; a missing dependency names the install extra.
* ``.github/workflows/pages.yml`` is valid YAML and builds with the same command as ``.ci/run``, budget aside.
* The browser test opens ``build/site/`` (built by ``.ci/run`` before the tests; it skips when it has not been
  built) over a local http.server, with every request off this machine blocked (so MathJax, the badges' images
  and the widget scripts from CDNs never load), opens the home page and one notebook page and checks that a figure
  output is displayed. Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import shlex
import shutil
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from browser_support import CHROMIUM_ARGS, NO_CHROMIUM, NO_PLAYWRIGHT, ROOT, find_chromium, screenshot

sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

SITE = ROOT / "build" / "site"
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
CI_SCRIPT = ROOT / ".ci" / "run"
FIGURE_PAGE = "solutions/01_gan_theory.html"   # a worked notebook whose outputs hold figures in every budget
needs_docs = pytest.mark.skipif(bool(build_site.missing_docs_packages()),
                                reason='the site\'s build dependencies are missing: pip install -e ".[docs]"')


# ----------------------------------------------------------------------------- the build's failures
def _tiny_repo(tmp_path: Path, notebooks: dict[str, list[str]], in_toc: list[str]) -> Path:
    """A repository-shaped folder: the real docs/ configuration, an index listing ``in_toc``, and one notebook of
    code cells per entry of ``notebooks`` ({name: [cell sources]}), under solutions/."""
    repo = tmp_path / "repo"
    docs = repo / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("*.md", "__pycache__"))
    toc = "\n".join(f"solutions/{name}" for name in in_toc)
    (docs / "index.md").write_text(f"# Tiny course\n\n```{{toctree}}\n{toc}\n```\n", encoding="utf-8")
    (repo / "solutions").mkdir()
    for name, sources in notebooks.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}")] + [nbformat.v4.new_code_cell(s) for s in sources]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, repo / "solutions" / f"{name}.ipynb")
    return repo


@needs_docs
def test_a_notebook_left_out_of_the_table_of_contents_fails_the_check(tmp_path, capfd):
    repo = _tiny_repo(tmp_path, {"00_listed": ["1 + 1"], "01_forgotten": ["2 + 2"]}, in_toc=["00_listed"])
    status = build_site.build("quick", repo=repo, work=tmp_path / "build", check=True)
    err = capfd.readouterr().err
    assert status != 0, "a notebook missing from the table of contents did not fail the site check"
    assert re.search(r"01_forgotten.*isn't included in any toctree", err), err


@needs_docs
def test_a_broken_link_fails_the_check_and_a_repository_file_links_to_github(tmp_path, capfd):
    repo = _tiny_repo(tmp_path, {"00_listed": ["1 + 1"]}, in_toc=["00_listed"])
    (repo / "tools").mkdir()
    (repo / "tools" / "helper.py").write_text("", encoding="utf-8")
    index = repo / "docs" / "index.md"
    links = "\n[a tool](tools/helper.py) and [a typo](solutions/00_lsted.ipynb)\n"
    index.write_text(index.read_text(encoding="utf-8") + links, encoding="utf-8")
    status = build_site.build("quick", repo=repo, work=tmp_path / "build", check=True)
    err = capfd.readouterr().err
    assert status != 0 and "00_lsted" in err, err
    assert "helper.py" not in err, "a link to a file of the repository should point to GitHub, not fail"


@needs_docs
def test_a_failing_cell_stops_the_build_naming_notebook_and_cell(tmp_path):
    repo = _tiny_repo(tmp_path, {"00_broken": ["x = 1", "raise ValueError('the deliberate failure')", "y = 2"]},
                      in_toc=["00_broken"])
    with pytest.raises(build_site.SiteBuildError) as info:
        build_site.build("quick", repo=repo, work=tmp_path / "build")
    message = str(info.value)
    assert "solutions/00_broken.ipynb" in message and "cell 2 (code cell 2 of 3;" in message, message
    assert "ValueError: the deliberate failure" in message and "raise ValueError" in message, message


@needs_docs
def test_outputs_stored_by_the_student_budget_run_are_rendered_without_running_again(tmp_path, monkeypatch):
    import run_student_budget

    repo = _tiny_repo(tmp_path, {"00_stored": ["import os\nprint('made by', os.environ.get('MADE_BY', 'the build'))"]},
                      in_toc=["00_stored"])
    work = tmp_path / "build"
    monkeypatch.setenv("MADE_BY", "the budget run")
    result = run_student_budget.run_notebook(repo / "solutions" / "00_stored.ipynb",
                                             site_cache=build_site.cache_folder("quick", work))
    assert result.error is None and "made by the budget run" in result.output
    monkeypatch.delenv("MADE_BY")
    assert build_site.build("quick", repo=repo, work=work) == 0
    page = (work / "site" / "solutions" / "00_stored.html").read_text(encoding="utf-8")
    assert "made by the budget run" in page and "made by the build" not in page, "the notebook was run again"


def test_the_failing_cell_is_found_from_nbclient_message():
    cells = [{"cell_type": "markdown", "source": "# t"}, {"cell_type": "code", "source": "a = 1"},
             {"cell_type": "code", "source": "import torch\n1 / 0"}]
    message = ("An error occurred while executing the following cell:\n------------------\nimport torch\n1 / 0\n"
               "------------------\n\nZeroDivisionError: division by zero")
    assert build_site.find_failing_cell(cells, message) == 2
    timeout = ("A cell timed out while it was being executed, after 5 seconds.\nHere is a preview of the cell "
               "contents:\n-------------------\n['import torch']\n...\n-------------------\n")
    assert build_site.find_failing_cell(cells, timeout) is None or build_site.find_failing_cell(cells, timeout) == 2
    assert build_site.find_failing_cell(cells, "no cell quoted") is None


def test_a_build_without_the_docs_dependencies_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "myst_nb" else real(name, *a))
    with pytest.raises(build_site.SiteBuildError, match=re.escape('pip install -e ".[docs]"')) as info:
        build_site.build("quick")
    assert "myst-nb" in str(info.value)


def test_kernels_get_the_budget_and_inline_figures():
    env = build_site.kernel_environment("cpu", ROOT, {"MPLBACKEND": "Agg", "COURSE_QUICK": "1"})
    assert env["COURSE_BUDGET"] == "cpu" and env["COURSE_OFFLINE"] == "1" and "COURSE_QUICK" not in env
    assert "MPLBACKEND" not in env, "with MPLBACKEND=Agg the notebooks' figures would not become outputs"
    with pytest.raises(build_site.SiteBuildError, match="unknown budget"):
        build_site.kernel_environment("fast", ROOT, {})


def test_every_worked_notebook_is_in_the_table_of_contents():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^solutions/(\S+)$", index, flags=re.M))
    on_disk = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    assert listed == on_disk, f"docs/index.md lists {sorted(listed - on_disk)} that do not exist and misses " \
                              f"{sorted(on_disk - listed)}"


# ----------------------------------------------------------------------------- the deployment workflow
def _site_commands(text: str) -> list[str]:
    """The build_site commands in a shell script, joined across backslash-continued lines, comments removed."""
    text = text.replace("\\\n", " ")
    return [" ".join(shlex.split(line, comments=True)) for line in text.splitlines()
            if "tools/build_site.py" in line and not line.lstrip().startswith("#")]


def _without_budget(command: str) -> str:
    return re.sub(r"\s*--budget[ =]\S+", "", command)


def test_pages_workflow_is_valid_and_builds_as_ci_does():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it comes with jupyterlab, in .[dev])")
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    steps = [step for job in jobs.values() for step in job.get("steps", [])]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses), uses
    assert any(u.startswith("actions/deploy-pages@") for u in uses), uses
    assert workflow.get("permissions", {}).get("pages") == "write", "deploy-pages needs pages: write"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload.get("with", {}).get("path") == "build/site", "the artifact must be the built site"

    in_workflow = [c for step in steps for c in _site_commands(step.get("run", ""))]
    in_ci = _site_commands(CI_SCRIPT.read_text(encoding="utf-8"))
    assert len(in_workflow) == 1 and len(in_ci) == 1, (in_workflow, in_ci)
    assert "--budget cpu" in in_workflow[0] and "--budget quick" in in_ci[0], (in_workflow, in_ci)
    assert _without_budget(in_workflow[0]) == _without_budget(in_ci[0]), (
        f"pages.yml builds with {in_workflow[0]!r} but .ci/run with {in_ci[0]!r}: only the budget may differ")


def test_ci_builds_the_site_after_installing_and_before_the_tests():
    lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    install = next(i for i, line in enumerate(lines) if "pip install -e" in line)
    site = next(i for i, line in enumerate(lines) if "tools/build_site.py" in line)
    tests = next(i for i, line in enumerate(lines) if line.startswith("python -m pytest"))
    assert install < site < tests, "CI must build the site after installing and before pytest (the browser test)"


# ----------------------------------------------------------------------------- the built site in Chromium
@pytest.fixture(scope="module")
def site_server():
    """The built site over http on 127.0.0.1: yields its base address."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the site has not been built ({SITE} has no index.html): python tools/build_site.py")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log in the test output
        pass


@pytest.fixture(scope="module")
def site_page(site_server):
    playwright_sync = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(NO_CHROMIUM)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            local = site_server.replace("http://", "")
            # offline: anything not served by the test server (MathJax, CDN scripts, badge images) is refused
            page.route("**/*", lambda route: route.continue_() if local in route.request.url else route.abort())
            yield page
        finally:
            browser.close()


def test_home_page_lists_every_notebook(site_page, site_server):
    site_page.goto(f"{site_server}/index.html", wait_until="load")
    screenshot(site_page, "site_home")
    assert "Generative Adversarial Networks" in site_page.title()
    hrefs = site_page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    listed = {Path(h.split("#")[0]).stem for h in hrefs if h.split("#")[0].startswith("solutions/")}
    expected = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    assert expected <= listed, f"the home page does not link {sorted(expected - listed)}"


def test_a_notebook_page_shows_its_figures_and_launch_badges(site_page, site_server):
    if not (SITE / FIGURE_PAGE).is_file():
        pytest.fail(f"{FIGURE_PAGE} is missing from the built site")
    site_page.goto(f"{site_server}/{FIGURE_PAGE}", wait_until="load")
    screenshot(site_page, f"site_{Path(FIGURE_PAGE).stem}_top")        # title and launch badges
    figure = site_page.locator(".cell_output img").first
    figure.wait_for(state="attached")
    figure.scroll_into_view_if_needed()
    site_page.wait_for_function(
        "() => [...document.querySelectorAll('.cell_output img')].some(i => i.complete && i.naturalWidth > 0)")
    screenshot(site_page, f"site_{Path(FIGURE_PAGE).stem}")
    widths = site_page.eval_on_selector_all(".cell_output img", "els => els.map(e => e.naturalWidth)")
    assert widths and max(widths) > 0, f"{FIGURE_PAGE}: no figure output was displayed ({widths})"
    badges = site_page.eval_on_selector_all(".course-launch-badges a", "els => els.map(e => e.href)")
    exercise = f"notebooks/{Path(FIGURE_PAGE).stem}.ipynb"
    assert any("mybinder.org" in b and exercise in b for b in badges), badges
    assert any("colab.research.google.com" in b and exercise in b for b in badges), badges
