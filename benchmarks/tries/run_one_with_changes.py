"""One run of ``benchmarks/recipes.py``'s ``run_one`` (the course recipe, judged as the benchmark judges it),
with changes to the recipe and no time limit; prints the row and appends it to a JSON-lines file.

    python benchmarks/tries/run_one_with_changes.py ring8 4 '{"r1_gamma": 0.3, "steps": 2000}' rows.jsonl

One torch thread, as the benchmark; ``cpu_s`` is the CPU time of training only. The rows of
``zen3_reruns.jsonl`` from 2026-12-03 (third session) come from the same ``run_one`` call, made by a throwaway
copy of this script (two runs at once).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
import recipes as bench  # noqa: E402


def main(data: str, seed: int, changes: dict, out: Path) -> dict:
    torch.set_num_threads(1)
    bench.RECIPES[data] = {**bench.RECIPES[data], **changes}
    r = bench.run_one(data, "course", seed, float("inf"))
    row = {"data": data, "seed": seed, "changes": changes, "steps": r["steps"], "cpu_s": r["cpu_seconds"],
           "modes": r["modes"], "high_quality": round(100 * r["high_quality"], 2), "generator": "EMA",
           "judge": "run_one (2,500 samples, 3 std, >= 20 per mode)", "machine": bench.machine()["cpu"]}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), Path(sys.argv[4]))))
