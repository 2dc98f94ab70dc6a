#!/usr/bin/env python
"""Milliseconds per training step under torch's thread defaults and under the course's CPU-thread rule.

Each measurement is a fresh process that builds the recipe's ``GANTrainer`` on the CPU, trains ``warmup`` steps,
then times ``steps`` steps (``GANTrainer.fit``; data loading and start-up are not timed). Settings:

* ``torch defaults``: torch imported before course_lib, its own thread count restored, no wait policy (OpenMP's
  spinning default): what a student gets today from ``import torch``.
* ``course rule``: ``import course_lib`` first (``course_lib.threads``: the CPUs the process may use, passive
  waiting), as the notebooks and the command line do.
* ``1 thread`` and ``N threads, passive``: fixed settings, the candidates for the best one.

Scenarios: ``solo``; ``busy`` (one other process spinning at normal priority the whole time); ``quota`` (the
measured process inside a cgroup v1 child group whose CFS quota equals its period: one CPU; needs root on a cgroup
v1 machine, and is skipped elsewhere). Targets: under ``busy`` and ``quota`` the rule is within 1.5x of the best
setting measured and never slower than one thread; ``solo``, within 10 % of torch's defaults.

    python benchmarks/threads.py                     # both recipes, every scenario and setting, 3 repeats
    python benchmarks/threads.py --recipes ring8 --scenarios quota --repeats 1 --steps 5 --json /tmp/t.json
    python benchmarks/threads.py --report-only       # rewrite RESULTS-threads.md from results-threads.json

The parent process imports neither torch nor course_lib, so every child starts from the same environment.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results-threads.json"
PAGE = HERE / "RESULTS-threads.md"
RECIPES = {"fashion-mnist": dict(steps=15, warmup=3), "ring8": dict(steps=300, warmup=30)}
SCENARIOS = ("solo", "busy", "quota")
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CLEAN = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "COURSE_THREADS", "COURSE_THREADS_APPLIED", "MKL_NUM_THREADS",
         "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

# The measured process. argv: setting, recipe, steps, warmup. Prints one RESULT= line of JSON.
CHILD = r'''
import json, os, sys, time, warnings
setting, recipe, steps, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if setting == "torch defaults":
    import torch
    n = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import course_lib
    torch.set_num_threads(n)        # undo the rule's count: measure torch's own default
else:
    import course_lib
    import torch
from course_lib.train import GANTrainer, TrainConfig
cfg = TrainConfig.for_data(recipe, device="cpu", seed=0, steps=10**6, checkpoint_every=10**6, log_every=10**6,
                           callback_every=10**6)
trainer = GANTrainer(cfg, verbose=False)
trainer.fit(steps=warmup, progress=False)
t0, c0 = time.perf_counter(), time.process_time()
trainer.fit(steps=steps, progress=False)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print("RESULT=" + json.dumps(dict(ms_per_step=1000 * wall / steps, cpu_ms_per_step=1000 * cpu / steps,
                                  threads=torch.get_num_threads(), wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                                  spin_count=os.environ.get("GOMP_SPINCOUNT"))))
'''


def cpu_model() -> str:
    """The CPU model with its family / model numbers (``course_lib.machine``) and the CPU count."""
    from course_lib.machine import cpu_model as model   # stdlib only: neither torch nor the thread rule's effects

    return f"{model()}, {os.cpu_count()} CPUs"


def settings(cpus: int) -> dict[str, dict[str, str]]:
    """Setting name -> the environment variables it sets (on top of a clean environment)."""
    return {"torch defaults": {}, "course rule": {}, "1 thread": {"OMP_NUM_THREADS": "1"},
            f"{cpus} threads, passive": {"OMP_NUM_THREADS": str(cpus), "OMP_WAIT_POLICY": "PASSIVE"}}


class OneCPUGroup:
    """A cgroup v1 child group with quota = period (one CPU); ``available()`` says whether it can be made here."""

    def __init__(self) -> None:
        self.path = CGROUP_V1 / f"course-bench-{uuid.uuid4().hex[:8]}"

    @staticmethod
    def available() -> str | None:
        if not (CGROUP_V1 / "cpu.cfs_quota_us").exists():
            return "no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu"
        if not os.access(CGROUP_V1, os.W_OK):
            return "/sys/fs/cgroup/cpu is not writable (run as root)"
        return None

    def __enter__(self) -> Path:
        self.path.mkdir()
        (self.path / "cpu.cfs_quota_us").write_text((self.path / "cpu.cfs_period_us").read_text())
        return self.path

    def __exit__(self, *exc) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def measure(recipe: str, scenario: str, setting: str, env_changes: dict[str, str], steps: int, warmup: int,
            group: Path | None) -> dict:
    """One fresh process: the recipe's step timed under ``setting`` in ``scenario``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env.update(env_changes, TQDM_DISABLE="1", COURSE_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", CHILD, setting, recipe, str(steps), str(warmup)]
    if group is not None:  # join the group, then start Python: torch starts inside the quota
        cmd = ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd]
    busy = None
    if scenario == "busy":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{recipe} / {scenario} / {setting} failed:\n{proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])


def run(recipes: list[str], scenarios: list[str], repeats: int, steps: int | None,
        only: list[str] | None = None) -> list[dict]:
    """Every (recipe, scenario, setting), ``repeats`` times, interleaved; one row per measurement."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    machine, date = cpu_model(), datetime.date.today().isoformat()
    rows = []
    for scenario in scenarios:
        if scenario == "quota" and OneCPUGroup.available():
            print(f"quota: skipped ({OneCPUGroup.available()})", file=sys.stderr)
            continue
        for recipe in recipes:
            n_steps = steps or RECIPES[recipe]["steps"]
            warmup = RECIPES[recipe]["warmup"] if steps is None else 1
            for rep in range(repeats):
                for setting, env in settings(cpus).items():
                    if only and setting not in only:
                        continue
                    if scenario == "quota":
                        with OneCPUGroup() as group:
                            r = measure(recipe, scenario, setting, env, n_steps, warmup, group)
                    else:
                        r = measure(recipe, scenario, setting, env, n_steps, warmup, None)
                    r.update(recipe=recipe, scenario=scenario, setting=setting, repeat=rep, steps=n_steps,
                             warmup=warmup, cpu=machine, date=date, env=env)
                    rows.append(r)
                    print(f"{recipe:<14} {scenario:<6} {setting:<20} {r['threads']} threads "
                          f"{r['ms_per_step']:9.1f} ms/step", file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Median ms per step for each (recipe, scenario, setting), with the rule's ratios and the targets."""
    out = []
    keys = sorted({(r["recipe"], r["scenario"]) for r in rows}, key=lambda k: (k[0], SCENARIOS.index(k[1])))
    for recipe, scenario in keys:
        cell = [r for r in rows if r["recipe"] == recipe and r["scenario"] == scenario]
        med = {}
        for setting in dict.fromkeys(r["setting"] for r in cell):
            runs = [r for r in cell if r["setting"] == setting]
            med[setting] = dict(ms=statistics.median(r["ms_per_step"] for r in runs),
                                lo=min(r["ms_per_step"] for r in runs), hi=max(r["ms_per_step"] for r in runs),
                                threads=runs[0]["threads"], wait=(runs[0]["wait_policy"] or "unset (spin)") + (
                                    f", spin {runs[0]['spin_count']}" if runs[0].get("spin_count") else ""),
                                n=len(runs), cpu=runs[0]["cpu"], date=runs[0]["date"])
        best = min(v["ms"] for v in med.values())
        rule = med.get("course rule")
        one = med.get("1 thread")
        default = med.get("torch defaults")
        verdict = ""
        if rule and one and default:
            if scenario == "solo":
                ok = rule["ms"] <= 1.10 * default["ms"]
                verdict = f"rule / torch defaults = {rule['ms'] / default['ms']:.2f} (target <= 1.10): " \
                          f"{'met' if ok else 'NOT met'}"
            else:
                ok = rule["ms"] <= 1.5 * best and rule["ms"] <= one["ms"]
                verdict = f"rule / best = {rule['ms'] / best:.2f} (target <= 1.5), rule / 1 thread = " \
                          f"{rule['ms'] / one['ms']:.2f} (target <= 1): {'met' if ok else 'NOT met'}"
        out.append(dict(recipe=recipe, scenario=scenario, settings=med, best=best, verdict=verdict))
    return out


def write_page(rows: list[dict], path: Path = PAGE) -> str:
    """RESULTS-threads.md from the rows."""
    lines = [
        "# CPU threads: torch's defaults against the course's rule",
        "",
        "What it measures: milliseconds per training step (median of the repeats, min-max in brackets) of two "
        "recipes on the CPU,",
        "each in a fresh process, with torch's thread defaults, with the course's rule (`course_lib.threads`: as "
        "many threads as",
        "the CPUs the process may use, `OMP_WAIT_POLICY=PASSIVE` with `GOMP_SPINCOUNT=3000`), and with fixed "
        "settings; alone (`solo`), beside one busy",
        "process at normal priority (`busy`), and inside a cgroup with a one-CPU quota (`quota`). Targets: under "
        "`busy` and `quota`",
        "the rule is within 1.5x of the best setting and never slower than one thread; `solo`, within 10 % of "
        "torch's defaults.",
        "",
        "Command: `python benchmarks/threads.py` (then `--report-only` rewrites this page from "
        "`results-threads.json`).",
        "",
        "What was tried (same machine and day, one run each, not in the tables): with two threads, the spin count "
        "decides between the",
        "two extremes. `GOMP_SPINCOUNT` 10,000: solo 1.05x (Fashion-MNIST) and 1.07x (ring8) of torch's defaults, "
        "busy 1.9x and 3.8x",
        "of one thread; 3,000 (the rule): about 1.15x solo, 1.4x and 2.2x busy; 0 (pure passive): 1.4x and 2.4x "
        "solo, 1.1x and 1.2x",
        "busy. One thread is the best setting beside a busy process and 1.2-1.7x slower alone. No fixed setting "
        "meets both the solo",
        "and the busy targets on this machine.",
        "",
    ]
    for s in summarise(rows):
        any_row = next(iter(s["settings"].values()))
        lines += [f"## {s['recipe']}, {s['scenario']}", "",
                  f"{any_row['cpu']}; measured {any_row['date']}; {s['verdict']}", "",
                  "| setting | torch threads | wait policy | ms per step | vs best |", "|---|---|---|---|---|"]
        for name, v in s["settings"].items():
            lines.append(f"| {name} | {v['threads']} | {v['wait']} | {v['ms']:,.1f} ({v['lo']:,.1f}-{v['hi']:,.1f}) "
                         f"| {v['ms'] / s['best']:.2f}x |")
        lines.append("")
    text = "\n".join(lines)
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: per recipe), after 1 warm-up")
    p.add_argument("--settings", nargs="+", default=None, help="only these settings (names as in the table)")
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--page", type=Path, default=PAGE)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if args.report_only:
        rows = json.loads(args.json.read_text())
    else:
        rows = run(args.recipes, args.scenarios, args.repeats, args.steps, args.settings)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(write_page(rows, args.page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
