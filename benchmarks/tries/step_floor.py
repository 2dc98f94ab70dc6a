"""A lower bound on the CPU time of the 2-D recipes' training step, on the machine at hand.

    python benchmarks/tries/step_floor.py [rows.jsonl]

For ``ring8`` and ``grid25`` it builds the course recipe's trainer (``course_lib.recipes.RECIPES``), runs 100
steps, then records every ATen operation of 8 more steps (a ``TorchDispatchMode``: forwards, backwards, the R1
double backward, Adam, the EMA). The floor of one step is what those operations cost with nothing around them:
- each matrix product (``mm``, ``addmm``, ``bmm``), timed alone on tensors of its recorded sizes and strides;
- each view (``t``, ``view``, ``detach``, ...: no data touched) at the cost of ``detach`` on a 16-float tensor;
- each other operation at the cost of the cheaper of an in-place add and a ``zeros_like`` on 16 floats.
Python, autograd's bookkeeping and memory allocation come on top, so the real step costs more. The script also
times the real step (median of five windows of 100 steps) and prints both, times the recipe's step count, beside
the benchmark's budget (30 s for ring8, 60 s for grid25). One torch thread, as the benchmark.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
import recipes as bench  # noqa: E402
from course_lib.config import TrainConfig  # noqa: E402
from course_lib.train import GANTrainer  # noqa: E402

PRODUCTS = {"mm", "addmm", "bmm"}


class Recorder(TorchDispatchMode):
    """Counts ATen operations (and, of them, views); keeps the sizes and strides of every product's inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()
        self.views = 0
        self.products: list[tuple[str, tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        self.views += func.is_view
        if name in PRODUCTS:
            self.products.append((name, tuple((tuple(a.shape), tuple(a.stride())) for a in args
                                              if isinstance(a, torch.Tensor))))
        return func(*args, **(kwargs or {}))


def per_call_us(f, n: int) -> float:
    """Median over five rounds of the CPU time of ``n`` calls of ``f``, per call, in microseconds."""
    for _ in range(min(n, 200)):
        f()
    rounds = []
    for _ in range(5):
        c0 = time.process_time()
        for _ in range(n):
            f()
        rounds.append((time.process_time() - c0) / n * 1e6)
    return statistics.median(rounds)


def product_us(name: str, inputs: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]) -> float:
    """Time one matrix product alone, on fresh tensors of the recorded sizes and strides."""
    tensors = [torch.randn(1 + sum((n - 1) * st for n, st in zip(size, stride))).as_strided(size, stride)
               for size, stride in inputs]  # as recorded, broadcast (stride 0) biases too
    op = getattr(torch, name)
    return per_call_us(lambda: op(*tensors), 500)


def floor_of(data: str, window: int = 8) -> dict:
    cfg = TrainConfig(**{**bench.RECIPES[data], "data": data, "seed": 0, "device": "cpu"})
    trainer = GANTrainer(cfg, verbose=False)
    trainer.fit(steps=100, progress=False)
    rec = Recorder()
    with rec:
        for _ in range(window):
            trainer.train_step()
    n_ops, n_products, n_views = sum(rec.ops.values()) / window, len(rec.products) / window, rec.views / window
    timed = {p: product_us(*p) for p in set(rec.products)}  # each distinct product once
    products_us = sum(timed[p] for p in rec.products) / window
    tiny = torch.zeros(16)
    op_us = min(per_call_us(lambda: tiny.add_(1.0), 20_000), per_call_us(lambda: torch.zeros_like(tiny), 20_000))
    view_us = per_call_us(lambda: tiny.detach(), 20_000)
    floor_ms = (products_us + n_views * view_us + (n_ops - n_products - n_views) * op_us) / 1e3
    windows = []
    for _ in range(5):
        c0 = time.process_time()
        trainer.fit(steps=100, progress=False)
        windows.append((time.process_time() - c0) / 100 * 1e3)
    step_ms = statistics.median(windows)
    return {"data": data, "steps": cfg.steps, "budget_s": bench.BUDGET_S[data], "ops_per_step": round(n_ops, 1),
            "products_per_step": round(n_products, 1), "views_per_step": round(n_views, 1),
            "products_ms": round(products_us / 1e3, 2), "op_us": round(op_us, 2), "view_us": round(view_us, 2), "floor_ms": round(floor_ms, 2), "step_ms": round(step_ms, 2),
            "step_ms_windows": [round(w, 2) for w in windows],
            "floor_s_for_recipe": round(floor_ms * cfg.steps / 1e3, 1),
            "measured_s_for_recipe": round(step_ms * cfg.steps / 1e3, 1),
            "steps_in_budget_at_floor": int(bench.BUDGET_S[data] * 1e3 / floor_ms),
            "machine": bench.machine_text(bench.machine()), "torch": torch.__version__}


def main(out: Path | None) -> None:
    torch.set_num_threads(1)
    for data in ("ring8", "grid25"):
        row = floor_of(data)
        print(json.dumps(row))
        if out is not None:
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]) if len(sys.argv) == 2 else None)
