#!/usr/bin/env python
"""The GPU figures in one command: run it on a machine with a CUDA GPU (about 8 minutes on an H100-class GPU).

    python benchmarks/gpu_figures.py                       # writes benchmarks/results-gpu.json and RESULTS-gpu.md
    python benchmarks/gpu_figures.py --out /tmp/gpu --budget-s 420

It runs, each as its own subprocess with a time limit (a part that fails or times out is recorded, and the
others still run):

1. the throughput benchmark at 64x64, batch 128 (``benchmarks/throughput.py``): the course loop against a plain
   loop of the same models (target: ratio >= 1.0), then the option ladder fp32 eager, + TF32, + channels-last,
   + AMP bf16, + torch.compile, + CUDA graphs with images/s, peak memory and MFU (target: best rung >= 3x fp32
   eager);
2. the host-synchronisation tests (``pytest -m "not slow" -k sync tests``: ``torch.cuda.set_sync_debug_mode
   ("error")`` around steady-state training steps);
3. the Fashion-MNIST recipe on the GPU, timed, then ``python -m course_lib evaluate`` on its checkpoint (target:
   the CPU quality target of ``benchmarks/RESULTS-fashion.md`` in under 60 s of training).

The results (JSON, and markdown to paste into ``benchmarks/RESULTS-throughput.md`` and ``RESULTS-recipes.md``)
name the GPU, the driver, and the torch and CUDA versions.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(name: str, cmd: list[str], timeout: float, log_dir: Path) -> dict:
    """Run ``cmd`` in the repository with a time limit; keep its output in ``log_dir/name.log``."""
    print(f"[gpu_figures] {name}: {' '.join(cmd)} (limit {timeout:.0f} s)", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    seconds = time.perf_counter() - t0
    (log_dir / f"{name}.log").write_text(out)
    print(f"[gpu_figures] {name}: exit {code} after {seconds:.0f} s", flush=True)
    return {"command": " ".join(cmd), "exit_code": code, "seconds": round(seconds, 1), "tail": out[-3000:]}


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "gpu_available": torch.cuda.is_available(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = None
    return info


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# GPU figures ({m.get('gpu', 'no GPU')})", "",
             f"GPU {m.get('gpu')} ({m.get('gpu_memory_gib')} GiB, compute capability {m.get('capability')}), driver "
             f"{m.get('driver')}, torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}, Python {m['python']}; "
             f"{m['started']}. Produced by `python benchmarks/gpu_figures.py`.", ""]
    t = res.get("throughput_json")
    if t:
        for r in t["results"]:
            lines += [f"## Throughput at {r['size']}x{r['size']}, batch {t['machine']['settings']['batch_size']}", "",
                      f"- course loop {r['course_images_per_s']:,.0f} img/s, plain loop {r['plain_images_per_s']:,.0f} "
                      f"img/s: ratio **{r['ratio_course_over_plain']:.3f}** (target >= 1.0)",
                      f"- best rung **{r['ladder_speedup']:.2f}x** fp32 eager (target >= 3x); course loop MFU "
                      f"{100 * (r['course_mfu'] or 0):.2f} %", "",
                      "| rung | images/s | speed-up | peak memory | MFU | status |", "|---|---|---|---|---|---|"]
            for row in r["ladder"]:
                ips = f"{row['images_per_s']:,.0f}" if row["images_per_s"] else "-"
                up = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
                mem = f"{row['peak_mem_bytes'] / 2**20:,.0f} MiB" if row["peak_mem_bytes"] else "-"
                mfu = f"{100 * row['mfu']:.2f} %" if row.get("mfu") is not None else "-"
                lines.append(f"| {row['rung']} | {ips} | {up} | {mem} | {mfu} | {row['status']} {row['note']} |")
            lines.append("")
    for key, title in (("throughput", "Throughput benchmark"), ("sync_tests", "Host-synchronisation tests"),
                       ("fashion_train", "Fashion-MNIST recipe: training"),
                       ("fashion_evaluate", "Fashion-MNIST recipe: evaluation")):
        part = res["parts"].get(key)
        if part:
            lines += [f"## {title}", "", f"`{part['command']}`: exit {part['exit_code']}, {part['seconds']} s", "",
                      "```", part["tail"][-1500:].strip(), "```", ""]
    if res.get("evaluation"):
        lines += ["Evaluation JSON:", "", "```json", json.dumps(res["evaluation"], indent=1)[:3000], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="folder for results-gpu.json, RESULTS-gpu.md")
    p.add_argument("--budget-s", type=float, default=480, help="wall-clock budget of all parts together, seconds")
    p.add_argument("--fashion-steps", type=int, help="training steps of the Fashion-MNIST run (default: the recipe's)")
    p.add_argument("--allow-cpu", action="store_true", help="run even without a GPU (to try the script)")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no CUDA GPU here. This script produces the GPU figures; run it on a GPU machine "
              "(or pass --allow-cpu to try it on a CPU)", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "gpu-logs"
    logs.mkdir(exist_ok=True)
    deadline = time.perf_counter() + args.budget_s
    left = lambda share: max(30.0, share * (deadline - time.perf_counter()))  # noqa: E731
    py = sys.executable
    res: dict = {"machine": machine(), "parts": {}}
    tjson = args.out / "results-throughput-gpu.json"
    quick = args.allow_cpu and device == "cpu"
    res["parts"]["throughput"] = run("throughput", [
        py, "benchmarks/throughput.py", "--sizes", "16" if quick else "64", "--batch-size", "16" if quick else "128",
        "--steps", "3" if quick else "50", "--warmup", "1" if quick else "10", "--images", "256" if quick else "2048",
        "--device", device, "--json", str(tjson)], left(0.45), logs)
    if tjson.is_file():
        res["throughput_json"] = json.loads(tjson.read_text())
    res["parts"]["sync_tests"] = run("sync_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                                                    "not slow", "-k", "sync", "tests"], left(0.25), logs)
    run_dir = args.out / "gpu-fashion-run"
    train = [py, "-m", "course_lib", "train", "--data", "fashion-mnist", "--fallback", "--device", device,
             "--out", str(run_dir)]
    if args.fashion_steps or quick:
        train += ["--steps", str(args.fashion_steps or 20)]
    res["parts"]["fashion_train"] = run("fashion_train", train, left(0.75), logs)
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.is_file():
        ev = run_dir / "evaluation.json"
        res["parts"]["fashion_evaluate"] = run("fashion_evaluate", [
            py, "-m", "course_lib", "evaluate", "--checkpoint", str(ckpt), "--device", device, "--out", str(ev)],
            left(0.9), logs)
        if ev.is_file():
            res["evaluation"] = json.loads(ev.read_text())
    res["machine"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (args.out / "results-gpu.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "RESULTS-gpu.md").write_text(markdown(res) + "\n")
    print(f"[gpu_figures] wrote {args.out / 'results-gpu.json'} and {args.out / 'RESULTS-gpu.md'}")
    return 0 if all(p["exit_code"] == 0 for p in res["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
