#!/usr/bin/env python
"""Throughput of a DCGAN training step: the course's loop against a plain hand-written loop.

Models: the course's DCGAN with pytorch/examples' widths (ngf = ndf = 64, nz = 100), 3-channel images of
uniform noise (speed does not depend on the pixels), batch 64, Adam, the non-saturating loss.

(a) ``GANTrainer.fit`` (data held on the device, batches drawn by index, per-step NaN check and statistics);
(b) ``PlainLoop`` (``benchmarks/plain_loop.py``): a plain loop of the same models (same initial weights) with a standard
    ``DataLoader(TensorDataset, shuffle=True, batch_size=64)``.

(a) and (b) are measured in the same run by ``plain_loop.compare_loops``: they take turns, ``--chunk``
steps at a time (1 on a CPU: the order alternates step by step, so a change of load on a shared machine hits
both alike), each timed with the GPU synchronised. The ratio is (a) / (b) in images per second: above 1 means
the course's loop is faster. Also reported: the median of the per-turn ratios, and the ratio in images per
CPU-second of this process (time spent waiting for a core on a busy machine does not count).

Then the option ladder (``course_lib.ladder.option_ladder``), cumulatively, one fresh trainer per rung: fp32
eager (TF32 forbidden), + TF32, + channels-last, + AMP bf16 (float16 with gradient scaling where bfloat16 is not
native), + ``torch.compile``, + CUDA graphs (``mode="reduce-overhead"``), each with images per second, the peak GPU
memory (``torch.cuda.max_memory_allocated`` during the timed steps; it includes the dataset held on the GPU) and
the MFU. On a CPU the GPU-only rungs (TF32, CUDA graphs) are reported "n/a on cpu"; ``--compile`` also measures
``torch.compile`` there (slow to compile on a CPU).

MFU (model FLOP utilisation): the FLOPs of one training step of the course loop, counted by
``torch.utils.flop_counter.FlopCounterMode``, times steps per second, over the device's peak in the precision the
step runs in (``course_lib.flops.peak_flops``: the vendor's dense figure for known GPUs, a measured large matmul on
a CPU).

    python benchmarks/throughput.py                          # 32x32 and 64x64 on the best device
    python benchmarks/throughput.py --sizes 32 --steps 20 --device cuda
    python benchmarks/throughput.py --threads 1 --steps 40 8 --json benchmarks/results-throughput.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import course_lib  # noqa: E402, F401  (before torch: course_lib.threads sizes its CPU threads)
import torch  # noqa: E402

from course_lib.device import describe_device, get_device  # noqa: E402
from course_lib.flops import count_flops, peak_flops  # noqa: E402
from course_lib.ladder import format_ladder, option_ladder  # noqa: E402
from course_lib.machine import cpu_model  # noqa: E402
from course_lib.memory import free_cached_memory  # noqa: E402
from course_lib.timing import random_images  # noqa: E402
from plain_loop import PlainLoop, compare_loops  # noqa: E402  (benchmarks/, this script's folder, is on sys.path)
from course_lib.train import GANTrainer, TrainConfig  # noqa: E402


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def make_config(args, size: int, device: str, amp: str = "off", channels_last: bool = False,
                compile: bool = False) -> TrainConfig:
    """The benchmark's TrainConfig: DCGAN, pytorch/examples' widths, no EMA (the plain loop has none)."""
    return TrainConfig.for_data("mnist", image_size=size, batch_size=args.batch_size, latent_dim=args.nz,
                                g_width=args.width, d_width=args.width, ema_decay=None, device=device,
                                amp=amp, channels_last=channels_last, compile=compile, cudnn_benchmark=True,
                                steps=10**9)


def rung_precision(row: dict, device: torch.device) -> str:
    """The precision a ladder rung's convolutions run in, for its MFU."""
    amp = row["options"]["amp"]
    if amp in ("bf16", "fp16"):
        return amp
    return "tf32" if device.type == "cuda" and row["options"]["tf32"] else "fp32"


def bench_size(args, size: int, steps: int, device: torch.device) -> dict:
    ds = random_images(args.images, args.channels, size, seed=0)
    x_cpu = ds.x.clone()
    dev = str(device)
    ref = GANTrainer(make_config(args, size, dev), dataset=ds, verbose=False)
    G0, D0 = copy.deepcopy(ref.G).cpu(), copy.deepcopy(ref.D).cpu()
    del ref
    free_cached_memory(device)
    chunk = args.chunk or (1 if device.type == "cpu" else 10)

    def trainer(opts: dict) -> GANTrainer:
        return GANTrainer(make_config(args, size, dev, **opts), dataset=ds, G=copy.deepcopy(G0),
                          D=copy.deepcopy(D0), verbose=False)

    def compare(reuse_fake: bool) -> dict:
        tr = trainer({})
        plain = PlainLoop(G0, D0, x_cpu, batch_size=args.batch_size, device=device, reuse_fake=reuse_fake)
        c = compare_loops(tr, plain, steps=steps, warmup=args.warmup, chunk=chunk)
        del tr, plain
        free_cached_memory(device)
        return c

    c = compare(False)
    result = {"size": size, "steps": steps, "chunk": chunk,
              "course_images_per_s": round(c["course"]["images_per_s"], 2),
              "plain_images_per_s": round(c["plain"]["images_per_s"], 2),
              "ratio_course_over_plain": round(c["ratio"], 3),
              "ratio_median_of_pairs": round(c["ratio_median_of_pairs"], 3),
              "ratio_per_cpu_second": round(c["ratio_cpu"], 3),
              "course_cpu_seconds": round(c["course"]["cpu_seconds"], 2),
              "plain_cpu_seconds": round(c["plain"]["cpu_seconds"], 2)}
    print(f"  {size}x{size} (a) course {result['course_images_per_s']:.1f} img/s, (b) plain "
          f"{result['plain_images_per_s']:.1f} img/s: ratio {result['ratio_course_over_plain']:.3f} (median of "
          f"pairs {result['ratio_median_of_pairs']:.3f}, per CPU-second {result['ratio_per_cpu_second']:.3f})",
          flush=True)
    if args.examples_variant:
        e = compare(True)
        result["examples_style_images_per_s"] = round(e["plain"]["images_per_s"], 2)
        result["ratio_course_over_examples_style"] = round(e["ratio"], 3)
        result["ratio_course_over_examples_style_per_cpu_second"] = round(e["ratio_cpu"], 3)
        print(f"  {size}x{size} vs pytorch/examples-style loop (reuses the fakes): "
              f"{result['examples_style_images_per_s']:.1f} img/s, ratio {e['ratio']:.3f} "
              f"(per CPU-second {e['ratio_cpu']:.3f})", flush=True)

    # MFU: the FLOPs of one course step (the same for every rung: the same convolutions), over the peak
    tr = trainer({})
    tr.fit(steps=1, progress=False)
    flops = count_flops(tr.train_step)
    images_per_step = tr.config.batch_size * tr.config.n_critic
    del tr
    free_cached_memory(device)
    peaks: dict[str, dict] = {}
    result["flops_per_step"] = flops

    def show(row: dict) -> None:
        if row["images_per_s"] is not None:
            precision = rung_precision(row, device)
            peak = peaks.setdefault(precision, peak_flops(device, precision))
            achieved = flops * row["images_per_s"] / images_per_step
            row.update(mfu=achieved / peak["flops_per_s"], achieved_flops_per_s=achieved, precision=precision,
                       peak_flops_per_s=peak["flops_per_s"], peak_source=peak["source"])
            mem = f", peak {row['peak_mem_bytes'] / 2**20:.0f} MiB" if row["peak_mem_bytes"] else ""
            print(f"  {size}x{size} {row['rung']:<16} {row['images_per_s']:9.1f} img/s, MFU "
                  f"{100 * row['mfu']:.2f} % of {peak['flops_per_s'] / 1e12:.3g} TFLOP/s {precision}{mem}", flush=True)
        else:
            print(f"  {size}x{size} {row['rung']:<16} {row['status']}: {row['note']}", flush=True)

    ladder = option_ladder(lambda opts: make_config(args, size, dev, **opts), ds, steps=steps, warmup=args.warmup,
                           compile_off_gpu=args.compile, progress=show)
    fp32 = ladder[0]
    result["course_mfu"] = fp32.get("mfu")
    result["ladder"] = ladder
    result["ladder_speedup"] = max(r["speedup"] for r in ladder if r["speedup"] is not None)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sizes (8, 16, 32 or 64)")
    p.add_argument("--steps", type=int, nargs="+", default=[10],
                   help="timed steps per measurement: one number, or one per size")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    p.add_argument("--chunk", type=int, help="steps per turn when (a) and (b) alternate (default: 1 on a CPU, "
                                           "10 on a GPU)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=3, help="image channels")
    p.add_argument("--width", type=int, default=64, help="ngf = ndf")
    p.add_argument("--nz", type=int, default=100, help="latent size")
    p.add_argument("--images", type=int, default=1024, help="images in the dataset")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile on a CPU")
    p.add_argument("--examples-variant", action="store_true",
                   help="also time the plain loop reusing the D step's fakes for the G step, as pytorch/examples")
    p.add_argument("--json", help="write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.steps) not in (1, len(args.sizes)):
        raise SystemExit("error: give one --steps value, or one per size")
    steps = args.steps * len(args.sizes) if len(args.steps) == 1 else args.steps
    if min(steps) <= 0:
        raise SystemExit("error: --steps must be positive")
    if args.chunk is not None and args.chunk <= 0:
        raise SystemExit("error: --chunk must be positive")
    for name in ("batch_size", "channels", "width", "nz", "images"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be positive")
    if args.warmup < 0:
        raise SystemExit("error: --warmup must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    info = {"device": describe_device(device), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "gpu_available": torch.cuda.is_available(),
            "load_average_before": _load(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    print(f"device {info['device']} | {info['cpu']} | torch {info['torch']} | load {info['load_average_before']}")
    if device.type != "cuda":
        print("no GPU available: measuring on the CPU (the GPU-only rungs TF32 and CUDA graphs are n/a"
              + ("" if args.compile else "; torch.compile skipped, --compile measures it") + ")")
    t0 = time.perf_counter()
    results = [bench_size(args, s, n, device) for s, n in zip(args.sizes, steps)]
    info["load_average_after"] = _load()
    info["seconds"] = round(time.perf_counter() - t0, 1)
    print("\n| size | (a) course loop, img/s | (b) plain DataLoader loop, img/s | ratio (a)/(b) | median of "
          "step pairs | ratio per CPU-second |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']}x{r['size']} | {r['course_images_per_s']:.1f} | {r['plain_images_per_s']:.1f} | "
              f"{r['ratio_course_over_plain']:.3f} | {r['ratio_median_of_pairs']:.3f} | "
              f"{r['ratio_per_cpu_second']:.3f} |")
    for r in results:
        print(f"\n{r['size']}x{r['size']}, batch {args.batch_size}, {r['flops_per_step'] / 1e9:.2f} GFLOP per step; "
              f"course loop MFU {100 * (r['course_mfu'] or 0):.2f} %, best rung {r['ladder_speedup']:.2f}x fp32 eager")
        print(format_ladder(r["ladder"]))
    print(f"\ntotal {info['seconds']} s, load average after {info['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
        import throughput_report  # benchmarks/, this script's folder: the page of every results-throughput*.json
        print(f"wrote {args.json} and {throughput_report.write(Path(args.json).parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
