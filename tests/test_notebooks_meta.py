"""The notebooks are committed clean, and notebooks/ is exactly what tools/make_student_notebooks.py makes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_student_notebooks as msn  # noqa: E402

ALL = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; run python tools/make_student_notebooks.py --strip"


def test_student_notebooks_in_sync():
    expected = msn.expected_outputs()
    assert expected, "solutions/ holds no notebooks"
    for name, text in expected.items():
        student = ROOT / "notebooks" / name
        assert student.is_file(), f"notebooks/{name} missing; run python tools/make_student_notebooks.py"
        assert student.read_text(encoding="utf-8") == text, (
            f"notebooks/{name} differs from what solutions/{name} generates; "
            "run python tools/make_student_notebooks.py")
    extra = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} - set(expected)
    assert not extra, f"student notebooks without a solution: {extra}"


def test_check_mode_exit_code():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_blanking_replaces_solution_and_tags_cell():
    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [1], "execution_count": 3,
         "source": "x = 1\n# BEGIN SOLUTION\ny = x + 1\n# END SOLUTION\nprint(y)"},
        {"cell_type": "code", "metadata": {"tags": ["exercise-check"]}, "outputs": [], "execution_count": None,
         "source": "assert y == 2"},
        {"cell_type": "markdown", "metadata": {"tags": ["solution"]}, "source": "Because..."},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    st = msn.make_student(nb)
    code = "".join(st["cells"][0]["source"])
    assert "y = x + 1" not in code and "NotImplementedError" in code and code.endswith("print(y)")
    assert st["cells"][0]["outputs"] == [] and st["cells"][0]["execution_count"] is None
    assert "raises-exception" in st["cells"][0]["metadata"]["tags"]
    assert "raises-exception" in st["cells"][1]["metadata"]["tags"]
    assert "Because" not in "".join(st["cells"][2]["source"])


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="without"):
        msn.blank_solution("# BEGIN SOLUTION\nx = 1", "nb")
