#!/usr/bin/env python
"""Generate the student notebooks in notebooks/ from the solution notebooks in solutions/.

The solutions are the single source of truth. In a solution notebook:

* code between a line ``# BEGIN SOLUTION`` and a line ``# END SOLUTION`` is the answer: the student version
  replaces it with ``# YOUR CODE HERE`` and ``raise NotImplementedError(...)``, and tags the cell
  ``raises-exception`` (nbval then accepts the error, and the notebook runs on);
* a code cell tagged ``exercise-check`` checks an answer: the student version tags it ``raises-exception`` too;
* a markdown cell tagged ``solution`` is a written answer: the student version shows a prompt instead.

Outputs and execution counts are removed from both versions.

Usage:
    python tools/make_student_notebooks.py            # (re)write notebooks/ from solutions/
    python tools/make_student_notebooks.py --check    # exit 1 if notebooks/ is out of date (CI)
    python tools/make_student_notebooks.py --strip    # also strip outputs from solutions/ in place
    python tools/make_student_notebooks.py 01_gan_theory.ipynb   # only the notebooks named (file names)
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
STUDENT_PROMPT = "*Write your answer here (double-click to edit). The worked answer is in `solutions/`.*"


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def _add_tag(cell: dict, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def strip_cell(cell: dict) -> dict:
    """Remove outputs and execution counts (and volatile metadata) from a cell, in place."""
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    meta = cell.get("metadata", {})
    for key in ("execution", "collapsed", "scrolled", "jp-MarkdownHeadingCollapsed"):
        meta.pop(key, None)
    return cell


def strip_notebook(nb: dict) -> dict:
    """A copy of ``nb`` without outputs, execution counts or widget state."""
    nb = copy.deepcopy(nb)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        strip_cell(cell)
    return nb


def blank_solution(text: str, where: str) -> tuple[str, int]:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block; return (new text, blocks replaced)."""
    out, inside, n, lines = [], False, 0, text.splitlines()
    for line in lines:
        m = BEGIN.match(line)
        if m and not inside:
            inside, n = True, n + 1
            indent = m.group(1)
            out += [f"{indent}# YOUR CODE HERE",
                    f'{indent}raise NotImplementedError("Exercise not solved yet: replace this line with your answer")']
            continue
        if END.match(line):
            if not inside:
                raise ValueError(f"{where}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '# BEGIN SOLUTION' without '# END SOLUTION'")
    return "\n".join(out), n


def make_student(nb: dict, name: str = "notebook") -> dict:
    """The student version of solution notebook ``nb`` (a dict as read from .ipynb JSON)."""
    nb = strip_notebook(nb)
    for i, cell in enumerate(nb.get("cells", [])):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code":
            text, n = blank_solution(_source(cell), f"{name}, cell {i}")
            if n:
                _set_source(cell, text)
                _add_tag(cell, "raises-exception")
            if "exercise-check" in tags:
                _add_tag(cell, "raises-exception")
        elif cell.get("cell_type") == "markdown" and "solution" in tags:
            _set_source(cell, STUDENT_PROMPT)
    return nb


def dumps(nb: dict) -> str:
    """Serialise like Jupyter does (indent 1, keys sorted, trailing newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def expected_outputs(solutions: Path = ROOT / "solutions") -> dict[str, str]:
    """File name -> the student notebook text that solutions/ implies."""
    result = {}
    for path in sorted(solutions.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        result[path.name] = dumps(make_student(nb, path.name))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date")
    p.add_argument("--strip", action="store_true", help="also strip outputs from solutions/ in place")
    p.add_argument("names", nargs="*", help="only these notebooks (file names in solutions/); default: all")
    args = p.parse_args(argv)
    notebooks = ROOT / "notebooks"
    unknown = [n for n in args.names if not (ROOT / "solutions" / n).is_file()]
    if unknown:
        p.error(f"no solution notebook {', '.join(unknown)} in solutions/; pass file names such as "
                f"01_gan_theory.ipynb")
    chosen = set(args.names)
    if args.strip:
        for path in sorted((ROOT / "solutions").glob("*.ipynb")):
            if chosen and path.name not in chosen:
                continue
            nb = json.loads(path.read_text(encoding="utf-8"))
            text = dumps(strip_notebook(nb))
            if path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"stripped {path.relative_to(ROOT)}")
    expected = {n: text for n, text in expected_outputs().items() if not chosen or n in chosen}
    stale = [n for n, text in expected.items()
             if not (notebooks / n).is_file() or (notebooks / n).read_text(encoding="utf-8") != text]
    extra = [] if chosen else sorted(p.name for p in notebooks.glob("*.ipynb") if p.name not in expected)
    if args.check:
        for n in stale:
            print(f"notebooks/{n} is out of date with solutions/{n}")
        for n in extra:
            print(f"notebooks/{n} has no solution notebook in solutions/")
        if stale or extra:
            print("run: python tools/make_student_notebooks.py")
            return 1
        print(f"{len(expected)} student notebooks are up to date")
        return 0
    notebooks.mkdir(exist_ok=True)
    for n in stale:
        (notebooks / n).write_text(expected[n], encoding="utf-8")
        print(f"wrote notebooks/{n}")
    for n in extra:
        print(f"warning: notebooks/{n} has no solution notebook (left alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
