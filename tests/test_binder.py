"""What can be checked of the Binder set-up without building it: environment.yml and postBuild as repo2docker reads
them, and the README's Binder badge and per-notebook links."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")
yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read environment.yml (installed with jupyterlab)")

ROOT = Path(__file__).resolve().parents[1]
BINDER_REPO = "OWNER/gan-course"      # placeholder GitHub owner/name: change it here and in README.md together
BINDER_BRANCH = "main"
PIP_TO_CONDA = {"torch": "pytorch"}   # pip name -> conda-forge name, where they differ
LINK = re.compile(r"https://mybinder\.org/v2/gh/(?P<repo>[^/\s)]+/[^/\s)]+)/(?P<ref>[^?\s)]+)"
                  r"(?:\?(?P<query>[^\s)]*))?")


def _name(requirement: str) -> str:
    """'scikit-learn>=1.3' or 'pytorch >=2.6 cpu*' -> 'scikit-learn' / 'pytorch' (lower case)."""
    return re.match(r"\s*([A-Za-z0-9_.\-]+)", requirement).group(1).lower()


def _lower_bound(requirement: str) -> str | None:
    m = re.search(r">=\s*([0-9][0-9.]*)", requirement)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def env():
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _conda_deps(env) -> list[str]:
    return [d for d in env["dependencies"] if isinstance(d, str)]


def _pip_deps(env) -> list[str]:
    lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [line for pip in lists for line in pip]


def test_repo2docker_reads_the_root_files():
    # a binder/ (or .binder/) folder, if present, is the only place repo2docker looks
    for folder in ("binder", ".binder"):
        assert not (ROOT / folder).exists(), f"{folder}/ would hide the root environment.yml and postBuild from Binder"
    assert (ROOT / "environment.yml").is_file()


def test_environment_uses_conda_forge_and_pins_python(env, project):
    assert env["channels"] == ["conda-forge"], "conda-forge only (the pytorch channel stopped after 2.5)"
    pythons = [d for d in _conda_deps(env) if _name(d) == "python"]
    assert len(pythons) == 1
    # repo2docker reads the version with python\s*=+\s*([\d.]*); an unpinned python gets an old default
    m = re.fullmatch(r"python\s*=+\s*(3\.(\d+))", pythons[0])
    assert m, f"pin python as python=3.X, got {pythons[0]!r}"
    minimum = re.search(r">=\s*3\.(\d+)", project["requires-python"]).group(1)
    assert int(m.group(2)) >= int(minimum), f"python={m.group(1)} does not satisfy {project['requires-python']}"


def test_pytorch_is_the_cpu_build(env):
    torch_specs = [d for d in _conda_deps(env) if _name(d) == "pytorch"]
    assert len(torch_specs) == 1, "environment.yml must list pytorch (the conda name of torch) once"
    parts = torch_specs[0].split("#")[0].split()
    build = parts[-1] if len(parts) == 3 else torch_specs[0].split("=")[-1]
    assert build.startswith("cpu"), f"Binder has no GPU: ask for the CPU build (pytorch=*=cpu*), got {torch_specs[0]!r}"
    assert not any(_name(d) in {"pytorch-cuda", "cudatoolkit", "cuda-version"} for d in _conda_deps(env))


def test_environment_lists_every_runtime_dependency(env, project):
    conda = {_name(d): d for d in _conda_deps(env)}
    for requirement in project["dependencies"]:
        pip_name = _name(requirement)
        conda_name = PIP_TO_CONDA.get(pip_name, pip_name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject.toml: {requirement})"
        want = _lower_bound(requirement)
        if want:
            assert _lower_bound(conda[conda_name]) == want, (
                f"environment.yml has {conda[conda_name]!r}, pyproject.toml {requirement!r}: keep the bounds equal")
    for needed in ("pip", "jupyterlab", "ipykernel"):
        assert needed in conda, f"environment.yml lacks {needed}"


def test_environment_installs_the_package(env):
    pip = [line.strip() for line in _pip_deps(env)]
    assert any(re.fullmatch(r"(-e\s+)?\.(\[[\w,]+\])?", line) for line in pip), (
        "environment.yml's pip section must install this folder (- -e .)")


def test_post_build_installs_the_package_if_needed():
    post = ROOT / "postBuild"
    text = post.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -e", text, re.M), "postBuild must stop at the first failing command (set -e)"
    assert "pip install" in text and "-e ." in text
    assert post.stat().st_mode & 0o111, "postBuild must be executable (chmod +x postBuild)"
    r = subprocess.run(["bash", "-n", str(post)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _readme_links() -> list[re.Match]:
    return list(LINK.finditer((ROOT / "README.md").read_text(encoding="utf-8")))


def test_readme_has_a_binder_badge_that_opens_the_welcome_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Run it on Binder" in readme
    badge = re.search(r"\[!\[[^\]]*\]\(https://mybinder\.org/badge_logo\.svg\)\]\((?P<url>[^)\s]+)\)", readme)
    assert badge, "README.md: no mybinder.org badge ([![Binder](https://mybinder.org/badge_logo.svg)](link))"
    assert badge["url"] == (f"https://mybinder.org/v2/gh/{BINDER_REPO}/{BINDER_BRANCH}"
                            f"?urlpath=lab/tree/notebooks/00_welcome.ipynb")


def test_every_binder_link_opens_an_existing_notebook_in_jupyterlab():
    links = _readme_links()
    assert links
    for link in links:
        where = link.group(0)
        assert link["repo"] == BINDER_REPO and link["ref"] == BINDER_BRANCH, (
            f"{where}: use {BINDER_REPO} on {BINDER_BRANCH} (BINDER_REPO in tests/test_binder.py and README.md "
            f"change together)")
        m = re.fullmatch(r"urlpath=lab/tree/(?P<path>[\w./-]+\.ipynb)", link["query"] or "")
        assert m, f"{where}: open JupyterLab on a notebook with ?urlpath=lab/tree/<path>.ipynb"
        assert (ROOT / m["path"]).is_file(), f"{where}: {m['path']} does not exist"


def test_every_notebook_has_its_binder_link():
    linked = {re.search(r"urlpath=lab/tree/([\w./-]+)", link.group(0)).group(1) for link in _readme_links()}
    for folder in ("notebooks", "solutions"):
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            rel = f"{folder}/{nb.name}"
            assert rel in linked, f"README.md's Binder section has no link to {rel}"
