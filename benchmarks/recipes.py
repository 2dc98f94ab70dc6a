"""Benchmark of the course's training recipes against the article's vanilla settings, on a CPU.

    python benchmarks/recipes.py                    # everything (~25 minutes on 2 cores)
    python benchmarks/recipes.py --only ring8 grid25 --seeds 0-9   # the 2-D recipes on 10 seeds
    python benchmarks/recipes.py --only ring8 --seeds 0 1
    python benchmarks/recipes.py --quick            # a smoke test of the script (seconds; results not written)
    python benchmarks/recipes.py --report-only      # rewrite the report from the JSON (after editing the notes)

For each dataset it trains ``course_lib.recipes.RECIPES[data]`` (the course's defaults; for digits a
class-conditional DCGAN, whose samples are drawn with uniformly random labels and judged as one set against the
whole data, classes read by the classifier), for digits also the same recipe without labels
(``conditional=False``, as in notebooks 04, 06 and 09), and
``course_lib.recipes.VANILLA[data]`` (the source article's hyper-parameters, made runnable) under the same
training-time budget (the course recipe stops at its own step count if that comes first; vanilla always gets
the whole budget; with one torch thread, the default, the budget is counted in CPU seconds of the training
process, which do not grow when other jobs share the machine), measures the samples with ``course_lib.metrics``
and writes ``benchmarks/results-recipes.json`` and ``benchmarks/RESULTS-recipes.md`` (with the machine, the
load, the seeds, the CPU model and its instruction sets, and the published figures to beat). The 2-D rows also
report the margin of the high-quality share above its threshold: a seed should clear it by one point
(``MARGIN``), since another CPU's floating-point path moves one seed's share by a point or two. Only training
time counts (sampling and metrics are outside the clock).

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

import torch  # noqa: E402

from course_lib import metrics  # noqa: E402
from course_lib.recipes import RECIPES, VANILLA  # noqa: E402
from course_lib.train import GANTrainer, TrainConfig  # noqa: E402

BUDGET_S = {"ring8": 30.0, "grid25": 60.0, "digits": 120.0}
SEEDS = {"ring8": list(range(10)), "grid25": list(range(10)), "digits": [0]}
MARGIN = 0.01  # each seed of a 2-D recipe should clear its high-quality threshold by one point (see the notes)
TARGETS = {
    "ring8": "8/8 modes and >= 97% high-quality samples on every seed, <= 30 s of training each",
    "grid25": "25/25 modes and >= 94% high-quality samples on every seed, <= 60 s of training each",
    "digits": "Frechet distance <= 3x the real-vs-real floor, all 10 classes with none below 5%, precision and "
              "recall >= 90% of their real-vs-real values (k = 3), <= 2 min of training",
}
PUBLISHED = {
    "ring8": [("vanilla GAN (Metz et al. 2017)", "about 1", ""), ("Unrolled GAN (Metz et al. 2017)", "7.6", "36%"),
              ("VEEGAN (Srivastava et al. 2017)", "8.0", "53%"), ("PacGAN2 (Lin et al. 2018)", "7.9", "95.6%"),
              ("vanilla GAN in the PacGAN paper", "6.3", "98.2%")],
    "grid25": [("VEEGAN (Srivastava et al. 2017)", "24.6", "40%"), ("PacGAN4 (Lin et al. 2018)", "24.8", "93.6%")],
}
RECIPE_NAMES = ("course", "unconditional", "vanilla")  # "unconditional": digits only
NOTES_FILE = Path(__file__).with_name("recipes_notes.md")


def machine() -> dict:
    """The CPU model, its vector / matrix instruction sets (they decide the floating-point path), cores, threads."""
    cpu, flags, ids = "", set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not cpu:
                cpu = value
            elif key == "flags" and not flags:
                flags = set(value.split())
            elif key in ("cpu family", "model") and key not in ids:
                ids[key] = value
    except OSError:
        pass
    cpu = cpu or platform.processor() or "unknown CPU"  # /proc/cpuinfo first: processor() is often "x86_64"
    if ids:  # the model name alone ("AMD EPYC") does not tell a Zen 3 from a Zen 5
        cpu = f"{cpu} (family {ids.get('cpu family', '?')} model {ids.get('model', '?')})"
    isa = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    return {"cpu": cpu, "isa": isa, "amx": any(f.startswith("amx") for f in isa),
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
           "train_seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2), "threads": torch.get_num_threads(), "load_before": load_before, "load_after": load(),
           "config": {k: v for k, v in cfg.to_dict().items() if k in params}}
    if data in ("ring8", "grid25"):
        m = metrics.mode_metrics(trainer.sample(2500), trainer.dataset.centres, trainer.dataset.std,
                                 n_std=3.0, min_count=20)
        row.update(modes=m["modes"], num_modes=m["num_modes"], high_quality=round(m["high_quality"], 4))
    else:
        r = metrics.evaluate_images(trainer.sample(1440), data=data, image_size=cfg.image_size or 16, k=3)
        row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    return row


HQ_THRESHOLD = {"ring8": 0.97, "grid25": 0.94}


def budget_seconds(row: dict) -> float:
    """The seconds judged against the budget: CPU seconds with one torch thread, else wall seconds."""
    return row["cpu_seconds"] if row.get("threads") == 1 and "cpu_seconds" in row else row["train_seconds"]


def margin(row: dict) -> float:
    """Points of high-quality share above the threshold (2-D rows)."""
    return round(100 * (row["high_quality"] - HQ_THRESHOLD[row["data"]]), 1)


def passes(row: dict) -> bool:
    if row["data"] in HQ_THRESHOLD:
        return (row["modes"] == row["num_modes"] and row["high_quality"] >= HQ_THRESHOLD[row["data"]]
                and budget_seconds(row) <= BUDGET_S[row["data"]] * 1.02)  # 2 %: the last chunk of 100 steps
    return (row["frechet_distance"] <= 3 * row["frechet_distance_real"] and row["classes_present"] == 1.0
            and row["min_class_share"] >= 0.05 and row["precision"] >= 0.9 * row["precision_real"]
            and row["recall"] >= 0.9 * row["recall_real"])


def summary(rows: list[dict]) -> dict:
    out = {}
    for (data, recipe) in dict.fromkeys((r["data"], r["recipe"]) for r in rows):
        rs = [r for r in rows if r["data"] == data and r["recipe"] == recipe]
        s = {"seeds": [r["seed"] for r in rs], "all_pass": all(passes(r) for r in rs),
             "max_train_seconds": max(r["train_seconds"] for r in rs),
             "mean_steps": sum(r["steps"] for r in rs) / len(rs),
             "max_budget_seconds": max(budget_seconds(r) for r in rs)}
        if "modes" in rs[0]:
            hq = sorted(r["high_quality"] for r in rs)
            s.update(mean_modes=sum(r["modes"] for r in rs) / len(rs), min_modes=min(r["modes"] for r in rs),
                     mean_high_quality=sum(hq) / len(rs), min_high_quality=hq[0], max_high_quality=hq[-1],
                     median_high_quality=statistics.median(hq),
                     all_clear_margin=all(passes(r) and margin(r) >= 100 * MARGIN for r in rs))
        out[f"{data}/{recipe}"] = s
    return out


def isa_sentence(m: dict) -> str:
    if "isa" not in m:
        return ""
    return (f"Instruction sets: AVX-512 {'yes' if m['avx512'] else 'no'}, AMX {'yes' if m['amx'] else 'no'} "
            f"({', '.join(m['isa']) or 'none reported'}). ")


def machine_text(m: dict) -> str:
    threads = f"{m['torch_threads']} torch thread" + ("" if m["torch_threads"] == 1 else "s")
    return (f"{m['cpu']}, {m['cores']} cores, {threads}, torch {m['torch']}, "
            f"Python {m['python']}. " + isa_sentence(m))


def runs_text(rows: list[dict]) -> str:
    """Where and when ``rows`` ran (each row carries its machine and date: ``main``, ``merge_runs``)."""
    return " ".join(dict.fromkeys(f"Run {r['date']}, machine: {machine_text(r['machine'])}" for r in rows)).strip()


def markdown(result: dict) -> str:
    lines = ["# Recipe benchmark: the course's recipes against the article's vanilla settings", "",
             "Written by `python benchmarks/recipes.py` (see its docstring for the definitions). Each section "
             "names the machine and the date of its runs. Training times: `train s` is wall clock, `CPU s` the CPU "
             "time of the training process; with one torch thread the CPU time is what the run takes on an idle "
             "core and is the one judged against the budget (the wall time grows when other "
             "jobs share the machine). The load average (1 min) before each run is in the 2-D tables and, with the "
             "load after it, in `results-recipes.json` (a load above 1 means other jobs shared the machine).", ""]
    for data in ("ring8", "grid25", "digits"):
        rows = [r for r in result["runs"] if r["data"] == data]
        if not rows:
            continue
        lines += [f"## {data}", "", runs_text(rows), "", f"Target: {TARGETS[data]}.", ""]
        if data in PUBLISHED:
            lines += ["Published figures to beat (same data and definitions): " +
                      "; ".join(f"{n}: {mo} modes" + (f", {hq} high quality" if hq else "")
                                for n, mo, hq in PUBLISHED[data]) + ".", ""]
        if data != "digits":
            lines += ["| recipe | seed | steps | train s | CPU s | load | modes | high quality | margin (points) "
                      "| target met |", "|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                cpu = f"{r['cpu_seconds']:.1f}" if "cpu_seconds" in r else "-"
                lines.append(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {r['train_seconds']:.1f} | {cpu} | "
                             f"{r['load_before']} | {r['modes']}/{r['num_modes']} | {100 * r['high_quality']:.1f}% | "
                             f"{margin(r):+.1f} | {'yes' if passes(r) else 'no'} |")
            for recipe in RECIPE_NAMES:
                s = result["summary"].get(f"{data}/{recipe}")
                if s:
                    med = s.get("median_high_quality")
                    spread = (f"high quality min {100 * s['min_high_quality']:.1f}% / median {100 * med:.1f}% / "
                              f"max {100 * s['max_high_quality']:.1f}%" if med is not None else
                              f"mean {100 * s['mean_high_quality']:.1f}% high quality (min "
                              f"{100 * s['min_high_quality']:.1f}%)")
                    clear = s.get("all_clear_margin")
                    lines.append(f"\n**{recipe}** ({len(s['seeds'])} seeds): mean {s['mean_modes']:.1f} modes (min "
                                 f"{s['min_modes']}), {spread}, longest run "
                                 f"{s.get('max_budget_seconds', s['max_train_seconds']):.1f} s; every seed meets the "
                                 f"target: {'yes' if s['all_pass'] else 'no'}" +
                                 ("" if clear is None else f"; every seed clears it by >= {100 * MARGIN:.0f} point: "
                                  f"{'yes' if clear else 'no'}") + ".")
        else:
            keys = ["frechet_distance", "precision", "recall", "density", "coverage", "classifier_score",
                    "classes_present", "min_class_share", "memorisation_share_closer"]
            lines += ["| recipe | seed | steps | train s | " + " | ".join(keys) + " | target met |",
                      "|---|---|---|---|" + "---|" * len(keys) + "---|"]
            for r in rows:
                lines.append(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {r['train_seconds']:.1f} | " +
                             " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {'yes' if passes(r) else 'no'} |")
            r = rows[0]
            lines.append("| real-vs-real floor | | | | " + " | ".join(f"{r[k + '_real']:.3f}" for k in keys) + " | |")
            lines.append(f"\nClassifier held-out accuracy {r['classifier_accuracy']:.3f}; set metrics on chunks of "
                         f"{r['n_eval']} samples, k = {r['k']} (precision/recall), k = {r['k_density']} "
                         "(density/coverage).")
        lines.append("")
    lines += fashion_section()
    if NOTES_FILE.is_file():
        lines += [NOTES_FILE.read_text().strip(), ""]
    return "\n".join(lines)


def fashion_section() -> list[str]:
    """The Fashion-MNIST rows (course recipe against the plain DCGAN) and the corrected digits floor, as recorded
    by ``benchmarks/fashion.py`` in ``results-fashion.json`` (its own report, RESULTS-fashion.md, has the details)."""
    path = Path(__file__).with_name("results-fashion.json")
    if not path.is_file():
        return ["## Fashion-MNIST", "", "Not recorded yet: run `python benchmarks/fashion.py`.", ""]
    sys.path.insert(0, str(Path(__file__).parent))
    import fashion

    result = json.loads(path.read_text())
    result["summary"] = fashion.summarise(result["runs"])
    m = result["machine"]
    return ["## Fashion-MNIST (and the corrected digits floor)", "",
            f"Recorded by `python benchmarks/fashion.py` on {m['cpu']} ({m['cores']} cores; "
            f"{', '.join(m['isa']) or 'no AVX'}), torch {m['torch']}: the course recipe (unconditional, 32x32) "
            "against a faithful plain DCGAN (pytorch/examples' defaults, 64x64) under the same wall-clock budget, "
            "judged by the course's Fashion-MNIST classifier against the 10,000 test images. Floors are mean ± sd "
            "over 5 real sets of the evaluation's size that the classifier never saw. Target: "
            f"{fashion.TARGETS['fashion-mnist']}. Details per row: `RESULTS-fashion.md`.", ""] + \
        fashion.summary_lines(result) + [""]


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
                   help="train nothing: rewrite RESULTS-recipes.md from results-recipes.json (after editing the notes)")
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
                shown = {k: row[k] for k in ("data", "recipe", "seed", "steps", "train_seconds", "cpu_seconds", "load_before",
                                             "modes", "high_quality", "frechet_distance", "frechet_distance_real",
                                             "precision", "recall", "min_class_share") if k in row}
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
