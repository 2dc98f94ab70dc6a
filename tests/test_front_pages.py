"""The pages a reader meets first: the README as the course's front page (short, the quick start on its first
screen), INSTRUCTORS.md, and the benchmark pages (indexed, each regenerated exactly from its JSON, no diary)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
README = ROOT / "README.md"
MAX_WORDS = 1500
FIRST_SCREEN = 40  # lines
QUICK_START = ('pip install -e ".[dev]"', "python -m course_lib train --data ring8 --out runs/ring8",
               "jupyter lab notebooks/00_welcome.ipynb", "pytest")
# Words of a work log, not of a product page: work-item numbers and sessions.
DIARY = re.compile(r"issue [0-9]|bug [0-9]|section [0-9]|this session|last session|helper [A-Z]\b", re.I)
LINK = re.compile(r"\]\((?!https?://|#)([^)\s#]+)")


def _front_pages() -> list[Path]:
    return [README, ROOT / "INSTRUCTORS.md", *sorted(BENCH.glob("*.md"))]


def test_readme_is_at_most_1500_words():
    words = len(README.read_text(encoding="utf-8").split())  # what `wc -w` counts
    assert words <= MAX_WORDS, f"README.md has {words} words; keep the front page at most {MAX_WORDS}"


def test_readme_quick_start_is_on_the_first_screen():
    lines = README.read_text(encoding="utf-8").splitlines()
    heading = next((i for i, line in enumerate(lines) if line.strip() == "## Quick start"), None)
    assert heading is not None, "README.md has no '## Quick start' section"
    fences = [i for i, line in enumerate(lines) if line.startswith("```") and i > heading][:2]
    assert len(fences) == 2 and fences[1] < FIRST_SCREEN, (
        f"README.md's quick start (line {heading + 1}) must end within its first {FIRST_SCREEN} lines")
    block = "\n".join(lines[fences[0]:fences[1]])
    for command in QUICK_START:
        assert command in block, f"README.md's quick start lacks {command!r}"


def test_readme_first_screen_shows_the_picture_and_the_binder_and_colab_badges():
    first = "\n".join(README.read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN])
    assert "](figures/fashion_samples.png)" in first and "python tools/make_figures.py" in first
    assert "mybinder.org/badge_logo.svg" in first and "colab-badge.svg" in first


def test_readme_names_the_website_and_the_shipped_models():
    text = README.read_text(encoding="utf-8")
    for needle in ("python tools/build_site.py [--budget quick|cpu|gpu]", "build/site/",
                   "python -m course_lib pretrained", "--checkpoint pretrained:fashion-dcgan",
                   "OMP_WAIT_POLICY", "COURSE_THREADS"):
        assert needle in text, f"README.md should name {needle!r}"
    assert "not met" not in text, "benchmark status belongs in benchmarks/, not on the front page"


def test_benchmark_index_links_every_results_page():
    index = (BENCH / "README.md").read_text(encoding="utf-8")
    linked = set(LINK.findall(index))
    missing = [p.name for p in sorted(BENCH.glob("RESULTS-*.md")) if p.name not in linked]
    assert not missing, f"benchmarks/README.md does not link {missing}"


@pytest.mark.parametrize("page", _front_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_have_no_work_log_words(page):
    hits = [f"line {n}: {line.strip()[:80]}" for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
            if DIARY.search(line)]
    assert not hits, f"{page.name} names work items or sessions: {hits}"


def test_no_diary_files_in_benchmarks():
    assert not (BENCH / "tries").exists(), "benchmarks/tries/ is an experiment log: keep findings on the report page"
    assert not list(BENCH.glob("*_notes.md")), "benchmark notes belong on the report page's 'What was tried' list"


def _regenerated(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fashion_report_is_regenerated_exactly_from_its_json(tmp_path):
    shutil.copy(BENCH / "results-fashion.json", tmp_path)
    _regenerated("fashion.py", "--report-only", "--out-dir", str(tmp_path))
    assert (tmp_path / "RESULTS-fashion.md").read_text() == (BENCH / "RESULTS-fashion.md").read_text()


def test_throughput_report_is_regenerated_exactly_from_its_json(tmp_path):
    for path in BENCH.glob("results-throughput*.json"):
        shutil.copy(path, tmp_path)
    _regenerated("throughput_report.py", str(tmp_path))
    assert (tmp_path / "RESULTS-throughput.md").read_text() == (BENCH / "RESULTS-throughput.md").read_text()


def test_throughput_report_reads_the_ladder_of_a_new_run_and_names_its_device():
    sys.path.insert(0, str(BENCH))
    import throughput_report

    machine = {"device": "cuda: NVIDIA X", "cpu": "Some CPU", "torch_threads": 8, "started": "2027-01-02 03:04:05"}
    result = {"size": 64, "steps": 20, "course_images_per_s": 2000.0, "plain_images_per_s": 1900.0,
              "ratio_course_over_plain": 1.053, "ratio_median_of_pairs": 1.05, "ratio_per_cpu_second": 1.1,
              "ladder": [{"rung": "fp32 eager", "images_per_s": 2000.0, "speedup": 1.0, "peak_mem_bytes": 2**30,
                          "mfu": 0.12, "status": "measured", "note": ""}]}
    assert throughput_report._where(machine) == "cuda: NVIDIA X (host Some CPU)"
    rung = throughput_report._ladder(result)[0]
    assert rung["rung"] == "fp32 eager" and rung["mfu"] == 0.12 and rung["peak_mem_bytes"] == 2**30
