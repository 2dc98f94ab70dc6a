#!/usr/bin/env python
"""Throughput of a DCGAN training step: the course's loop against a plain hand-written loop.

Models: the course's DCGAN with pytorch/examples' widths (ngf = ndf = 64, nz = 100), 3-channel images of
uniform noise (speed does not depend on the pixels), batch 64, Adam, the non-saturating loss.

(a) ``GANTrainer.fit`` (data held on the device, batches drawn by index, per-step NaN check and statistics);
(b) ``course_lib.speed.PlainLoop``: a plain loop of the same models (same initial weights) with a standard
    ``DataLoader(TensorDataset, shuffle=True, batch_size=64)``.

(a) and (b) are measured in the same run by ``course_lib.speed.compare_loops``: they take turns, ``--chunk``
steps at a time (1 on a CPU: the order alternates step by step, so a change of load on a shared machine hits
both alike), each timed with the GPU synchronised. The ratio is (a) / (b) in images per second: above 1 means
the course's loop is faster. Also reported: the median of the per-turn ratios, and the ratio in images per
CPU-second of this process (time spent waiting for a core on a busy machine does not count).

Then each speed option is measured on its own, cumulatively: fp32 eager, + channels-last, + AMP (bfloat16, or
float16 with gradient scaling where bfloat16 is unsupported), + ``torch.compile``, with the peak GPU memory
(``torch.cuda.max_memory_allocated`` during the timed steps; it includes the dataset held on the GPU).
On a CPU: fp32 eager, + channels-last and + AMP bfloat16 (``--no-cpu-bf16`` skips it); ``--compile`` adds
``torch.compile`` (slow to compile on a CPU).

    python benchmarks/throughput.py                          # 32x32 and 64x64 on the best device
    python benchmarks/throughput.py --sizes 32 --steps 20 --device cuda
    python benchmarks/throughput.py --threads 1 --steps 40 8 --json benchmarks/results-throughput.json
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_lib.device import describe_device, get_device  # noqa: E402
from course_lib.speed import PlainLoop, compare_loops, measure_throughput, random_images  # noqa: E402
from course_lib.train import GANTrainer, TrainConfig  # noqa: E402


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def make_config(args, size: int, device: str, amp: str = "off", channels_last: bool = False,
                compile: bool = False) -> TrainConfig:
    """The benchmark's TrainConfig: DCGAN, pytorch/examples' widths, no EMA (the plain loop has none)."""
    return TrainConfig.for_data("mnist", image_size=size, batch_size=args.batch_size, latent_dim=args.nz,
                                g_width=args.width, d_width=args.width, ema_decay=None, device=device,
                                amp=amp, channels_last=channels_last, compile=compile, cudnn_benchmark=True,
                                steps=10**9)


def variants(device: torch.device, args) -> list[tuple[str, dict]]:
    """The cumulative option ladder measured on this device."""
    cuda = device.type == "cuda"
    amp = "bf16" if (not cuda or torch.cuda.is_bf16_supported()) else "fp16"
    out = [("fp32 eager", dict()), ("+ channels-last", dict(channels_last=True))]
    if cuda or args.cpu_bf16:
        out.append((f"+ AMP {amp}", dict(channels_last=True, amp=amp)))
    if cuda or args.compile:
        prev = dict(out[-1][1])
        out.append(("+ compile", dict(prev, compile=True)))
    return out


def bench_size(args, size: int, steps: int, device: torch.device) -> dict:
    ds = random_images(args.images, args.channels, size, seed=0)
    x_cpu = ds.x.clone()
    dev = str(device)
    ref = GANTrainer(make_config(args, size, dev), dataset=ds, verbose=False)
    G0, D0 = copy.deepcopy(ref.G).cpu(), copy.deepcopy(ref.D).cpu()
    del ref
    _free(device)
    chunk = args.chunk or (1 if device.type == "cpu" else 10)

    def trainer(opts: dict) -> GANTrainer:
        return GANTrainer(make_config(args, size, dev, **opts), dataset=ds, G=copy.deepcopy(G0),
                          D=copy.deepcopy(D0), verbose=False)

    def compare(reuse_fake: bool) -> dict:
        tr = trainer({})
        plain = PlainLoop(G0, D0, x_cpu, batch_size=args.batch_size, device=device, reuse_fake=reuse_fake)
        c = compare_loops(tr, plain, steps=steps, warmup=args.warmup, chunk=chunk)
        del tr, plain
        _free(device)
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

    ladder = []
    for name, opts in variants(device, args):
        tr = trainer(opts)
        r = measure_throughput(tr, steps=steps, warmup=args.warmup)
        del tr
        _free(device)
        ladder.append({"variant": name, "images_per_s": round(r["images_per_s"], 2),
                       "images_per_cpu_s": round(steps * args.batch_size / r["cpu_seconds"], 2),
                       "peak_mem_bytes": r["peak_mem_bytes"], "options": opts})
        mem = f", peak {r['peak_mem_bytes'] / 2**20:.0f} MiB" if r["peak_mem_bytes"] else ""
        print(f"  {size}x{size} {name:<16} {r['images_per_s']:9.1f} img/s{mem}", flush=True)
    result["options"] = ladder
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
    p.add_argument("--no-cpu-bf16", dest="cpu_bf16", action="store_false", help="skip AMP bfloat16 on CPU")
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
    info = {"device": describe_device(device), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "gpu_available": torch.cuda.is_available(),
            "load_average_before": _load(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    print(f"device {info['device']} | {info['cpu']} | torch {info['torch']} | load {info['load_average_before']}")
    if device.type != "cuda":
        print("no GPU available: measuring on the CPU (fp32 eager" + (", + channels-last, + AMP bf16"
              if args.cpu_bf16 else ", + channels-last") + (", + compile" if args.compile else "") + ")")
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
    print("\n| size | variant | img/s | img per CPU-second | peak memory |")
    print("|---|---|---|---|---|")
    for r in results:
        for v in r["options"]:
            mem = f"{v['peak_mem_bytes'] / 2**20:.0f} MiB" if v["peak_mem_bytes"] else "n/a (CPU)"
            print(f"| {r['size']}x{r['size']} | {v['variant']} | {v['images_per_s']:.1f} | "
                  f"{v['images_per_cpu_s']:.1f} | {mem} |")
    print(f"\ntotal {info['seconds']} s, load average after {info['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
