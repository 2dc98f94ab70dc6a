"""The course reads like a course: each solution notebook holds at most 2,500 words of prose (all of them together
at most 20,000), and no notebook names a CPU or GPU model (machines and timings live in benchmarks/ and
INSTRUCTORS.md). The word counts are printed (pytest -s shows them)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NOTEBOOK_BUDGET = 2_500
COURSE_BUDGET = 20_000
# CPU and GPU model names and microarchitectures (whole words); "GPU" and "CPU" themselves are fine.
MACHINE_NAMES = re.compile(
    r"\b(EPYC|Xeon|Ryzen|Threadripper|Zen ?[2-6]|Core i[3579]|Sapphire Rapids|Ice Lake|Skylake|AVX(?:2|-?512)?|AMX|"
    r"T4|V100|A100|A10G?|L4|H100|H200|RTX ?\d{4}|GTX ?\d{3,4}|M[1-4] (?:Pro|Max|Ultra)|Apple M[1-4])\b")


def markdown_words(path: Path) -> int:
    """Words (whitespace-separated) in the markdown cells of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")


def test_word_budget_per_notebook_and_for_the_course():
    counts = {p.stem: markdown_words(p) for p in SOLUTIONS}
    print("\nmarkdown words per solution notebook:")
    for name, n in counts.items():
        print(f"  {name:<40} {n:>6,}")
    print(f"  {'total':<40} {sum(counts.values()):>6,}")
    over = {name: n for name, n in counts.items() if n > NOTEBOOK_BUDGET}
    assert not over, f"over {NOTEBOOK_BUDGET:,} words: {over}; move what a student does not need to the library's " \
                     "docstrings, INSTRUCTORS.md or benchmarks/"
    assert sum(counts.values()) <= COURSE_BUDGET, f"the notebooks hold {sum(counts.values()):,} words together, " \
                                                  f"over {COURSE_BUDGET:,}"


@pytest.mark.parametrize("path", SOLUTIONS + sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_notebook_names_a_cpu_or_gpu_model(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = [(i, m.group(0)) for i, c in enumerate(cells) for m in MACHINE_NAMES.finditer("".join(c["source"]))]
    assert not found, f"{path.name} names machines (cell, name): {found}; such figures belong in benchmarks/"
