#!/usr/bin/env python
"""Insert, or bring up to date, the Colab set-up cell as the first code cell of solution notebooks.

The cell's text is ``course_lib.colab.FIRST_CELL`` (its one home): plain Python that, only on Google Colab,
installs the course with pip and enables the widget manager, and elsewhere does nothing. The tool is idempotent:
a notebook that already starts with the current cell is left byte for byte as it is; an older version of the
cell (recognised by its first line, ``course_lib.colab.MARKER``) is replaced, wherever it is, by the current one
placed before the first other code cell. Regenerate the student notebooks afterwards.

Usage:
    python tools/add_colab_cell.py solutions/05_gpu_training.ipynb     # some notebooks
    python tools/add_colab_cell.py --all                               # every solutions/*.ipynb
    python tools/add_colab_cell.py --all --check                       # exit 1 if one is out of date
    python tools/make_student_notebooks.py                             # then regenerate notebooks/
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from course_lib.colab import FIRST_CELL, MARKER  # noqa: E402
from make_student_notebooks import dumps  # noqa: E402

CELL_ID = "colab-setup"


def _text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_colab_cell(cell: dict) -> bool:
    """Whether ``cell`` is a (current or older) Colab set-up cell."""
    return cell.get("cell_type") == "code" and _text(cell).startswith(MARKER)


def colab_cell() -> dict:
    """A fresh code cell holding ``FIRST_CELL``, without outputs."""
    return {"cell_type": "code", "execution_count": None, "id": CELL_ID, "metadata": {}, "outputs": [],
            "source": FIRST_CELL.splitlines(keepends=True)}


def with_colab_cell(nb: dict) -> dict:
    """A copy of notebook ``nb`` whose first code cell is the current Colab cell (other cells unchanged)."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.get("cells", []) if not is_colab_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), len(cells))
    cell = colab_cell()
    if any(c.get("id") == CELL_ID for c in cells):
        raise ValueError(f"another cell already has the id {CELL_ID!r}; rename it")
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < 5:
        del cell["id"]  # cell ids exist from nbformat 4.5 on
    cells.insert(first_code, cell)
    nb["cells"] = cells
    return nb


def update(path: Path, check: bool = False) -> bool:
    """Bring ``path`` up to date (unless ``check``); return whether it was (or would be) changed."""
    text = path.read_text(encoding="utf-8")
    new = dumps(with_colab_cell(json.loads(text)))
    if new == text:
        return False
    if not check:
        path.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks to update")
    p.add_argument("--all", action="store_true", help="every notebook in solutions/")
    p.add_argument("--check", action="store_true", help="only report; exit 1 if a notebook is out of date")
    args = p.parse_args(argv)
    paths = sorted((ROOT / "solutions").glob("*.ipynb")) if args.all else args.notebooks
    if not paths:
        p.error("name the notebooks to update, or pass --all")
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")
    changed = [x for x in paths if update(x, check=args.check)]
    for x in changed:
        print(f"{'out of date' if args.check else 'updated'}: {x}")
    if not changed:
        print(f"{len(paths)} notebook(s) already up to date")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
