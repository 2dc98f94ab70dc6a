"""RESULTS-throughput.md from the throughput benchmark's JSON files, training nothing.

    python benchmarks/throughput_report.py          # rewrite benchmarks/RESULTS-throughput.md

Every ``results-throughput*.json`` in the folder (written by ``benchmarks/throughput.py --json ...``) gives the
rows of the page: one per file and image size for the course loop against the plain loop, one per rung for the
speed options. Each row names its device, CPU model, torch threads and date. ``throughput.py --json`` calls
``write`` itself, so a measurement and its page stay together.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = "RESULTS-throughput.md"

# Experiments that found something worth keeping, one line each (the page's "What was tried").
TRIED = (
    "Where a CPU step goes (torch profiler, 32x32): convolutions forward and backward about 85 %, batch norm about "
    "6 %. The course loop's own extras are small: the NaN/inf check of the loss and gradient norm 0.8-0.9 ms per "
    "update (about 0.5 % of a step), the statistics about 0.06 ms, drawing a batch by index about as much as the "
    "DataLoader's collation.",
    "pytorch/examples' loop reuses the discriminator step's fakes for the generator update; a loop written that "
    "way (`--examples-variant`) was about 4 % faster per step at 32x32 on one CPU thread. The gap comes from the "
    "algorithm (one generator forward fewer), not from loop overhead; the course draws fresh noise.",
    "bfloat16 autocast on a CPU with bfloat16 units (AMX-BF16 here) roughly doubles the throughput (the rows "
    "above); CPUs without them gain little or lose. Channels-last adds 7-14 % there.",
    "`torch.compile` of a DCGAN on a CPU compiles for minutes, so the ladder leaves it out there unless given "
    "`--compile`.",
    "MFU on a shared CPU: the peak is a measured matrix product, as steady as the machine (readings above 100 % "
    "were seen under load). The FLOP count (29.19 GFLOP per step at 32x32, width 64, batch 64) and the ratios "
    "between rungs are the reliable part; on a GPU the peak is the data sheet's.",
    "Comparing the two loops in blocks of 10 steps on a loaded machine gave ratios from 0.77 to 1.24; alternating "
    "step by step (the order flipping each turn) gives 0.99-1.00 on a quiet one.",
)


def _rows(folder: Path) -> list[tuple[dict, dict]]:
    """(machine, result) for every size of every results-throughput*.json in ``folder``, oldest first."""
    out = []
    for path in sorted(folder.glob("results-throughput*.json")):
        data = json.loads(path.read_text())
        out += [(dict(data["machine"], file=path.name), r) for r in data["results"]]
    return sorted(out, key=lambda mr: (mr[0].get("started", ""), mr[1]["size"]))


def _where(m: dict) -> str:
    """'cpu, Intel(R) Xeon(R) Processor, 2 threads' or 'cuda: NVIDIA H100 ...'."""
    device = str(m.get("device", "cpu")).split(":")[0]
    threads = f"{m['torch_threads']} thread" + ("" if m["torch_threads"] == 1 else "s")
    cpu = m["cpu"] + (" (bfloat16 units)" if m.get("settings", {}).get("cpu_bf16") else "")
    return f"{cpu}, {threads}" if device == "cpu" else f"{m['device']} (host {m['cpu']})"


def _ladder(r: dict) -> list[dict]:
    """The speed-option rows of one result, in one shape for old (``options``) and new (``ladder``) files."""
    if "ladder" in r:
        return [{"rung": x["rung"], "images_per_s": x["images_per_s"], "images_per_cpu_s": x.get("images_per_cpu_s"),
                 "peak_mem_bytes": x.get("peak_mem_bytes"), "mfu": x.get("mfu"),
                 "status": x.get("status", "") + (f": {x['note']}" if x.get("note") else "")} for x in r["ladder"]]
    return [{"rung": x["variant"], "images_per_s": x["images_per_s"], "images_per_cpu_s": x.get("images_per_cpu_s"),
             "peak_mem_bytes": x.get("peak_mem_bytes"), "mfu": None, "status": "measured"} for x in r["options"]]


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def markdown(folder: Path = HERE) -> str:
    """The page: what is measured, how to reproduce it, the targets, the tables (each row with its device, CPU,
    threads and date) and what was tried."""
    rows = _rows(folder)
    lines = ["# Throughput benchmark: the course's training loop against a plain loop", "",
             "**What it measures.** One DCGAN training step with pytorch/examples' widths (ngf = ndf = 64, nz = 100, "
             "3 channels, batch 64, Adam, the non-saturating loss) on 1,024 images of noise (speed does not depend "
             "on the pixels). (a) The course's loop, `GANTrainer.fit`: data held on the device and batched by index, "
             "the NaN/inf check and the statistics of every step. (b) A plain loop of the same models and starting "
             "weights with a `DataLoader(TensorDataset, shuffle=True)` and no checks "
             "(`benchmarks/plain_loop.py`). The two loops take turns step by step (the order flipping each turn), "
             "so a change of load hits both alike; the ratio is (a) / (b) in images per second, and per CPU-second "
             "of the process (time spent waiting for a core does not count). Then the option ladder, one fresh "
             "trainer per rung: fp32 eager, + TF32, + channels-last, + AMP, + `torch.compile`, + CUDA graphs, with "
             "peak GPU memory and MFU where the run recorded them.", "",
             "**Reproduce.** `python benchmarks/throughput.py --json benchmarks/results-throughput.json` (add "
             "`--threads 1` and another file name for a one-thread row; on a GPU machine `--device cuda --sizes 64 "
             "--batch-size 128 --json benchmarks/results-throughput-gpu.json`). It rewrites this page from every "
             "`benchmarks/results-throughput*.json`; `python benchmarks/throughput_report.py` rewrites the page "
             "alone.", "",
             "**Targets.** The course loop at least as fast as the plain loop (a ratio of 1.0 within the noise); on a "
             "GPU the best rung at least 3x fp32 eager at 64x64, batch 128.", "",
             "The rows so far were measured on CPUs; GPU rows are added when a GPU run is made.", "",
             "## The course loop against the plain loop", "",
             "| where | size | steps | (a) course loop, img/s | (b) plain loop, img/s | ratio (a)/(b) | median of "
             "step pairs | ratio per CPU-second | date |", "|---|---|---|---|---|---|---|---|---|"]
    for m, r in rows:
        lines.append(f"| {_where(m)} | {r['size']}x{r['size']} | {r['steps']} | {r['course_images_per_s']:.1f} | "
                     f"{r['plain_images_per_s']:.1f} | **{r['ratio_course_over_plain']:.3f}** | "
                     f"{r['ratio_median_of_pairs']:.3f} | {r['ratio_per_cpu_second']:.3f} | "
                     f"{m.get('started', '')[:10]} |")
    lines += ["", "## Speed options", "",
              "| where | size | rung | img/s | img per CPU-second | peak memory | MFU | status | date |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m, r in rows:
        for x in _ladder(r):
            mem = f"{x['peak_mem_bytes'] / 2**20:,.0f} MiB" if x["peak_mem_bytes"] else "n/a (not CUDA)"
            mfu = "-" if x["mfu"] is None else f"{100 * x['mfu']:.1f} %"
            lines.append(f"| {_where(m)} | {r['size']}x{r['size']} | {x['rung']} | {_num(x['images_per_s'])} | "
                         f"{_num(x['images_per_cpu_s'])} | {mem} | {mfu} | {x['status']} | "
                         f"{m.get('started', '')[:10]} |")
    lines += ["", "Speed options stay off by default on a CPU, so that CPU runs repeat bit for bit.", "",
              "## What was tried", ""] + [f"- {line}" for line in TRIED]
    return "\n".join(lines) + "\n"


def write(folder: Path = HERE) -> Path:
    """Rewrite ``folder``/RESULTS-throughput.md from the JSON files there; returns its path."""
    path = Path(folder) / PAGE
    path.write_text(markdown(Path(folder)))
    return path


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    print(f"wrote {write(folder)}")
