"""Benchmark of the course's training recipes against the article's vanilla settings, on a CPU.

    python benchmarks/recipes.py                    # everything (~25 minutes on 2 cores)
    python benchmarks/recipes.py --only ring8 grid25 --seeds 0-9   # the 2-D recipes on 10 seeds
    python benchmarks/recipes.py --only ring8 --seeds 0 1
    python benchmarks/recipes.py --quick            # a smoke test of the script (seconds; results not written)
    python benchmarks/recipes.py --report-only      # rewrite RESULTS-recipes.md from the JSON, training nothing

For each dataset it trains ``course_lib.recipes.RECIPES[data]`` (the course's defaults; for digits a
class-conditional DCGAN, whose samples are drawn with uniformly random labels and judged as one set against the
whole data, classes read by the classifier), for digits also the same recipe without labels
(``conditional=False``, as in notebooks 04, 06 and 09), and
``course_lib.recipes.VANILLA[data]`` (the source article's hyper-parameters, made runnable) under the same
training-time budget (the course recipe stops at its own step count if that comes first; vanilla always gets
the whole budget; with one torch thread, the default, the budget is counted in CPU seconds of the training
process, which do not grow when other jobs share the machine), measures the samples with ``course_lib.metrics``
and writes ``benchmarks/results-recipes.json`` and ``benchmarks/RESULTS-recipes.md`` (each row with its machine
and date, the load, the CPU model and its instruction sets; the page with the published figures and the targets).
Only training time counts (sampling and metrics are outside the clock).

Definitions (never changed to pass a target): a 2-D sample is *high quality* within 3 std of its nearest centre;
a mode is covered by at least 20 high-quality samples out of 2,500. Digits: ``metrics.evaluate_images`` with
1,440 samples, k = 3 for precision/recall and k = 5 for density/coverage, each beside its real-versus-real floor
(held-out test split against the train split, 359 images).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import course_lib  # noqa: E402, F401  (before torch: course_lib.threads sizes its CPU threads)
import torch  # noqa: E402

from course_lib import metrics  # noqa: E402
from course_lib.machine import cpu_isa, cpu_model  # noqa: E402
from course_lib.recipes import RECIPES, VANILLA  # noqa: E402
from course_lib.train import GANTrainer, TrainConfig  # noqa: E402

BUDGET_S = {"ring8": 180.0, "grid25": 180.0, "digits": 120.0}  # the 2-D recipes run their steps within 3 CPU min
SEEDS = {"ring8": list(range(10)), "grid25": list(range(10)), "digits": [0]}
HQ_THRESHOLD = {"ring8": 0.97, "grid25": 0.90}  # high-quality share every seed must reach
COST_LIMIT_S = 180.0  # the 2-D recipes' cost target: at most 3 minutes of one CPU thread
TARGETS = {
    "ring8": "8/8 modes and >= 97 % high-quality samples on every seed 0-9 at the recipe's step count; cost at most "
             "3 minutes of one CPU thread; time reported as measured, beside the CPU model",
    "grid25": "25/25 modes and >= 90 % high-quality samples on every seed 0-9 at the recipe's step count; cost at "
              "most 3 minutes of one CPU thread; time reported as measured, beside the CPU model",
    "digits": "Frechet distance <= 3x the real-vs-real floor, all 10 classes with none below 5 %, precision and "
              "recall >= 90 % of their real-vs-real values (k = 3), <= 2 min of training",
}
PUBLISHED = {
    "ring8": [("vanilla GAN (Metz et al. 2017)", "about 1", ""), ("Unrolled GAN (Metz et al. 2017)", "7.6", "36%"),
              ("VEEGAN (Srivastava et al. 2017)", "8.0", "53%"), ("PacGAN2 (Lin et al. 2018)", "7.9", "95.6%"),
              ("vanilla GAN in the PacGAN paper", "6.3", "98.2%")],
    "grid25": [("VEEGAN (Srivastava et al. 2017)", "24.6", "40%"), ("PacGAN4 (Lin et al. 2018)", "24.8", "93.6%")],
}
RECIPE_NAMES = ("course", "unconditional", "vanilla")  # "unconditional": digits only
# Experiments that found something worth keeping, one line each (the page's "What was tried").
TRIED = (
    "A 2-D latent instead of 8-D (ring8, seeds 0-4): 95.7-97.5 % high quality against 93-96 %. A generator is a "
    "continuous map of connected noise, so some samples always fall between modes; with 2-D noise the borders "
    "between the modes' regions are thin.",
    "A learning rate decayed linearly to zero, with samples from an EMA of G: the raw generator hops between modes "
    "until the learning rate is small, and the EMA does the settling. An EMA with a shorter horizon (warm-up "
    "(1+s)/(c+s) with c = 4 or 2) is worse: it averages generators that still hop.",
    "A first-layer gain of 15 on G (ring8, batch 256, 4,000 steps): 98.00-99.00 % on seeds 0-9 of the AMD EPYC "
    "path, against 95.96-98.32 % for batch 512 and 3,500 steps without it.",
    "Floating-point paths: a run repeats exactly on one machine; the AMD EPYCs seen (Zen 3 with AVX2, an AVX-512 "
    "EPYC, Zen 5) give the same numbers to the digit, an Intel Xeon with AMX others, and one seed's share moves by "
    "a point or two between paths.",
    "Time per CPU: the same 4,000 ring8 steps take about 34 CPU s on a Zen 5 and 59 s on a Zen 3; grid25's 9,500 "
    "steps about 146 CPU s on an AVX-512 EPYC and 230 s on a Zen 3.",
    "grid25 (9,500 steps) on the AMD EPYC path, seeds 0-9: 25/25 modes and 90.20-97.00 % (median 95.62 %). A "
    "first-layer gain of 5 with 12,000 steps gives 94.68-97.04 %, at 1.26x the steps.",
    "The floor of a step (Zen 3, one thread): ring8's operations alone cost 5.5-6.6 ms against 13.5-16.4 ms for "
    "the real step, the rest being Python, autograd and allocation; grid25's matrix products alone take 6.4-7.4 ms "
    "of its 13.5-17.3 ms.",
    "A disconnected latent (a one-hot code of 32 values plus 0.1 x 2-D noise, R1 1.0, `--latent-codes`): 9 of 10 "
    "ring8 seeds at 100 % in 1,500 steps, but about one seed in ten ends with a code between two modes.",
    "Lazy R1 (`r1_every=8`): a cheaper step (R1's double backward is about 30 % of a ring8 step), but on the ring "
    "it loses seeds (one at 86 %); on the grid it buys the recipe's 9,500 steps.",
    "No gain, or a loss, on the ring: batch 1,024 (better, but 1.6x the time), width 256, depth 4, a D half as "
    "wide (1 of 10 seeds at 98 %), one hidden layer fewer (50-88 %), discriminator rejection sampling (+0.2 to +2 "
    "points), flushing denormals, fused or foreach Adam, two threads, and `torch.compile` (slower, and R1's double "
    "backward does not compile).",
    "Digits: BCE with batch norm in D stays at a Frechet distance of 35-45; hinge loss with spectral norm in D, "
    "TTUR and Adam betas (0, 0.9) reach about 7 without labels, and 0.71 with labels (projection discriminator; "
    "floor 1.48). The metric is strict about shape: a 3x3 blur of the real test digits drops their precision from "
    "0.92 to 0.28.",
)



def machine() -> dict:
    """The CPU model, its vector / matrix instruction sets (they decide the floating-point path), cores, threads."""
    isa = cpu_isa()
    return {"cpu": cpu_model(), "isa": isa, "amx": any(f.startswith("amx") for f in isa),
            "avx512": any(f.startswith("avx512") for f in isa), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def parse_seeds(values: list[str]) -> list[int]:
    """``["0-9"]`` -> 0..9, ``["0", "3"]`` -> [0, 3]; ranges include both ends."""
    seeds = []
    for v in values:
        lo, sep, hi = v.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(v)]
        except ValueError:
            raise SystemExit(f"--seeds: {v!r} is not a seed or a range like 0-9; pass integers, e.g. --seeds 0-9")
    return seeds


def load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def run_one(data: str, recipe: str, seed: int, budget_s: float, steps: int | None = None) -> dict:
    # the course recipe runs its own step count (within the budget); vanilla gets the whole time budget
    if recipe == "vanilla":
        params = {**VANILLA[data], "steps": 1_000_000}
    else:
        params = dict(RECIPES[data], **({"conditional": False} if recipe == "unconditional" else {}))
    if steps is not None:
        params["steps"] = steps
    cfg = TrainConfig(**{**params, "data": data, "seed": seed, "device": "cpu"})
    trainer = GANTrainer(cfg, verbose=False)
    load_before = load()
    # the clock of the budget: with one torch thread the CPU time of this process (the wall time it takes on an
    # idle core, and unchanged when other jobs share the machine), with more threads the wall time
    one_thread = torch.get_num_threads() == 1
    elapsed, cpu, chunk = 0.0, 0.0, 100
    while trainer.step < cfg.steps and (cpu if one_thread else elapsed) < budget_s:
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.fit(steps=min(chunk, cfg.steps - trainer.step), progress=False)
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
    row = {"data": data, "recipe": recipe, "seed": seed, "steps": trainer.step, "planned_steps": cfg.steps,
           "train_seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2), "threads": torch.get_num_threads(),
           "load_before": load_before, "load_after": load(),
           "config": {k: v for k, v in cfg.to_dict().items() if k in params}}
    if data in ("ring8", "grid25"):
        m = metrics.mode_metrics(trainer.sample(2500), trainer.dataset.centres, trainer.dataset.std,
                                 n_std=3.0, min_count=20)
        row.update(modes=m["modes"], num_modes=m["num_modes"], high_quality=round(m["high_quality"], 4))
    else:
        r = metrics.evaluate_images(trainer.sample(1440), data=data, image_size=cfg.image_size or 16, k=3)
        row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    return row


def budget_seconds(row: dict) -> float:
    """The seconds a run took: CPU seconds with one torch thread (what it takes on an idle core), else wall."""
    if row.get("threads") == 1 and row.get("cpu_seconds") is not None:
        return row["cpu_seconds"]
    return row["train_seconds"]


def one_thread_seconds(row: dict) -> float | None:
    """The CPU seconds of a one-thread run, the measure of the cost target; None for other rows."""
    return row["cpu_seconds"] if row.get("threads") == 1 and row.get("cpu_seconds") is not None else None


def ran_its_steps(row: dict) -> bool:
    """Whether the course recipe ran its own step count (a vanilla row runs for its time budget instead)."""
    return row["recipe"] == "vanilla" or row["steps"] >= row.get("planned_steps", row["steps"])


def passes(row: dict) -> bool:
    """The quality target of a row (2-D: every mode and the high-quality share, at the recipe's step count)."""
    if row["data"] in HQ_THRESHOLD:
        return (ran_its_steps(row) and row["modes"] == row["num_modes"]
                and row["high_quality"] >= HQ_THRESHOLD[row["data"]])
    return (row["frechet_distance"] <= 3 * row["frechet_distance_real"] and row["classes_present"] == 1.0
            and row["min_class_share"] >= 0.05 and row["precision"] >= 0.9 * row["precision_real"]
            and row["recall"] >= 0.9 * row["recall_real"])


def summary(rows: list[dict]) -> dict:
    """Per dataset and recipe: the seeds, whether every seed meets the quality target, the longest run and, on the
    2-D data, the modes and the high-quality share (min / median / max)."""
    out = {}
    for (data, recipe) in dict.fromkeys((r["data"], r["recipe"]) for r in rows):
        rs = [r for r in rows if r["data"] == data and r["recipe"] == recipe]
        costs = [one_thread_seconds(r) for r in rs]
        s = {"seeds": [r["seed"] for r in rs], "all_pass": all(passes(r) for r in rs),
             "mean_steps": sum(r["steps"] for r in rs) / len(rs),
             "max_budget_seconds": max(budget_seconds(r) for r in rs),
             "max_one_thread_seconds": None if None in costs else max(costs)}
        if "modes" in rs[0]:
            hq = sorted(r["high_quality"] for r in rs)
            s.update(mean_modes=sum(r["modes"] for r in rs) / len(rs), min_modes=min(r["modes"] for r in rs),
                     max_modes=max(r["modes"] for r in rs), min_high_quality=hq[0], max_high_quality=hq[-1],
                     median_high_quality=statistics.median(hq))
        out[f"{data}/{recipe}"] = s
    return out


def time_text(row: dict) -> str:
    """'62.3 CPU s' for a one-thread run ('*' when two runs shared the cores), '55.4 s wall, 2 threads' otherwise."""
    if one_thread_seconds(row) is not None:
        return f"{row['cpu_seconds']:.1f} CPU s" + ("*" if row.get("runs_at_once", 1) > 1 else "")
    return f"{row['train_seconds']:.1f} s wall, {row.get('threads') or row['machine']['torch_threads']} threads"


def date_text(row: dict) -> str:
    return str(row.get("date", "")).split(" ")[0]


def quality_text(row: dict) -> str:
    if not ran_its_steps(row):
        return f"not judged: stopped at {row['steps']} of {row['planned_steps']} steps"
    return "yes" if passes(row) else "no"


def changed_settings(rows: list[dict], data: str) -> dict[str, tuple]:
    """The settings whose value in the course rows of ``data`` differs from ``RECIPES[data]`` today, as
    ``{name: (measured, today)}``: the rows measured an earlier recipe and the benchmark should run again."""
    today = json.loads(json.dumps(RECIPES[data]))  # tuples as lists, as the JSON holds them
    out = {}
    for r in rows:
        if r["recipe"] == "course" and r.get("config"):
            for k in sorted(set(r["config"]) | set(today)):
                if k != "checkpoint_every" and r["config"].get(k) != today.get(k):
                    out[k] = (r["config"].get(k), today.get(k))
    return out


def seeds_text(seeds: list[int]) -> str:
    return f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 \
        else "seed" + ("s " if len(seeds) > 1 else " ") + ", ".join(map(str, seeds))


def summary_text(data: str, recipe: str, s: dict) -> str:
    """One sentence per dataset and recipe, under its table."""
    n = s["num_modes"] if "num_modes" in s else {"ring8": 8, "grid25": 25}[data]
    modes = (f"{s['min_modes']}/{n} modes on every seed" if s["min_modes"] == s["max_modes"] else
             f"{s['min_modes']}-{s['max_modes']} of {n} modes")
    text = (f"**{recipe}**, {seeds_text(s['seeds'])}: {modes}; high quality {100 * s['min_high_quality']:.2f} / "
            f"{100 * s['median_high_quality']:.2f} / {100 * s['max_high_quality']:.2f} % (min / median / max)")
    if recipe == "vanilla":
        return text + "."
    text += f"; quality target met on every seed: {'yes' if s['all_pass'] else 'no'}"
    if s["seeds"] != list(range(10)):
        text += " (the target asks for seeds 0-9)"
    cost = s.get("max_one_thread_seconds")
    if cost is None:
        return text + f"; longest run {s['max_budget_seconds']:.1f} s of wall time with more than one thread " \
                      "(the cost target counts one thread)."
    return text + (f"; longest run {cost:.1f} CPU s (cost target, at most {COST_LIMIT_S:.0f} s: "
                   f"{'met' if cost <= COST_LIMIT_S else 'not met'}).")


def markdown(result: dict) -> str:
    """RESULTS-recipes.md from a results-recipes.json: what is measured, how to reproduce it, the targets, one
    table per dataset (each row with its CPU and date), and what was tried."""
    lines = ["# Recipe benchmark: the 2-D and digits recipes", "",
             "**What it measures.** Each dataset's course recipe (`course_lib.recipes.RECIPES`) trains to its own "
             "step count, beside the source article's settings (`course_lib.recipes.VANILLA`, made runnable) given "
             "a fixed time budget; both are judged the same way by `course_lib.metrics`. On the 2-D mixtures a "
             "sample is *high quality* within 3 standard deviations of its nearest centre, and a mode is covered "
             "by at least 20 high-quality samples out of 2,500 drawn from the EMA generator. Digits: "
             "`metrics.evaluate_images` on 1,440 samples, each figure beside its real-versus-real floor. Time is "
             "the CPU time of the training process with one torch thread (what the run takes on an idle core), "
             "or wall time with more threads. Each row names its CPU and date; the load, versions and instruction "
             "sets are in `results-recipes.json`.", "",
             "**Reproduce.** `python benchmarks/recipes.py` runs every dataset and recipe and rewrites this page "
             "(`--only ring8 grid25 --seeds 0-9` for the 2-D recipes alone; `--report-only` rewrites the page "
             "from `results-recipes.json` without training).", "",
             "**Targets.**", ""]
    lines += [f"- {data}: {TARGETS[data]}." for data in TARGETS] + [""]
    summaries = summary(result["runs"])
    for data in ("ring8", "grid25", "digits"):
        rows = [r for r in result["runs"] if r["data"] == data]
        if not rows:
            continue
        lines += [f"## {data}", ""]
        if data in PUBLISHED:
            lines += ["Published figures (same data and definitions): " +
                      "; ".join(f"{n}: {mo} modes" + (f", {hq} high quality" if hq else "")
                                for n, mo, hq in PUBLISHED[data]) + ".", ""]
        if data != "digits":
            lines += ["| recipe | seed | steps | time | modes | high quality | quality target | CPU | date |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                lines.append(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {time_text(r)} | "
                             f"{r['modes']}/{r['num_modes']} | {100 * r['high_quality']:.2f} % | {quality_text(r)} | "
                             f"{r['machine']['cpu']} | {date_text(r)} |")
            changed = changed_settings(rows, data)
            if changed:
                lines += ["", "The course rows above measured an earlier setting of the recipe (" +
                          ", ".join(f"`{k}` {old} where it is now {'unset' if new is None else new}"
                                    for k, (old, new) in changed.items()) +
                          f"): `python benchmarks/recipes.py --only {data} --seeds 0-9` measures today's."]
            if any(r.get("runs_at_once", 1) > 1 for r in rows):
                lines += ["", "\\* Two runs at once, one on each core."]
            for recipe in RECIPE_NAMES:
                s = summaries.get(f"{data}/{recipe}")
                if s:
                    lines += ["", summary_text(data, recipe, dict(s, num_modes=rows[0]["num_modes"]))]
        else:
            keys = ["frechet_distance", "precision", "recall", "coverage", "min_class_share"]
            lines += ["| recipe | seed | steps | time | " + " | ".join(keys) + " | target met | CPU | date |",
                      "|---|---|---|---|" + "---|" * len(keys) + "---|---|---|"]
            for r in rows:
                lines.append(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {time_text(r)} | " +
                             " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {'yes' if passes(r) else 'no'} | "
                             f"{r['machine']['cpu']} | {date_text(r)} |")
            r = rows[0]
            lines.append("| real-vs-real floor | | | | " + " | ".join(f"{r[k + '_real']:.3f}" for k in keys)
                         + " | | | |")
            lines.append(f"\nClassifier held-out accuracy {r['classifier_accuracy']:.3f}; set metrics on chunks of "
                         f"{r['n_eval']} samples, k = {r['k']} (precision/recall), k = {r['k_density']} "
                         "(density/coverage); density, classifier score and memorisation are in the JSON.")
        lines.append("")
    lines += ["The Fashion-MNIST recipe has its own page: [RESULTS-fashion.md](RESULTS-fashion.md).", "",
              "## What was tried", ""] + [f"- {line}" for line in TRIED] + [""]
    return "\n".join(lines)


def merge_runs(before: dict, rows: list[dict]) -> list[dict]:
    """The runs of ``before`` (a results-recipes.json) whose dataset and recipe ``rows`` did not re-run, each
    keeping the machine and date it ran on (from the file, if the row has none), then ``rows``; sorted."""
    redone = {(r["data"], r["recipe"]) for r in rows}
    kept = [{"machine": before.get("machine"), "date": before.get("date"), **r}
            for r in before.get("runs", []) if (r["data"], r["recipe"]) not in redone]
    order = list(BUDGET_S)
    return sorted(kept + rows, key=lambda r: (order.index(r["data"]), RECIPE_NAMES.index(r["recipe"]), r["seed"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(BUDGET_S), default=list(BUDGET_S))
    p.add_argument("--recipes", nargs="+", choices=RECIPE_NAMES, default=list(RECIPE_NAMES))
    p.add_argument("--seeds", nargs="+", help="seeds or ranges, e.g. 0-9 (default: 0-9 for the mixtures, 0 for digits)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the budgets are CPU seconds of one thread, see the report)")
    p.add_argument("--quick", action="store_true", help="a few steps only, results not written")
    p.add_argument("--out-dir", default=str(Path(__file__).parent))
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite RESULTS-recipes.md from results-recipes.json")
    args = p.parse_args(argv)
    if args.report_only:
        result = json.loads((Path(args.out_dir) / "results-recipes.json").read_text())
        (Path(args.out_dir) / "RESULTS-recipes.md").write_text(markdown(result))
        print(f"wrote {Path(args.out_dir) / 'RESULTS-recipes.md'}")
        return 0
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    rows, here, now = [], machine(), time.strftime("%Y-%m-%d %H:%M")
    for data in args.only:
        for recipe in [r for r in args.recipes if r != "unconditional" or data == "digits"]:
            for seed in seeds or SEEDS[data]:
                row = run_one(data, recipe, seed, 3.0 if args.quick else BUDGET_S[data], 20 if args.quick else None)
                rows.append(dict(row, machine=here, date=now))
                shown = {k: row[k] for k in ("data", "recipe", "seed", "steps", "train_seconds", "cpu_seconds",
                                             "load_before", "modes", "high_quality", "frechet_distance",
                                             "frechet_distance_real", "precision", "recall", "min_class_share")
                         if k in row}
                print(json.dumps(shown), flush=True)
    out = Path(args.out_dir)
    previous = out / "results-recipes.json"
    if not args.quick and previous.is_file():  # keep the runs of the datasets / recipes not re-run now
        rows = merge_runs(json.loads(previous.read_text()), rows)
    result = {"date": now, "machine": here, "budgets_s": BUDGET_S,
              "targets": TARGETS, "published": PUBLISHED, "summary": summary(rows), "runs": rows}
    print(json.dumps(result["summary"], indent=1))
    if not args.quick:
        (out / "results-recipes.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "RESULTS-recipes.md").write_text(markdown(result))
        print(f"wrote {out / 'results-recipes.json'} and {out / 'RESULTS-recipes.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
