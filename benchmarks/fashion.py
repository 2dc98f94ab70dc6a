"""Fashion-MNIST side by side: the course's recipe against a plain DCGAN, same time, same data, same judge.

    python benchmarks/fashion.py                          # seed 0, 600 s each, 2 threads (~25 minutes)
    python benchmarks/fashion.py --seeds 0 1 --budget 600
    python benchmarks/fashion.py --digits                 # also the unconditional digits recipe
    python benchmarks/fashion.py --quick                  # smoke test of the script (results not written)
    python benchmarks/fashion.py --report-only            # rewrite RESULTS-fashion.md from the JSON

Rows, each in its own process (its peak RSS is the kernel's, from ``os.wait4``):

* ``course``: ``python -m course_lib train --data fashion-mnist`` (``course_lib.recipes.RECIPES``, 32x32,
  unconditional), then ``sample`` and ``evaluate`` on its checkpoint (their peak RSS too);
* ``plain DCGAN``: ``benchmarks/plain_dcgan.py`` (pytorch/examples' ``dcgan/main.py`` defaults, 64x64) for the
  same wall-clock budget: the larger of ``--budget`` and the course run's own training time.

The judge is the same for both: 5,000 samples (the course's from its EMA generator; the plain DCGAN's drawn as
``main.py`` draws them, then resized 64 -> 32 with an antialiased bilinear filter, the size the course's
classifier reads), measured by ``course_lib.metrics.evaluate_images`` against the 10,000 test images in the
features of the course's Fashion-MNIST classifier (trained on the training split only):

* Frechet distance (FD), with its floor: 5 sets of 5,000 real training images the classifier never saw, as
  mean and sd;
* the *blurred-real bar*: the same 5 real sets blurred by a 3x3 box filter (replicate padding), FD mean and
  sd. The recipe's target is FD <= this bar, and FD <= half the plain DCGAN's;
* KID (mean and sd over 100 subsets of 1,000) and its floor; every class's share of the samples by the
  classifier's argmax (target: each >= 3 %); precision, recall, density, coverage.

Training times are wall clock and shared machines are slower when loaded: the 1-minute load average before
and after each row is recorded beside it, with the CPU model and its instruction set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import course_lib  # noqa: E402, F401  (before torch: course_lib.threads sizes its CPU threads)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_lib import metrics  # noqa: E402
from course_lib.data import CLASS_NAMES  # noqa: E402
from course_lib.machine import cpu_isa, cpu_model  # noqa: E402
from course_lib.recipes import RECIPES  # noqa: E402
from course_lib.utils import atomic_write  # noqa: E402

HERE = Path(__file__).resolve().parent
N_SAMPLES = 5000
BAR_RESAMPLES = 5
TARGETS = {
    "fashion-mnist": "course recipe, unconditional, <= 10 min of training on a 2-core CPU: FD <= the blurred-real "
                     "bar, every class >= 3 % by the classifier, KID reported with its sd; FD <= 0.5 x the plain "
                     "DCGAN's under the same wall-clock budget; train / sample / evaluate each < 4 GB peak RSS",
}


# ----------------------------------------------------------------------------- machine and load

def machine() -> dict:
    """CPU model, instruction-set extensions that change floating-point paths, cores, versions."""
    flags = set(cpu_isa())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    return {"cpu": cpu_model(), "isa": isa, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def run_measured(cmd: list[str], threads: int, log: Path) -> dict:
    """Run ``cmd`` in a child process with ``threads`` CPU threads; return its exit code, wall seconds, CPU
    seconds (user + system, all threads), peak RSS (MB, the kernel's ``ru_maxrss`` of that child) and the load
    before and after. Output goes to ``log``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before, t0 = load(), time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {"cmd": " ".join(cmd[1:]), "rc": proc.returncode, "wall_seconds": round(time.perf_counter() - t0, 1),
           "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
           "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "load_before": before, "load_after": load()}
    if proc.returncode != 0:
        tail = log.read_text()[-2000:]
        raise RuntimeError(f"{row['cmd']} failed with exit code {proc.returncode}; log {log}:\n{tail}")
    return row


# ----------------------------------------------------------------------------- the judge

def blur3(x: torch.Tensor) -> torch.Tensor:
    """3x3 box filter of (N, C, S, S) images, replicate padding: same shape and range."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def blurred_bar(data: str, image_size: int, n: int, resamples: int = BAR_RESAMPLES, seed: int = 0) -> dict:
    """FD of blurred real images against the reference: ``resamples`` sets of ``n`` floor-pool images (real
    training images the classifier never saw, drawn like the floor's), each blurred by ``blur3``.

    Returns ``{"blurred_fd": mean, "blurred_fd_sd": sd, "blurred_fd_test": FD of the blurred test split
    against itself unblurred (the literal reading of the bar), "n": n}``."""
    ref = metrics.real_reference(data, image_size)
    clf, pool, test_feats = ref["classifier"], ref["pool_x"], ref["test_feats"]
    if n > len(pool):
        raise ValueError(f"the blurred bar needs {n} pool images, the pool holds {len(pool)}; lower n")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        idx = torch.randperm(len(pool), generator=g)[:n]
        values.append(metrics.frechet_distance(clf.embed(blur3(pool[idx]))[0], test_feats))
    v = torch.tensor(values, dtype=torch.float64)
    literal = metrics.frechet_distance(clf.embed(blur3(ref["test_x"]))[0], test_feats)
    return {"blurred_fd": float(v.mean()), "blurred_fd_sd": float(v.std()), "blurred_fd_test": literal, "n": n}


def class_shares(x: torch.Tensor, data: str, image_size: int) -> list[float]:
    """Share of each class among ``x`` by the course classifier's argmax (a list of K floats summing to 1)."""
    clf = metrics.real_reference(data, image_size)["classifier"]
    pred = clf.predict_proba(x).argmax(1)
    return (torch.bincount(pred, minlength=clf.num_classes).double() / len(pred)).tolist()


def judge(x: torch.Tensor, data: str = "fashion-mnist", image_size: int = 32, bar: dict | None = None) -> dict:
    """Every number of a row: ``evaluate_images`` (FD, KID, floors, precision/recall, ...), the class shares,
    the blurred-real bar and FD / bar. ``x``: (N, C, S, S) in [-1, 1]."""
    t0 = time.perf_counter()
    ev = metrics.evaluate_images(x, data=data, image_size=image_size, standard_fid=False)
    bar = bar or blurred_bar(data, image_size, ev["n_eval"])
    shares = class_shares(x, data, image_size)
    keys = ("frechet_distance", "frechet_distance_real", "frechet_distance_real_sd", "frechet_distance_verdict",
            "kid", "kid_sd", "kid_real", "kid_real_sd", "precision", "precision_real", "recall", "recall_real",
            "density", "density_real", "coverage", "coverage_real", "classifier_score", "classifier_score_real",
            "memorisation_median_ratio", "n_eval", "chunks", "n_reference", "classifier_accuracy", "reference")
    out = {k: ev[k] for k in keys if k in ev}
    out.update(bar, class_shares=shares, min_class_share=min(shares),
               fd_over_bar=ev["frechet_distance"] / bar["blurred_fd"], judge_seconds=round(time.perf_counter() - t0, 1))
    return out


def to_judge_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, s, s) in [-1, 1] -> (N, C, size, size): antialiased bilinear resize, clamped."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1]).clamp_(-1, 1)


# ----------------------------------------------------------------------------- the rows

def course_row(data: str, seed: int, threads: int, work: Path, changes: list[str] = (), n: int = N_SAMPLES,
               image_size: int = 32) -> tuple[dict, torch.Tensor]:
    """Train the course recipe with the CLI, then sample and evaluate its checkpoint (peak RSS of each)."""
    out = work / f"{data}-course-seed{seed}"
    py = [sys.executable, "-m", "course_lib"]
    train = run_measured(py + ["train", "--data", data, "--out", str(out), "--seed", str(seed), "--quiet",
                               *changes], threads, work / f"{out.name}-train.log")
    summary = json.loads((out / "metrics.json").read_text())["final"]
    sample = run_measured(py + ["sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", str(n), "--seed", "12345",
                                "--out", str(out / "samples.npy")], threads, work / f"{out.name}-sample.log")
    evaluate = run_measured(py + ["evaluate", "--checkpoint", str(out / "checkpoint.pt"),
                                  "--out", str(out / "evaluation.json")], threads, work / f"{out.name}-evaluate.log")
    import numpy as np

    x = torch.from_numpy(np.load(out / "samples.npy"))
    row = {"data": data, "recipe": "course", "seed": seed, "threads": threads, "steps": summary["steps"],
           "train_seconds": summary["train_seconds"], "train_cpu_seconds": summary.get("train_cpu_seconds"),
           "process_cpu_seconds": {"train": train["cpu_seconds"], "sample": sample["cpu_seconds"],
                                   "evaluate": evaluate["cpu_seconds"]},
           "process_wall_seconds": {"train": train["wall_seconds"], "sample": sample["wall_seconds"],
                                    "evaluate": evaluate["wall_seconds"]}, "load_before": train["load_before"],
           "load_after": train["load_after"], "peak_rss_mb": {"train": train["peak_rss_mb"],
                                                             "sample": sample["peak_rss_mb"],
                                                             "evaluate": evaluate["peak_rss_mb"]},
           "config": {k: v for k, v in RECIPES[data].items() if k != "checkpoint_every"},
           "cli_extra": list(changes), "out": str(out)}
    return row, to_judge_size(x, image_size)


def plain_name(size: int) -> str:
    return "plain DCGAN" if size == 64 else f"plain DCGAN {size}x{size}"


def plain_row(seed: int, threads: int, budget_s: float, work: Path, n: int = N_SAMPLES, size: int = 64
              ) -> tuple[dict, torch.Tensor]:
    """Train the plain DCGAN (``plain_dcgan.py``, at ``size`` 64 as main.py, or 32) for ``budget_s`` seconds in
    its own process."""
    out = work / ("plain-dcgan" + ("" if size == 64 else f"-{size}px") + f"-seed{seed}")
    run = run_measured([sys.executable, str(HERE / "plain_dcgan.py"), "--budget", str(budget_s), "--seed",
                        str(seed), "--threads", str(threads), "--n-samples", str(n), "--image-size", str(size),
                        "--out", str(out)], threads, work / f"{out.name}.log")
    rec = json.loads((out / "run.json").read_text())
    x = torch.load(out / "samples.pt", weights_only=True)
    row = {"data": "fashion-mnist", "recipe": plain_name(size), "seed": seed, "threads": threads,
           "steps": rec["iterations"], "epochs": rec["epochs"], "train_seconds": rec["train_seconds"],
           "budget_seconds": budget_s, "process_cpu_seconds": {"train": run["cpu_seconds"]},
           "load_before": run["load_before"], "load_after": run["load_after"],
           "peak_rss_mb": {"train": run["peak_rss_mb"]}, "image_size_trained": size, "out": str(out),
           "final_losses": {k: rec[k] for k in ("loss_d", "loss_g", "d_x", "d_g_z")}}
    return row, to_judge_size(x, 32)


# ----------------------------------------------------------------------------- report

def _pm(mean: float, sd: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _cpu(row: dict, result: dict) -> str:
    """The CPU model a row ran on (rows record their machine; older rows share the file's)."""
    m = row.get("machine") or result["machine"]
    isa = m.get("isa", [])
    return f"{m['cpu']} ({'AVX-512' if 'avx512f' in isa else 'AVX2' if 'avx2' in isa else 'no AVX2'})"


def summary_lines(result: dict) -> list[str]:
    """The table of rows (each with its CPU and date) and the ratios against the targets, as markdown lines."""
    lines = ["| data | recipe | seed | threads | steps | train s | FD | FD floor | blurred bar | FD / bar | "
             "KID | KID floor | min class share | peak RSS train MB | CPU | date |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(
            f"| {r['data']} | {r['recipe']} | {r['seed']} | {r['threads']} | {r['steps']} | {r['train_seconds']:.0f} | "
            f"{r['frechet_distance']:.2f} | "
            f"{_pm(r['frechet_distance_real'], r['frechet_distance_real_sd'])} | "
            f"{_pm(r['blurred_fd'], r['blurred_fd_sd'])} | {r['fd_over_bar']:.2f} | "
            f"{r['kid']:.3g} ± {r['kid_sd']:.2g} | {r['kid_real']:.2g} ± {r['kid_real_sd']:.2g} | "
            f"{100 * r['min_class_share']:.1f}% | {r['peak_rss_mb']['train']:.0f} | {_cpu(r, result)} | "
            f"{str(r.get('date', result.get('date', ''))).split(' ')[0]} |")
    lines += ["", "## Ratios and targets", ""]
    for s in result["summary"]:
        ratio = ("no plain DCGAN row for this seed" if s["fd_ratio"] is None else
                 f"course FD / plain DCGAN FD = **{s['fd_ratio']:.3f}** (target <= 0.5: "
                 f"{'met' if s['fd_ratio'] <= 0.5 else 'not met'})")
        lines.append(f"- seed {s['seed']}: {ratio}; course FD {s['course_fd_over_bar']:.2f} x the blurred-real "
                     f"bar ({'under' if s['course_under_bar'] else 'over'} it); every class >= 3 %: "
                     f"{'yes' if s['classes_ok'] else 'no'}; course training {s['course_train_seconds']:.0f} s "
                     f"({'within' if s['course_train_seconds'] <= 600 else 'over'} 10 min)."
                     + ("" if s.get("fd_ratio_32") is None else
                        f" Against the plain DCGAN at 32x32: {s['fd_ratio_32']:.3f}."))
    for r in result["runs"]:
        if r["data"] == "digits":
            lines.append(f"- digits, {r['recipe']}, seed {r['seed']}: FD {r['frechet_distance']:.2f} = "
                         f"{r['frechet_distance'] / r['frechet_distance_real']:.2f} x the floor "
                         f"({_pm(r['frechet_distance_real'], r['frechet_distance_real_sd'])}, n = {r['n_eval']}) and "
                         f"{r['fd_over_bar']:.2f} x the blurred-real bar; {r['steps']} steps in "
                         f"{r['train_seconds']:.0f} s.")
    return lines


# Experiments that found something worth keeping, one line each (the page's "What was tried").
TRIED = (
    "Width 32 instead of 64 makes a step about 6x cheaper, so the same CPU time buys many more steps; with hinge "
    "loss and spectral norm in D (which keep D from saturating), TTUR, Adam betas (0, 0.9) and an EMA of G, that "
    "is the course recipe.",
    "The plain DCGAN at 64x64 (pytorch/examples' defaults) runs only about 120 iterations (0.13 epochs) in 10 CPU "
    "minutes and every sample is a grey blob classed as \"Bag\"; at 32x32 (one layer fewer in G and D) it is the "
    "fairer baseline.",
    "Threads: on a shared 2-core machine, 2 threads were about 2x slower per step than 1 for these small "
    "convolutions (OpenMP threads wait for each other when the other core is busy), so the course rows use one.",
    "The blurred-real bar does not depend on which real images are blurred: the test split blurred against "
    "itself gives the same bar within 2 %.",
    "Digits without labels: FD 1.7x the real-data floor (n = 239, floor sd about 1.5) and 0.3x the blurred-real "
    "bar, a good unconditional model but not one within the noise of real data.",
)


def markdown(result: dict) -> str:
    """RESULTS-fashion.md from a results-fashion.json: what is measured, how to reproduce it, the targets, the
    table (each row with its CPU and date), the ratios, the details per row and what was tried."""
    lines = ["# Fashion-MNIST benchmark: the course recipe against a plain DCGAN", "",
             "**What it measures.** The course's Fashion-MNIST recipe (`course_lib.recipes.RECIPES`, unconditional, "
             "32x32) against a faithful plain DCGAN (pytorch/examples' defaults) given the same wall-clock budget, "
             "judged the same way: 5,000 samples, the course's Fashion-MNIST classifier (trained on the training "
             "split only), the 10,000 test images as reference. Floor: 5 sets of 5,000 real training images the "
             "classifier never saw (mean ± sd). Blurred-real bar: the same kind of sets blurred by a 3x3 box "
             "filter (mean ± sd); `blurred test` is the test split blurred, against itself. Each row ran in its "
             "own process with the threads given; its load, arguments and peak memory are in "
             "`results-fashion.json`.", "",
             "**Reproduce.** `python benchmarks/fashion.py --seeds 0 1 --threads 1 --plain-sizes 64 32 --digits` "
             "(about 70 minutes on 2 cores; each row's own arguments are in `results-fashion.json`; `--report-only` "
             "rewrites this page from that file without training).",
             "", f"**Target.** {TARGETS['fashion-mnist']}.", ""]
    lines += summary_lines(result)
    lines += ["", "## What was tried", ""] + [f"- {line}" for line in TRIED]
    lines += ["", "## Details per row", ""]
    for r in result["runs"]:
        names = CLASS_NAMES.get(r["data"]) or [str(i) for i in range(len(r["class_shares"]))]
        shares = ", ".join(f"{c} {100 * v:.1f}" for c, v in zip(names, r["class_shares"]))
        rss = ", ".join(f"{k} {v:.0f} MB" for k, v in r["peak_rss_mb"].items())
        lines += [f"### {r['data']}, {r['recipe']}, seed {r['seed']}", "",
                  f"- {r['steps']} steps in {r['train_seconds']:.0f} s"
                  + (f" ({r['epochs']} epochs, budget {r['budget_seconds']:.0f} s)" if "epochs" in r else "")
                  + f"; peak RSS: {rss}"]
        if r.get("process_cpu_seconds"):
            lines.append("- process CPU seconds (user + system; the train process includes loading the data and "
                         "its final evaluation): "
                         + ", ".join(f"{k} {v:.0f}" for k, v in r["process_cpu_seconds"].items()))
        lines += [
                  f"- FD {r['frechet_distance']:.3f} ({r.get('frechet_distance_verdict', '')}); blurred bar "
                  f"{_pm(r['blurred_fd'], r['blurred_fd_sd'], 3)}, blurred test {r['blurred_fd_test']:.3f}",
                  f"- KID {r['kid']:.4g} ± {r['kid_sd']:.3g} (floor {r['kid_real']:.3g} ± {r['kid_real_sd']:.3g}; "
                  "the classifier's features are not Inception's: KID is on their own scale)",
                  f"- precision {r['precision']:.3f} (real {r['precision_real']:.3f}), recall {r['recall']:.3f} "
                  f"(real {r['recall_real']:.3f}), density {r['density']:.3f}, coverage {r['coverage']:.3f} "
                  f"(real {r['coverage_real']:.3f})",
                  f"- class shares (%): {shares}",
                  f"- classifier held-out accuracy {r['classifier_accuracy']:.3f}; {r['reference']}", ""]
        if r.get("config"):
            lines += [f"- recipe: `{json.dumps(r['config'])}`", ""]
    return "\n".join(lines) + "\n"


def summarise(runs: list[dict]) -> list[dict]:
    out = []
    for seed in sorted({r["seed"] for r in runs if r["data"] == "fashion-mnist"}):
        c = next((r for r in runs if r["seed"] == seed and r["recipe"] == "course" and r["data"] == "fashion-mnist"),
                 None)
        p = next((r for r in runs if r["seed"] == seed and r["recipe"] == "plain DCGAN"), None)
        if c is None:
            continue
        p32 = next((r for r in runs if r["seed"] == seed and r["recipe"] == plain_name(32)), None)
        out.append({"seed": seed, "fd_ratio": None if p is None else c["frechet_distance"] / p["frechet_distance"],
                    "course_fd_over_bar": c["fd_over_bar"],
                    "fd_ratio_32": None if p32 is None else c["frechet_distance"] / p32["frechet_distance"],
                    "course_under_bar": c["frechet_distance"] <= c["blurred_fd"],
                    "classes_ok": c["min_class_share"] >= 0.03, "course_train_seconds": c["train_seconds"],
                    "course_peak_rss_mb": c["peak_rss_mb"]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budget", type=float, default=600.0, help="training seconds of each row (default 600)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=("course", "plain", "digits"), default=None,
                   help="run these rows only (and keep the other rows of the JSON)")
    p.add_argument("--plain-sizes", type=int, nargs="+", default=[64], choices=(32, 64),
                   help="image sizes of the plain DCGAN rows (64: main.py; 32: the course's size)")
    p.add_argument("--digits", action="store_true", help="also the unconditional digits recipe")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny budgets, nothing written")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "fashion-benchmark")
    p.add_argument("--out-dir", type=Path, default=HERE)
    a = p.parse_args(argv)
    json_path, md_path = a.out_dir / "results-fashion.json", a.out_dir / "RESULTS-fashion.md"
    if a.report_only:
        result = json.loads(json_path.read_text())
        result["summary"] = summarise(result["runs"])
        atomic_write(md_path, markdown(result))
        print(f"wrote {md_path}")
        return 0
    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="fashion-bench-")) if a.quick else a.work
    work.mkdir(parents=True, exist_ok=True)
    quick_course = ["--steps", "20"] if a.quick else []
    budget = 5.0 if a.quick else a.budget
    n = 600 if a.quick else N_SAMPLES
    runs = []
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "argv": " ".join(argv if argv is not None else sys.argv[1:]),
             "machine": machine()}
    for seed in a.seeds:
        course_seconds = 0.0
        if a.only in (None, "course"):
            row, x = course_row("fashion-mnist", seed, a.threads, work, quick_course, n)
            row.update(judge(x), **stamp)
            runs.append(row)
            course_seconds = row["train_seconds"]
            print(json.dumps({k: row[k] for k in ("recipe", "seed", "steps", "train_seconds", "frechet_distance",
                                                  "blurred_fd", "min_class_share", "peak_rss_mb")}), flush=True)
        for size in a.plain_sizes if a.only in (None, "plain") else ():
            row, x = plain_row(seed, a.threads, max(budget, course_seconds), work, n, size)
            row.update(judge(x), **stamp)
            runs.append(row)
            print(json.dumps({k: row[k] for k in ("recipe", "seed", "steps", "train_seconds", "frechet_distance",
                                                  "blurred_fd", "min_class_share")}), flush=True)
    if a.digits or a.only == "digits":
        for seed in a.seeds:
            row, x = course_row("digits", seed, 1, work, ["--no-conditional", *quick_course], 1434, 16)
            row["recipe"] = "course, unconditional"
            row.update(judge(x, "digits", 16), **stamp)
            runs.append(row)
            print(json.dumps({k: row[k] for k in ("recipe", "seed", "steps", "train_seconds", "frechet_distance",
                                                  "frechet_distance_real", "blurred_fd")}), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "argv": " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "runs": runs, "summary": summarise(runs)}
    if a.quick:
        print(markdown(result))
        return 0
    if json_path.exists() and a.only:
        kept = [r for r in json.loads(json_path.read_text())["runs"]
                if not any(r["seed"] == s["seed"] and r["recipe"] == s["recipe"] and r["data"] == s["data"]
                           for s in runs)]
        result["runs"] = kept + runs
        result["summary"] = summarise(result["runs"])
    atomic_write(json_path, json.dumps(result, indent=2))
    atomic_write(md_path, markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
