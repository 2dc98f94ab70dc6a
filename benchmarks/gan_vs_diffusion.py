"""GANs and diffusion side by side: the course's GAN recipe and its DDPM trained for the same CPU time on
Fashion-MNIST 32x32, measured with the same metrics, and what each costs to sample.

    python benchmarks/gan_vs_diffusion.py --budgets 10 30 --seeds 0 --jobs 2   # the page's rows (about 45 min)
    python benchmarks/gan_vs_diffusion.py --report-only                         # rewrite the page from the JSON

For every (family, budget in CPU minutes, seed), in its own process with one torch thread:

1. **Training.** The family's shipped recipe (``course_lib.pretrained``: ``fashion-recipe`` for the GAN, hinge
   loss, spectral norm, TTUR and EMA; ``fashion-ddpm`` for the DDPM, a width-16 U-Net with T = 1000), with the seed
   and a step count chosen so the training takes the budget: a separate probe trainer times ``PROBE_STEPS`` steps
   (after ``WARMUP_STEPS``) in CPU seconds, and the run gets ``budget / seconds per step`` steps, so learning-rate
   schedules see their real length. The training's CPU seconds are recorded as measured.
2. **Quality.** ``N_EVAL`` samples (seed 0; the DDPM with 50 DDIM steps, and again with 10) measured by
   ``course_lib.evaluation.evaluate_images``: Frechet distance and KID in the course classifier's features,
   precision / recall (k = 3), coverage (k = 5), and the class shares the classifier reads (smallest share).
3. **Sampling cost.** Images per second on the CPU (one thread, batch ``SPEED_N``) at 1 network evaluation per
   image (the GAN), 10 and 50 (DDIM) and 1,000 (ancestral DDPM sampling).

Budgets are CPU time of the training process, so two runs side by side on a 2-core machine (``--jobs 2``) each get
their budget; wall time is recorded beside it. Results go to ``benchmarks/results-gan-vs-diffusion.json`` (rows
keyed by family, budget and seed; rows not run again are kept) and the page ``RESULTS-gan-vs-diffusion.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib import data as data_mod, machine, pretrained  # noqa: E402  (course_lib first: its thread rule)

import torch  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results-gan-vs-diffusion.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS-gan-vs-diffusion.md"
RUNS = ROOT / "runs" / "gan-vs-diffusion"
FAMILIES = {"gan": "fashion-recipe", "ddpm": "fashion-ddpm"}
WARMUP_STEPS, PROBE_STEPS = 5, 30
N_EVAL = 1000
DDIM_STEPS = (50, 10)          # the first is the DDPM's row; the second shows what fewer steps cost in quality
SPEED_N = {1: 2048, 10: 64, 50: 32, 1000: 8}   # images timed at each number of network evaluations per image
COMMAND = "python benchmarks/gan_vs_diffusion.py --budgets 10 30 --seeds 0 --jobs 2"


# What the rows show, one line each (the page's last section): a reading of the rows measured on the date it
# names; measure again, then read again.
READING = (
    'What the rows show (rows of 2026-12-06, Intel Xeon family 6 model 167)',
    '**Quality at equal CPU time: the GAN leads on every metric in all three pairs, recall included**, so the'
    " DDPM's deficit is not fidelity traded for diversity: at 10 minutes (seeds 0 and 1) FD 4.16 and 6.25 "
    'against 60.3 and 54.7, recall 0.76 and 0.72 against 0.60 and 0.53; at 30 minutes (seed 0) FD 1.82 '
    "against 35.0, recall 0.84 against 0.64. Diffusion's better coverage in the literature (Dhariwal & Nichol"
    ' 2021) comes at far larger scale; this small DDPM is still learning at 30 CPU minutes (FD 60.3 to 35.0 '
    'from 10 to 30 minutes, seed 0).',
    '**Classes.** The DDPM over-produces shirts and bags (35.5 % and 27.3 % of its samples at 10 minutes with'
    ' seed 0; 40.4 % and 21.2 % with seed 1) and nearly drops a class (trousers 1.1 %; sneakers 1.0 %); at 30'
    " minutes its smallest class is 2.8 %. The GAN's smallest class is 5.8-8.2 %.",
    '**Sampling.** The GAN draws 5,000-7,200 images a second on one CPU thread; the DDPM 15.6-16.7 with 50 '
    'DDIM steps, 60-70 with 10 (its FD then 10-27 % worse: 66.4, 69.4 and 44.5 against 60.3, 54.7 and 35.0) '
    'and 0.72-0.74 with ancestral sampling over all 1,000 steps: its cost per image follows the network '
    'evaluations.',
    "**Equal time, as measured.** Each run's steps come from a CPU-time probe taken while the other run of "
    "its pair (and, in the 30-minute pair's first quarter hour, a third training process) shared the two "
    'cores: the runs got 559-1,729 CPU s against budgets of 600 and 1,800, the GAN 7-8 % less than the DDPM '
    'in each pair.',
    '**Not shown.** The 30-minute pair has one seed; the DDPM is one small U-Net (width 16, so that a CPU '
    'samples it in seconds); there are no GPU rows (none was lent; the same command measures one).',
)


def _trainer(config, dataset, out_dir=None):
    from course_lib.diffusion_train import DDPMTrainer
    from course_lib.families import family_of
    from course_lib.train import GANTrainer

    cls = DDPMTrainer if family_of(config) == "ddpm" else GANTrainer
    return cls(config, dataset=dataset, out_dir=out_dir, verbose=False)


def steps_for_budget(config, dataset, cpu_seconds: float, warmup: int = WARMUP_STEPS,
                     probe: int = PROBE_STEPS) -> tuple[int, float]:
    """(steps, CPU seconds per step): how many steps of ``config`` fit in ``cpu_seconds`` of this process's CPU
    time, timed on a separate trainer (``warmup`` untimed steps, then ``probe`` timed ones). At least 1 step."""
    probe_trainer = _trainer(config, dataset)
    probe_trainer.fit(warmup, progress=False)
    t0 = time.process_time()
    probe_trainer.fit(probe, progress=False)
    per_step = (time.process_time() - t0) / probe
    return max(1, int(cpu_seconds / per_step)), per_step


def class_shares(x: torch.Tensor) -> list[float]:
    """The share of each Fashion-MNIST class among images ``x`` (N, 1, 32, 32) in [-1, 1], as the course's
    classifier reads them (``image_metrics.class_coverage``); 10 values in [0, 1] summing to 1."""
    from course_lib.evaluation import real_reference
    from course_lib.image_metrics import class_coverage

    clf = real_reference("fashion-mnist", 32, 0)["classifier"]
    return [round(float(v), 4) for v in class_coverage(clf.embed(x)[1], clf.num_classes)["histogram"]]


def quality(x: torch.Tensor) -> dict:
    """The metrics of samples ``x`` (N, 1, 32, 32) in [-1, 1] against Fashion-MNIST's held-out test split."""
    from course_lib.evaluation import evaluate_images

    m = evaluate_images(x, "fashion-mnist", 32, seed=0, standard_fid=False)
    keys = ("frechet_distance", "frechet_distance_real", "kid", "precision", "recall", "coverage",
            "min_class_share", "classes_present")
    return {k: m[k] for k in keys} | {"class_shares": class_shares(x)}


def sampling_speed(checkpoint: Path, family: str, speed_n: dict[int, int]) -> dict[str, float]:
    """Images per second on the CPU at each number of network evaluations per image the family offers:
    ``{"1": ...}`` for a GAN; ``{"10", "50", "1000"}`` for a DDPM (DDIM, DDIM, ancestral). A short untimed call
    first, so one-off set-up is not counted."""
    from course_lib.generation import load_model, timed_sample

    out = {}
    for evals, n in speed_n.items():
        if (family == "gan") != (evals == 1):
            continue
        steps = None if family == "gan" or evals == 1000 else evals
        model = load_model(checkpoint, sampling_steps=steps)
        model.sample(min(n, 4), seed=1)
        out[str(evals)] = timed_sample(model, n, seed=0)[1]["images_per_second"]
    return out


def run_one(family: str, minutes: float, seed: int, runs: Path = RUNS, n_eval: int = N_EVAL,
            speed_n: dict[int, int] | None = None, probe: int = PROBE_STEPS) -> dict:
    """Train ``family`` ("gan" or "ddpm") for ``minutes`` of CPU time with ``seed``, measure it; return its row."""
    from course_lib.generation import load_model, timed_sample

    torch.set_num_threads(1)
    base = pretrained.get(FAMILIES[family]).config()
    base = dataclasses.replace(base, seed=seed, steps=10**6, checkpoint_every=10**6)
    dataset = data_mod.load(base.data, image_size=base.image_size, split=base.split)
    steps, per_step = steps_for_budget(base, dataset, minutes * 60, probe=probe)
    config = dataclasses.replace(base, steps=steps)
    out = runs / f"{family}-{minutes:g}min-seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    trainer = _trainer(config, dataset, out_dir=out)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trainer.fit(progress=False)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if trainer.step != steps:
        raise SystemExit(f"{family}: training stopped at step {trainer.step} of {steps}")
    checkpoint = out / "checkpoint.pt"
    row = {"family": family, "recipe": FAMILIES[family], "budget_minutes": minutes, "seed": seed, "steps": steps,
           "probe_cpu_seconds_per_step": round(per_step, 4), "train_cpu_seconds": round(cpu, 1),
           "train_wall_seconds": round(wall, 1), "n_eval": n_eval}
    for i, ddim in enumerate(DDIM_STEPS if family == "ddpm" else (None,)):
        model = load_model(checkpoint, sampling_steps=ddim)
        x, cost = timed_sample(model, n_eval, seed=0)
        q = quality(x)
        if i == 0:
            row.update(q, network_evaluations_per_image=cost["network_evaluations_per_image"])
        else:
            row[f"ddim{ddim}"] = {k: q[k] for k in ("frechet_distance", "kid", "precision", "recall", "coverage",
                                                   "min_class_share")}
    row["images_per_second"] = sampling_speed(checkpoint, family, speed_n or SPEED_N)
    row.update(cpu_model=f"{machine.cpu_model()}, {os.cpu_count()} CPUs", threads=torch.get_num_threads(),
               torch=torch.__version__, python=platform.python_version(),
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    return row


def key(row: dict) -> str:
    return f"{row['family']}/{row['budget_minutes']:g}/{row['seed']}"


# ----------------------------------------------------------------------------- the page

def _f(v, spec: str = ".3g") -> str:
    return "" if v is None else format(v, spec)


def write_page(rows: dict[str, dict], path: Path = RESULTS_MD) -> str:
    """Rewrite the page from ``rows`` (the JSON's values); return its text."""
    ordered = sorted(rows.values(), key=lambda r: (r["budget_minutes"], r["seed"], r["family"]))
    machines = sorted({r["cpu_model"] for r in ordered})
    lines = ["# GANs and diffusion at equal training time", "",
             "The course's GAN recipe (`pretrained:fashion-recipe`'s settings: hinge loss, spectral norm, TTUR, EMA) "
             "and its DDPM (`pretrained:fashion-ddpm`'s: a width-16 U-Net, T = 1000, EMA) trained on Fashion-MNIST "
             "32x32 for the same CPU time, one torch thread each, then measured the same way: "
             f"{N_EVAL:,} samples against the held-out test split in the course classifier's features "
             "(`course_lib.evaluation.evaluate_images`). Lower is better for FD and KID; higher for precision, "
             "recall and coverage; 10 % is the best smallest class share. The DDPM is sampled with 50 DDIM steps; "
             "its FD with 10 steps is in the last column.", "",
             f"Command: `{COMMAND}` (`--report-only` rewrites this page from "
             "`results-gan-vs-diffusion.json`). Machine: " + "; ".join(machines) + ".", "",
             "| budget (CPU min) | family | seed | steps | training CPU s | FD | KID (x 10^3) | precision | recall | "
             "coverage | smallest class | FD, 10 DDIM steps |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ordered:
        lines.append(f"| {r['budget_minutes']:g} | {r['family'].upper()} | {r['seed']} | {r['steps']:,} | "
                     f"{r['train_cpu_seconds']:.0f} | {_f(r['frechet_distance'])} | {_f(r['kid'])} | "
                     f"{_f(r['precision'], '.3f')} | {_f(r['recall'], '.3f')} | {_f(r['coverage'], '.3f')} | "
                     f"{100 * r['min_class_share']:.1f} % | "
                     f"{_f(r.get('ddim10', {}).get('frechet_distance'))} |")
    real = sorted({round(r["frechet_distance_real"], 3) for r in ordered if "frechet_distance_real" in r})
    if real:
        floor = f"{real[0]:.3g}" if len(real) == 1 else f"{real[0]:.3g} to {real[-1]:.3g}"
        lines += ["", f"Real images of the same number score FD {floor} against the same reference (the floor: "
                  "training images the classifier never saw)."]
    alone = all(r.get("speed_alone") for r in ordered)
    lines += ["", "## Sampling cost", "",
              "Images per second on the CPU, one thread, by network evaluations per image (1: the GAN's generator; "
              "10 and 50: DDIM; 1,000: ancestral DDPM sampling over every step of the schedule), measured "
              + ("alone, one model after the other (`--speed-only`)." if alone else
                 "beside the other run of the pair (rerun `--speed-only` alone for clean figures)."), "",
              "| budget (CPU min) | family | seed | 1 | 10 | 50 | 1,000 |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in ordered:
        s = r["images_per_second"]
        lines.append(f"| {r['budget_minutes']:g} | {r['family'].upper()} | {r['seed']} | "
                     + " | ".join(_f(s.get(k), ".4g") for k in ("1", "10", "50", "1000")) + " |")
    lines += ["", "## Class shares", "",
              "The share of each class among the samples (%), as the course classifier reads them; real data has "
              "10 % each.", "",
              "| budget (CPU min) | family | seed | " + " | ".join(data_mod.FASHION_CLASSES) + " |",
              "|---:|---|---:|" + "---:|" * 10]
    for r in ordered:
        lines.append(f"| {r['budget_minutes']:g} | {r['family'].upper()} | {r['seed']} | "
                     + " | ".join(f"{100 * v:.1f}" for v in r["class_shares"]) + " |")
    lines += ["", f"## {READING[0]}", ""] + [f"- {line}" for line in READING[1:]]
    lines += ["", "Each row: " + "; ".join(sorted({f"{r['date']}, torch {r['torch']}, Python {r['python']}"
                                                   for r in ordered})) + "."]
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", type=float, nargs="+", default=[10, 30], help="training CPU minutes (default 10 30)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--families", nargs="+", choices=tuple(FAMILIES), default=list(FAMILIES))
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one process and one thread each")
    p.add_argument("--report-only", action="store_true", help="rewrite the page from the JSON, measure nothing")
    p.add_argument("--json", type=Path, default=RESULTS_JSON)
    p.add_argument("--page", type=Path, default=RESULTS_MD)
    p.add_argument("--runs", type=Path, default=RUNS, help="where the runs' checkpoints go")
    p.add_argument("--smoke", action="store_true", help="seconds-long runs and a few samples (the test)")
    p.add_argument("--speed-only", action="store_true",
                   help="measure the sampling speed of the runs already in the JSON again, one after the other "
                        "(for figures taken with nothing else running), and rewrite the page")
    p.add_argument("--one", nargs=3, metavar=("FAMILY", "MINUTES", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    small = dict(n_eval=64, speed_n={1: 8, 10: 2, 50: 2, 1000: 1}, probe=2) if args.smoke else {}
    if args.one:
        row = run_one(args.one[0], float(args.one[1]), int(args.one[2]), args.runs, **small)
        print(json.dumps(row))
        return 0
    rows = json.loads(args.json.read_text()) if args.json.is_file() else {}
    if args.speed_only:
        torch.set_num_threads(1)
        for row in rows.values():
            run = args.runs / f"{row['family']}-{row['budget_minutes']:g}min-seed{row['seed']}" / "checkpoint.pt"
            if not run.is_file():
                raise SystemExit(f"{run} is missing: train the row again (drop --speed-only)")
            row["images_per_second"] = sampling_speed(run, row["family"], SPEED_N)
            row["speed_alone"] = True
            print(f"{key(row)}: {row['images_per_second']}", flush=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    elif not args.report_only:
        todo = sorted(((f, b, s) for b in args.budgets for s in args.seeds for f in args.families),
                      key=lambda t: (-t[1], t[0] != "ddpm"))        # longest first, so the jobs end together
        env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_THREADS="1")
        running: list[tuple[subprocess.Popen, tuple]] = []
        while todo or running:
            while todo and len(running) < max(1, args.jobs):
                f, b, s = todo.pop(0)
                cmd = [sys.executable, __file__, "--one", f, str(b), str(s), "--runs", str(args.runs)]
                print(f"start {f}, {b:g} CPU min, seed {s}", flush=True)
                running.append((subprocess.Popen(cmd + (["--smoke"] if args.smoke else []), env=env,
                                                 stdout=subprocess.PIPE, text=True), (f, b, s)))
            done = next(((proc, what) for proc, what in running if proc.poll() is not None), None)
            if done is None:
                time.sleep(2)
                continue
            running.remove(done)
            proc, what = done
            stdout, _ = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"the run {what} failed (exit {proc.returncode})")
            row = json.loads(stdout.strip().splitlines()[-1])
            rows[key(row)] = row
            print(f"done {key(row)}: {row['steps']} steps, FD {row['frechet_distance']:.3g}", flush=True)
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(write_page(rows, args.page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
