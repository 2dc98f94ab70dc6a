"""What the real-browser tests share: Debian's Chromium (no browser is downloaded), its headless flags and the
screenshot folder. Used by tests/test_browser.py (JupyterLab) and tests/test_site.py (the course website)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"        # CI keeps this folder (.github/workflows/ci.yml)

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                 "--disable-sync", "--no-first-run", "--mute-audio"]
NO_CHROMIUM = ("Chromium is not installed: apt-get install -y chromium (Debian/Ubuntu; .ci/run does it), or set "
               "COURSE_BROWSER to a Chromium-based browser")
NO_PLAYWRIGHT = "the playwright package is not installed (python -m pip install -e '.[dev]')"


def find_chromium() -> str | None:
    """The browser to drive: ``COURSE_BROWSER`` if set, else Debian's chromium; None when there is none."""
    candidates = [os.environ.get("COURSE_BROWSER", ""), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                  shutil.which("chromium") or "", shutil.which("chromium-browser") or ""]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def screenshot(page, name: str) -> Path:
    """Save the page's screenshot as ``test-artifacts/<name>.png`` and return the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
