"""tools/check_repeatability.py: the notebook repeatability check and the nbval flakiness check,
exercised on tiny notebooks and test files made here (the course notebooks themselves take a full run of the
tool).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_repeatability as cr  # noqa: E402


def write_notebook(path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags} if tags else {}) for src, tags in cells]
    nbformat.write(nb, path)
    return path


REPEATABLE = [
    ("import os, random, time\nrandom.seed(0)\nprint('draw', random.random())", []),
    ("print('clock', time.time())", ["timing"]),                                 # a timing cell: ignored
    ("t0 = time.perf_counter()\nprint(f'modes 8/8, took {time.perf_counter() - t0 + 1:.6f} s')", []),
    ("print(os.environ['COURSE_QUICK'], os.environ['COURSE_OFFLINE'], os.environ['MPLBACKEND'],\n"
     "      os.environ['TQDM_DISABLE'])\nimport course_lib\nprint(course_lib.__name__)", []),
    ("class Thing:\n    pass\nThing()", []),                                     # repr with an address
    ("[1, 2, 3]", []),
]


def test_clean_text_masks_timings_and_addresses_but_keeps_numbers():
    assert cr.clean_text("step 200: d=1.2 (45 ms/step), 3.1 it/s\r\n") == ["step 200: d=1.2 (<time>/step), <time>"]
    assert cr.clean_text('{"train_seconds": 4.72, "modes": 8}') == ['{"<time>, "modes": 8}']
    assert cr.clean_text("bar 10%\rbar 100% [00:01<00:00]") == ["bar 100% [<time><<time>]"]
    assert cr.clean_text("<Thing at 0x7f3a2b1c9d00>") == ["<Thing at 0x…>"]
    assert cr.clean_text("high-quality 0.9312, modes 8") == ["high-quality 0.9312, modes 8"]


def test_repeatable_notebook_passes_and_a_changing_one_fails_with_a_diff(tmp_path, capsys):
    good = write_notebook(tmp_path / "good.ipynb", REPEATABLE)
    assert cr.main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "SAME" in out and "5 cell(s) with text output identical over 2 runs" in out

    bad = write_notebook(tmp_path / "bad.ipynb", [
        ("print('fixed line')", []),
        ("import time\nprint('metric', time.time_ns() % 1000003)", []),  # changes from run to run
    ])
    assert cr.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "bad.ipynb cell 1 (run 1)" in out
    assert "-metric " in out and "+metric " in out and "fixed line" not in out


def test_a_notebook_that_fails_to_run_exits_2(tmp_path, capsys):
    broken = write_notebook(tmp_path / "broken.ipynb", [("raise ValueError('boom')", [])])
    assert cr.main([str(broken)]) == 2
    assert "ValueError" in capsys.readouterr().out


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cr.main([str(tmp_path / "missing.ipynb")])
    assert exc.value.code == 2 and "no such notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cr.main(["--runs", "1", str(tmp_path / "x.ipynb")])


def test_nbval_runs_reports_failing_and_flaky_tests(tmp_path, capsys):
    (tmp_path / "test_tiny.py").write_text(
        "from pathlib import Path\n"
        "def test_sometimes():\n"
        "    p = Path(__file__).with_name('count.txt')\n"
        "    n = int(p.read_text()) if p.exists() else 0\n"
        "    p.write_text(str(n + 1))\n"
        "    assert n != 1  # fails in the second run only\n"
        "def test_always_fine():\n"
        "    pass\n")
    assert cr.main(["--nbval-runs", "2", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "run 1/2: 2 passed" in out and "run 2/2: 1 failed, 1 passed" in out
    assert "FLAKY (1)" in out and "test_sometimes: failed in runs [2]" in out
    assert "FAILING" not in out

    (tmp_path / "count.txt").write_text("5")
    assert cr.main(["--nbval-runs", "1", str(tmp_path)]) == 0
    assert "OK: no failures in 1 runs" in capsys.readouterr().out
