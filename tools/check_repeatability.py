#!/usr/bin/env python
"""Check that notebooks print the same thing every time they run, and that the nbval run is not flaky.

Repeatability: each notebook is executed twice with nbclient in quick mode (``COURSE_QUICK=1``,
``COURSE_OFFLINE=1``, ``TQDM_DISABLE=1``, ``MPLBACKEND=Agg``, ``PYTHONHASHSEED=0``), and the text outputs
(stdout streams, text/plain results and displays, error names) are compared cell by cell. Cells tagged
``timing`` are ignored, and so are timings inside lines: values such as ``12.3 s``, ``45 ms``, ``3.1 it/s``,
``2 s/it``, ``7 seconds``, ``00:03<00:10`` or ``"train_seconds": 4.7`` are masked (the rest of the line, e.g.
the metrics printed beside them, is still compared), as are object addresses (``at 0x7f...``). Any other
difference is printed as a diff.

Flakiness: ``--nbval-runs N`` runs ``python -m pytest notebooks solutions`` N times and reports every test that
failed in any run, and which of them failed only sometimes.

Usage:
    python tools/check_repeatability.py                          # all solutions/*.ipynb, two runs each
    python tools/check_repeatability.py solutions/02_*.ipynb     # chosen notebooks
    python tools/check_repeatability.py --runs 3 --threads 1 solutions/03_first_gan.ipynb
    python tools/check_repeatability.py --nbval-runs 3           # pytest notebooks solutions, three times

Exit status: 0 all identical (or no failures), 1 a difference (or a failing test), 2 a notebook could not run.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_ENV = {"COURSE_QUICK": "1", "COURSE_OFFLINE": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg",
             "PYTHONHASHSEED": "0"}
DEFAULT_IGNORE_TAGS = ("timing",)
# Timings: a number with a time unit or a rate, a clock such as 00:03 (tqdm), or a value named like a time.
TIMING = re.compile(
    r"\d+(?:\.\d+)?(?:e[-+]?\d+)?\s*(?:s/it|it/s|steps?/s|img/s|images/s|samples/s|ms|µs|us|ns|sec|secs|"
    r"seconds?|min|minutes?|h|hours?|s)\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?\b"
    r"|\b\w*(?:seconds|secs|time|elapsed|duration)\w*(?:[ _-]\w+){0,3}[\"']?\s*[:=]\s*[-+\d.e]+",
    re.IGNORECASE)
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def cell_tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def clean_text(text: str) -> list[str]:
    """The lines of ``text`` with timings and object addresses masked and trailing spaces dropped."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if "\r" in line:  # a progress bar redrawn in place: keep what was shown last
            line = line.rsplit("\r", 1)[-1]
        lines.append(ADDRESS.sub("0x…", TIMING.sub("<time>", line)).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def text_outputs(nb, ignore_tags=DEFAULT_IGNORE_TAGS) -> list[tuple[int, list[str]]]:
    """[(cell index, cleaned text lines)] for every code cell that is not tagged with one of ``ignore_tags``."""
    result = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell_tags(cell) & set(ignore_tags):
            continue
        text = []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream" and out.get("name") == "stdout":
                text.append(out.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                plain = out.get("data", {}).get("text/plain")
                if plain is not None:
                    text.append(plain if isinstance(plain, str) else "".join(plain))
                    text.append("\n")
            elif kind == "error":
                text.append(f"{out.get('ename')}: {out.get('evalue')}\n")
        result.append((i, clean_text("".join(text))))
    return result


def execute(path: Path, timeout: int = 900, kernel: str = "python3", env: dict | None = None):
    """Run the notebook at ``path`` in a fresh kernel (working folder: the notebook's) and return it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:  # the kernel inherits this process's environment
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=False,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def kernel_env(threads: int | None = None) -> dict:
    env = dict(QUICK_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def compare(name: str, runs: list[list[tuple[int, list[str]]]]) -> list[str]:
    """Unified diffs (one string per differing cell) between the first run and each later one."""
    diffs = []
    first = dict(runs[0])
    for r, other in enumerate(runs[1:], start=2):
        for cell, lines in other:
            ref = first.get(cell)
            if ref != lines:
                diff = difflib.unified_diff(ref or [], lines, fromfile=f"{name} cell {cell} (run 1)",
                                            tofile=f"{name} cell {cell} (run {r})", lineterm="")
                diffs.append("\n".join(diff))
    return diffs


def check_notebooks(paths: list[Path], runs: int = 2, timeout: int = 900, kernel: str = "python3",
                    threads: int | None = None, ignore_tags=DEFAULT_IGNORE_TAGS, out=None) -> int:
    """Execute each notebook ``runs`` times and compare; return the exit status (0, 1 or 2)."""
    out = out or sys.stdout
    status = 0
    env = kernel_env(threads)
    for path in paths:
        outputs = []
        for r in range(runs):
            t0 = time.perf_counter()
            try:
                nb = execute(path, timeout, kernel, env)
            except Exception as exc:  # CellExecutionError, timeouts, kernel death
                print(f"ERROR {path}: run {r + 1} failed: {type(exc).__name__}: {str(exc)[:2000]}", file=out)
                status = 2
                break
            outputs.append(text_outputs(nb, ignore_tags))
            print(f"  {path.name}: run {r + 1} took {time.perf_counter() - t0:.1f} s", file=out)
        if len(outputs) < runs:
            continue
        diffs = compare(path.name, outputs)
        compared = sum(1 for _, lines in outputs[0] if lines)
        if diffs:
            status = max(status, 1)
            print(f"DIFFERENT {path}: {len(diffs)} cell(s) printed different text:", file=out)
            for d in diffs:
                print(d, file=out)
        else:
            print(f"SAME {path}: {compared} cell(s) with text output identical over {runs} runs", file=out)
    return status


FAILED_LINE = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
SUMMARY_LINE = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b.*?"
                          r"|no tests ran.*?)(?: =+)?$", re.MULTILINE)


def nbval_runs(n: int, paths: list[str], pytest_args: list[str], out=None) -> int:
    """Run pytest on ``paths`` ``n`` times; report failures per run and the flaky tests. Return 0 or 1."""
    out = out or sys.stdout
    failures: list[set[str]] = []
    env = dict(os.environ, **QUICK_ENV)
    for r in range(1, n + 1):
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", *pytest_args, *paths]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        text = proc.stdout + proc.stderr
        failed = {m.group(2) for m in FAILED_LINE.finditer(text)}
        summary = SUMMARY_LINE.findall(text)
        line = summary[-1] if summary else f"exit status {proc.returncode}"
        print(f"run {r}/{n}: {line} ({time.perf_counter() - t0:.0f} s)", file=out)
        for test in sorted(failed):
            print(f"    failed: {test}", file=out)
        if proc.returncode not in (0, 5) and not failed:  # pytest itself broke (usage error, crash)
            failed = {f"<pytest exit status {proc.returncode}>"}
            print(text[-3000:], file=out)
        failures.append(failed)
    ever = set().union(*failures)
    always = set.intersection(*failures) if failures else set()
    flaky = sorted(ever - always)
    if not ever:
        print(f"OK: no failures in {n} runs", file=out)
        return 0
    if flaky:
        print(f"FLAKY ({len(flaky)}): failed in some runs only:", file=out)
        for test in flaky:
            print(f"    {test}: failed in runs {[i + 1 for i, f in enumerate(failures) if test in f]}", file=out)
    if always:
        print(f"FAILING ({len(always)}): failed in every run: {', '.join(sorted(always))}", file=out)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", help="notebooks to check (default: solutions/*.ipynb); with "
                                                "--nbval-runs, the pytest paths (default: notebooks solutions)")
    p.add_argument("--runs", type=int, default=2, help="executions per notebook to compare")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    p.add_argument("--threads", type=int, help="set OMP_NUM_THREADS / MKL_NUM_THREADS in the kernel")
    p.add_argument("--ignore-tag", action="append", default=list(DEFAULT_IGNORE_TAGS),
                   help="also ignore cells with this tag (repeatable; 'timing' always)")
    p.add_argument("--nbval-runs", type=int, metavar="N",
                   help="instead: run pytest on notebooks/ and solutions/ N times and report failures")
    p.add_argument("--pytest-args", default="", help="extra arguments for pytest with --nbval-runs, one string")
    args = p.parse_args(argv)
    if args.runs < 2 and args.nbval_runs is None:
        p.error("--runs must be at least 2 to compare")
    if args.nbval_runs is not None:
        if args.nbval_runs < 1:
            p.error("--nbval-runs must be at least 1")
        return nbval_runs(args.nbval_runs, args.notebooks or ["notebooks", "solutions"], args.pytest_args.split())
    paths = [Path(n) for n in args.notebooks] or sorted((ROOT / "solutions").glob("*.ipynb"))
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")
    if not paths:
        p.error("no notebooks found")
    return check_notebooks(paths, args.runs, args.timeout, args.kernel, args.threads, args.ignore_tag)


if __name__ == "__main__":
    sys.exit(main())
