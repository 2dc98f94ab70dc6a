"""Every exercise check is tested like code: it must reject plausible wrong answers and accept right ones.

For each exercise of a covered notebook, this file takes the notebook's own cells from ``solutions/``:

* the **answer cells**: the code cells holding ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` blocks between the
  previous check cell and this exercise's check cell; each block is replaced by a candidate answer;
* the **check cell**: the code cell tagged ``exercise-check`` that closes the exercise;
* a **set-up**: the notebook's first code cell after the Colab cell (imports, seeding), plus the notebook cells named in the answer
  file (found by a piece of their text, so that they follow the notebook when cells move), plus extra code.

Each candidate runs in a fresh namespace. A **wrong** answer must make the check cell raise ``AssertionError``
whose message holds the listed key words (the hint the student reads); a **right** answer, written differently
from the solution, must pass. The solution itself must pass too. The candidates live in
``tests/exercise_answers/<notebook stem>.py`` as small code strings (see ``exercise_answers/__init__.py``).

Covered notebooks: those with an answer file (``COVERED`` below). A notebook with an exercise check and no answer
file fails ``test_every_notebook_with_exercises_is_covered``.
"""
from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_student_notebooks as msn  # noqa: E402
from course_lib import colab  # noqa: E402

# A notebook is covered when its answer file exists; every notebook with an exercise check must be (tested below).
COVERED = tuple(sorted(p.stem[2:] for p in (Path(__file__).resolve().parent / "exercise_answers").glob("nb*.py")))
NOT_YET_COVERED = tuple(sorted({p.stem for p in (ROOT / "solutions").glob("*.ipynb")} - set(COVERED)))
EXERCISE_HEADING = re.compile(r"^#+\s*Exercise\s+(\d+)\b", re.MULTILINE)


@dataclass
class Exercise:
    """One exercise of a solution notebook: its name, answer cells, check cell and the cells before it."""

    notebook: str
    name: str                   # "Exercise 1", from the nearest markdown heading above the check
    answer_cells: list[int]     # code cells with BEGIN/END SOLUTION blocks
    check_cell: int
    cells: list[dict]           # all cells of the notebook

    def source(self, i: int) -> str:
        return msn._source(self.cells[i])


def parse_exercises(path: Path) -> list[Exercise]:
    """The exercises of a solution notebook, in order (one per ``exercise-check`` cell)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out, pending, heading = [], [], None
    for i, cell in enumerate(cells):
        text = msn._source(cell)
        if cell["cell_type"] == "markdown":
            m = EXERCISE_HEADING.search(text)
            if m:
                heading = f"Exercise {m.group(1)}"
            continue
        if any(msn.BEGIN.match(line) for line in text.splitlines()):
            pending.append(i)
        if "exercise-check" in cell.get("metadata", {}).get("tags", []):
            assert heading, f"{path.name} cell {i}: a check cell without an 'Exercise N' heading above it"
            out.append(Exercise(path.stem, heading, pending, i, cells))
            pending, heading = [], None
    return out


def fill(text: str, answers: list[str]) -> str:
    """``text`` with its BEGIN/END SOLUTION blocks replaced, in order, by ``answers`` (indented like the block)."""
    out, inside, answers = [], False, list(answers)
    for line in text.splitlines():
        m = msn.BEGIN.match(line)
        if m and not inside:
            inside = True
            indent = m.group(1)
            code = answers.pop(0).strip("\n").splitlines()
            out += [indent + c if c.strip() else c for c in _dedent(code)]
        elif msn.END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _dedent(lines: list[str]) -> list[str]:
    import textwrap
    return textwrap.dedent("\n".join(lines)).splitlines()


def load_spec(stem: str) -> dict:
    return importlib.import_module(f"exercise_answers.{_module_name(stem)}").EXERCISES


def _module_name(stem: str) -> str:
    return "nb" + stem  # module names cannot start with a digit: "00_welcome" -> "nb00_welcome"


sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_candidate(ex: Exercise, spec: dict, answer: str | list[str] | None) -> tuple[dict, BaseException | None]:
    """Run set-up, answer cells (with ``answer`` in their blocks; None keeps the solution) and the check cell in a
    fresh namespace. Returns (namespace, exception raised by the check cell or None). An exception raised before
    the check cell (in the set-up or the answer) fails the test: the candidate must be one a student could run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns: dict = {"__name__": "__exercise__"}
    first_code = next(i for i, c in enumerate(ex.cells) if c["cell_type"] == "code"   # the imports (after the
                      and msn._source(c) != colab.FIRST_CELL)                          # Colab set-up cell)
    setup = [first_code] + [i for i, c in enumerate(ex.cells[:ex.check_cell]) if c["cell_type"] == "code"
                            and i != first_code and any(key in msn._source(c) for key in spec.get("cells", ()))]
    try:
        for i in setup:
            exec(compile(ex.source(i), f"<{ex.notebook} cell {i}>", "exec"), ns)
        if spec.get("extra"):
            exec(compile(spec["extra"], f"<{ex.notebook} {ex.name} extra set-up>", "exec"), ns)
        answers = [answer] if isinstance(answer, str) else answer
        for i in ex.answer_cells:
            text = ex.source(i)
            if answers is not None:
                k = sum(1 for line in text.splitlines() if msn.BEGIN.match(line))
                text, answers = fill(text, answers[:k]), answers[k:]
            exec(compile(text, f"<{ex.notebook} cell {i}: answer>", "exec"), ns)
        assert not answers, f"{ex.name}: {len(answers)} answer blocks left over (the cells have fewer blocks)"
        try:
            exec(compile(ex.source(ex.check_cell), f"<{ex.notebook} cell {ex.check_cell}: check>", "exec"), ns)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which judges it
            return ns, exc
        return ns, None
    finally:
        plt.close("all")


def _cases():
    for stem in COVERED:
        exercises = parse_exercises(ROOT / "solutions" / f"{stem}.ipynb")
        spec = load_spec(stem)
        for ex in exercises:
            s = spec.get(ex.name, {})
            yield pytest.param(ex, s, "solution", None, (), id=f"{stem}-{ex.name}-solution")
            for k, w in enumerate(s.get("wrong", ())):
                yield pytest.param(ex, s, "wrong", w["answer"], w["hint"], id=f"{stem}-{ex.name}-wrong{k + 1}")
            for k, r in enumerate(s.get("right", ())):
                yield pytest.param(ex, s, "right", r, (), id=f"{stem}-{ex.name}-right{k + 1}")


@pytest.fixture(autouse=True)
def _quick_budget(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.delenv("COURSE_BUDGET", raising=False)
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)
    torch.set_num_threads(before)


@pytest.mark.parametrize("ex, spec, kind, answer, hint", list(_cases()))
def test_check(ex, spec, kind, answer, hint):
    _, exc = run_candidate(ex, spec, answer)
    if kind in ("solution", "right"):
        assert exc is None, f"{ex.notebook} {ex.name}: the check rejects a right answer: {exc!r}\n{answer}"
        return
    assert exc is not None, f"{ex.notebook} {ex.name}: the check ACCEPTS this wrong answer:\n{answer}"
    assert isinstance(exc, AssertionError), (
        f"{ex.notebook} {ex.name}: the check fails with {type(exc).__name__}: {exc}, not with a hint "
        f"(AssertionError) for this wrong answer:\n{answer}")
    msg = str(exc).lower()
    missing = [w for w in hint if w.lower() not in msg]
    assert not missing, f"{ex.notebook} {ex.name}: the hint {str(exc)!r} lacks {missing}"


@pytest.mark.parametrize("stem", sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb")))
def test_every_notebook_with_exercises_is_covered(stem):
    exercises = parse_exercises(ROOT / "solutions" / f"{stem}.ipynb")
    assert not exercises or stem in COVERED, (
        f"solutions/{stem}.ipynb has {len(exercises)} exercise checks but no answer file "
        f"tests/exercise_answers/{_module_name(stem)}.py: write its wrong and right answers")


@pytest.mark.parametrize("stem", COVERED)
def test_every_exercise_has_two_wrong_and_one_right_answer(stem):
    exercises = parse_exercises(ROOT / "solutions" / f"{stem}.ipynb")
    spec = load_spec(stem)
    names = [ex.name for ex in exercises]
    assert len(set(names)) == len(names), f"{stem}: two check cells under one heading: {names}"
    assert set(spec) == set(names), f"{stem}: answers for {sorted(spec)}, exercises {names}"
    for ex in exercises:
        s = spec[ex.name]
        assert len(s.get("wrong", ())) >= 2, f"{stem} {ex.name}: needs at least 2 wrong answers"
        assert len(s.get("right", ())) >= 1, f"{stem} {ex.name}: needs at least 1 right answer"
        assert all(w["hint"] for w in s["wrong"]), f"{stem} {ex.name}: every wrong answer names hint key words"


def test_fill_replaces_blocks_in_order():
    text = "def f(x):\n    # BEGIN SOLUTION\n    return 0\n    # END SOLUTION\n# BEGIN SOLUTION\ny = 0\n# END SOLUTION"
    assert fill(text, ["return x + 1", "y = f(1)"]) == "def f(x):\n    return x + 1\ny = f(1)"
