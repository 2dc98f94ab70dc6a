"""Google Colab: the README's "Open in Colab" links, the notebooks' first cell (it acts only on Colab), and
tools/add_colab_cell.py (idempotent)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_lib import colab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import add_colab_cell  # noqa: E402
from test_binder import BINDER_REPO  # noqa: E402

COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/(?P<repo>[^/\s)]+/[^/\s)]+)/blob/"
                        r"(?P<branch>[^/\s)]+)/(?P<path>[^\s)]+)")

# Runs FIRST_CELL in a fresh interpreter with pip calls and the widget manager recorded, never executed.
PROBE = textwrap.dedent(r"""
    import json, os, subprocess, sys, types
    from course_lib.colab import FIRST_CELL   # read first, before the stand-ins below replace subprocess
    calls = []
    def record(*args, **kwargs):
        calls.append(["subprocess", [str(a) for a in args[0]]])
        return subprocess.CompletedProcess(args[0], 0)
    subprocess.run = subprocess.check_call = subprocess.call = subprocess.Popen = record
    os.system = lambda cmd: calls.append(["os.system", cmd]) or 0
    if sys.argv[1] != "plain":   # an importable stand-in for Colab's google.colab package
        import tempfile
        root = tempfile.mkdtemp()
        os.makedirs(os.path.join(root, "google", "colab"))
        open(os.path.join(root, "google", "__init__.py"), "w").close()
        open(os.path.join(root, "google", "colab", "__init__.py"), "w").close()
        with open(os.path.join(root, "google", "colab", "output.py"), "w") as f:
            f.write("import builtins\ndef enable_custom_widget_manager():\n    builtins.CALLS.append(['widgets', 'enabled'])\n")
        import builtins
        builtins.CALLS = calls
        sys.path.insert(0, root)
        for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
            del sys.modules[name]
    if sys.argv[1] == "fake-colab":  # as in a Colab kernel: google.colab imported at start-up
        import google.colab
    exec(FIRST_CELL, {})
    print("CALLS=" + json.dumps(calls))
""")


def _run_first_cell(mode: str, **env_changes) -> list:
    import os

    env = {k: v for k, v in os.environ.items() if k != "COLAB_RELEASE_TAG"}
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("CALLS=")][-1]
    return json.loads(line[len("CALLS="):])


def test_the_first_cell_does_nothing_outside_colab():
    assert _run_first_cell("plain") == []


@pytest.mark.parametrize("how", ["fake-colab", "env"])
def test_on_colab_the_first_cell_installs_the_course_and_enables_widgets(how):
    calls = _run_first_cell(how, **({"COLAB_RELEASE_TAG": "release-colab-test"} if how == "env" else {}))
    pip = [c for c in calls if c[0] == "subprocess"]
    assert len(pip) == 1
    cmd = pip[0][1]
    assert cmd[1:4] == ["-m", "pip", "install"] and cmd[-1] == colab.INSTALL_URL
    assert colab.INSTALL_URL.startswith(f"git+https://github.com/{BINDER_REPO}.git")
    assert calls[-1] == ["widgets", "enabled"]


def test_the_first_cell_installs_before_it_imports_course_lib():
    # on Colab it runs before the course is installed: plain Python, and course_lib is imported only by the last
    # line (after the install), so that the CPU-thread rule is applied before any later cell imports torch
    lines = colab.FIRST_CELL.splitlines()
    assert colab.FIRST_CELL.startswith(colab.MARKER)
    assert lines[-1] == "import course_lib"
    assert not any("course_lib" in ln and not ln.lstrip().startswith("#") for ln in lines[:-1])
    assert "torch" not in "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))
    compile(colab.FIRST_CELL, "<cell>", "exec")


def test_in_colab_reads_modules_and_environment():
    assert colab.in_colab(modules={}, environ={}) is False
    assert colab.in_colab(modules={"google.colab": object()}, environ={}) is True
    assert colab.in_colab(modules={}, environ={"COLAB_RELEASE_TAG": "x"}) is True


def test_colab_url_refuses_paths_outside_the_repository():
    assert colab.colab_url("notebooks/05_gpu_training.ipynb").endswith(
        f"/{BINDER_REPO}/blob/main/notebooks/05_gpu_training.ipynb")
    for bad in ("/abs/x.ipynb", "../x.ipynb", "notebooks/x.py"):
        with pytest.raises(ValueError, match="relative path to an .ipynb"):
            colab.colab_url(bad)


# ----------------------------------------------------------------------------- README links

def _readme_links() -> list[re.Match]:
    return list(COLAB_LINK.finditer((ROOT / "README.md").read_text(encoding="utf-8")))


def test_readme_colab_links_point_at_existing_notebooks_of_this_repository():
    links = _readme_links()
    assert links, "README.md has no Colab link"
    for m in links:
        assert m.group("repo") == BINDER_REPO == colab.REPO, f"{m.group(0)}: use {BINDER_REPO}"
        assert m.group("branch") == colab.BRANCH
        assert (ROOT / m.group("path")).is_file(), f"{m.group(0)}: {m.group('path')} does not exist"


def test_readme_has_a_colab_badge_and_a_link_per_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "colab-badge.svg" in readme
    linked = {m.group("path") for m in _readme_links()}
    for folder in ("notebooks", "solutions"):
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            rel = f"{folder}/{nb.name}"
            assert rel in linked, f"README.md has no Colab link to {rel}"


# ----------------------------------------------------------------------------- the tool

def _tiny_notebook() -> dict:
    return {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Title\n"]},
                      {"cell_type": "code", "execution_count": None, "id": "b", "metadata": {}, "outputs": [],
                       "source": ["import torch\n"]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_the_tool_inserts_the_cell_first_among_code_cells_and_is_idempotent(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_tiny_notebook()), encoding="utf-8")
    assert add_colab_cell.main([str(path)]) == 0
    once = path.read_text(encoding="utf-8")
    cells = json.loads(once)["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert "".join(cells[1]["source"]) == colab.FIRST_CELL and cells[1]["outputs"] == []
    assert "".join(cells[2]["source"]) == "import torch\n"
    assert add_colab_cell.main([str(path)]) == 0
    assert path.read_text(encoding="utf-8") == once          # a second run changes nothing
    assert add_colab_cell.main([str(path), "--check"]) == 0


def test_the_tool_replaces_an_older_version_of_the_cell(tmp_path):
    nb = _tiny_notebook()
    nb["cells"].append({"cell_type": "code", "execution_count": 3, "id": "old", "metadata": {}, "outputs": [],
                        "source": [colab.MARKER + " (old)\n", "print('old')\n"]})
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert add_colab_cell.main([str(path), "--check"]) == 1   # out of date: reported, not written
    assert json.loads(path.read_text(encoding="utf-8")) == nb
    add_colab_cell.main([str(path)])
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    texts = ["".join(c["source"]) for c in cells]
    assert texts.count(colab.FIRST_CELL) == 1 and not any("print('old')" in t for t in texts)
    assert texts[1] == colab.FIRST_CELL


def test_the_tool_refuses_a_missing_notebook(tmp_path, capsys):
    with pytest.raises(SystemExit):
        add_colab_cell.main([str(tmp_path / "nope.ipynb")])
    assert "no such notebook" in capsys.readouterr().err


def test_every_notebook_carries_the_current_cell():
    paths = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(paths) == 22
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]) == colab.FIRST_CELL, f"{path}: run tools/add_colab_cell.py --all"
