"""The course as a student meets it: JupyterLab in a real (headless) Chromium.

The test starts ``jupyter lab`` on a free loopback port with a token, in a temporary folder holding copies of the
solution notebooks, opens each notebook in JupyterLab, runs it with the menu (Run > Run All Cells), waits until the
kernel is idle, saves it and checks the saved outputs for errors. In the widget notebook it also checks that an
ipywidgets slider rendered (the widget view, not the static fallback), moves the slider with the keyboard and
checks that the plot under it changed. Screenshots go to ``test-artifacts/``.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the ``playwright`` Python
package; no browser is downloaded. Skips with the reason when either is missing. Set ``COURSE_BROWSER`` to the
path of another Chromium-based browser to use that one.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser_support import CHROMIUM_ARGS, NO_CHROMIUM, NO_PLAYWRIGHT, ROOT, find_chromium
from browser_support import screenshot as _save_screenshot

NOTEBOOK_DIR = "solutions"                 # the worked versions: no cell is expected to fail
NOTEBOOKS = ["00_welcome.ipynb", "01_gan_theory.ipynb"]
WIDGET_NOTEBOOK = "01_gan_theory.ipynb"    # holds widgets.divergence_explorer(): sliders 'mean' and 'std'
SERVER_START_S = 90
RUN_ALL_S = int(os.environ.get("COURSE_BROWSER_TIMEOUT", "300"))  # s per notebook: quick budgets, shared CPUs
WIDGET_REDRAW_S = 60

playwright_sync = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)

# JupyterLab user settings for the test server: every cell in the DOM (no virtual scrolling of the notebook),
# start the notebook's kernel without asking, no news or update checks (the machine may be offline).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_root(tmp: Path) -> Path:
    """A temporary server root with copies of the notebooks (kernel name set to this environment's python3)."""
    root = tmp / "root"
    (root / NOTEBOOK_DIR).mkdir(parents=True)
    for name in NOTEBOOKS:
        src = ROOT / NOTEBOOK_DIR / name
        if not src.is_file():
            pytest.fail(f"{NOTEBOOK_DIR}/{name} does not exist; the browser test runs it")
        nb = json.loads(src.read_text(encoding="utf-8"))
        nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                       "language": "python"}
        (root / NOTEBOOK_DIR / name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    for rel, value in LAB_SETTINGS.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab server: yields (base_url, token, root folder, log file)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = _prepare_root(tmp)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    # the repository's course_lib even where the package is not installed (installed or not, it is this code)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update({"COURSE_QUICK": "1", "COURSE_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
                "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
                "IPYTHONDIR": str(tmp / "ipython")})
    for key in ("MPLBACKEND", "TQDM_DISABLE", "COURSE_STATIC_WIDGETS", "COURSE_BUDGET"):
        env.pop(key, None)                 # the kernel should behave as it does for a student (inline figures)
    log_path = tmp / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
           "--ServerApp.allow_remote_access=False", "--ServerApp.terminals_enabled=False",
           "--LabApp.news_url=", "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")         # CI containers run as root
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s:\n"
                            f"{log_path.read_text(errors='replace')}")
            time.sleep(0.5)
        yield base, token, root, log_path
    finally:
        proc.terminate()                   # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open_notebook(browser, lab, name):
    base, token, _, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/{NOTEBOOK_DIR}/{name}?token={token}&reset")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
    deadline = time.monotonic() + 120
    while not page.evaluate(KERNEL_READY):
        dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        if dialog.count():                 # e.g. "Select Kernel": take the proposed one, as a student would
            dialog.first.click()
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: the kernel did not start within 120 s")
        time.sleep(0.5)
    return page


KERNEL_READY = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel || document.querySelector('.jp-Dialog')) return false;
    const name = panel.querySelector('.jp-KernelName')?.textContent ?? '';
    const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
    return name.includes('Python') && status === 'idle';
}"""


def _run_all(page) -> None:
    """Run > Run All Cells, as a person would, then wait until every code cell has an execution count."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    # Done when no cell is queued or running ([*]) and the kernel is idle, twice in a row one second apart
    # (after an error JupyterLab un-queues the remaining cells, which then show [ ] again).
    done = """() => {
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
        const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status');
        return prompts.some(p => /\\[\\d+\\]/.test(p)) && !prompts.some(p => p.includes('*')) && status === 'idle';
    }"""
    deadline = time.monotonic() + RUN_ALL_S
    while True:
        page.wait_for_function(done, timeout=max(1.0, deadline - time.monotonic()) * 1000, polling=500)
        time.sleep(1.0)
        if page.evaluate(done):
            return


def _save(page, path: Path) -> dict:
    """File > Save Notebook; return the saved notebook as read back from disk."""
    before = path.stat().st_mtime_ns
    page.locator(".lm-MenuBar-item", has_text="File").first.click()
    page.locator('.lm-Menu-item[data-command="docmanager:save"]').click()
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not save {path.name} within 30 s")
        time.sleep(0.2)
    time.sleep(0.5)                        # let the write finish (the contents API writes atomically)
    return json.loads(path.read_text(encoding="utf-8"))


def _errors(nb: dict) -> list[str]:
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def _screenshot(page, name: str) -> Path:
    return _save_screenshot(page, f"browser_{Path(name).stem}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, browser, name):
    _, _, root, log_path = lab
    page = _open_notebook(browser, lab, name)
    try:
        _run_all(page)
        nb = _save(page, root / NOTEBOOK_DIR / name)
        code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code_cells and all(c.get("execution_count") for c in code_cells), (
            f"{name}: not every code cell ran in JupyterLab")
        errors = _errors(nb)
        assert not errors, f"{name} raised in JupyterLab:\n" + "\n".join(errors)
        if name == WIDGET_NOTEBOOK:
            _check_slider_redraws(page, name)
        else:
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.press("Control+End")
            _screenshot(page, name)
    except BaseException:
        _screenshot(page, name.replace(".ipynb", "_failure.ipynb"))   # what the page showed when it failed
        raise
    finally:
        page.close()


def _check_slider_redraws(page, name: str) -> None:
    """The last slider widget rendered (not the static PNG), and moving it changes the figure below it."""
    slider = page.locator(".jupyter-widgets.widget-slider").last
    slider.wait_for(state="attached", timeout=30_000)
    slider.scroll_into_view_if_needed()
    assert slider.is_visible(), f"{name}: the ipywidgets slider did not render"
    # the Explorer whose slider this is: its VBox holds the controls and an Output widget with the figure
    explorer = page.locator(".jupyter-widgets.widget-vbox", has=page.locator(".widget-slider")).last
    image = explorer.locator(".widget-output img, .jupyter-widgets-output-area img").first
    image.wait_for(state="visible", timeout=30_000)
    fallback = page.get_by_text("Interactive version: run this notebook")
    assert fallback.count() == 0, f"{name}: JupyterLab showed the static fallback text instead of the widget"

    first = explorer.locator(".widget-slider").first
    readout = first.locator(".widget-readout")
    value_before, src_before = readout.inner_text(), image.get_attribute("src")
    assert src_before and src_before.startswith("data:image/png"), f"{name}: the widget's figure is not a PNG"
    _screenshot(page, name.replace(".ipynb", "_before.ipynb"))
    handle = first.locator(".noUi-handle").first
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    deadline = time.monotonic() + WIDGET_REDRAW_S
    src_after = src_before
    while time.monotonic() < deadline:
        img = explorer.locator(".widget-output img, .jupyter-widgets-output-area img").first
        if img.count():
            src_after = img.get_attribute("src")
            if src_after and src_after != src_before:
                break
        time.sleep(0.3)
    value_after = readout.inner_text()
    deadline = time.monotonic() + WIDGET_REDRAW_S
    while not page.evaluate(KERNEL_READY) and time.monotonic() < deadline:
        time.sleep(0.3)                    # let the queued redraws finish before the screenshot
    time.sleep(0.5)
    _screenshot(page, name)
    assert value_after != value_before, f"{name}: the slider did not move ({value_before!r} -> {value_after!r})"
    assert src_after != src_before, (f"{name}: moving the slider from {value_before} to {value_after} did not "
                                     f"change the figure within {WIDGET_REDRAW_S} s")
