"""Train the models that ship with the course, write their files, evaluate them and write their table.

    python tools/make_pretrained.py [NAME ...]     # default: every model of course_lib.pretrained.MODELS

For each NAME, one after the other, on the CPU with one torch thread:

1. trains ``course_lib.pretrained.MODELS[NAME].config()`` (its recipe and seed) in ``runs/pretrained/NAME/``
   (the full training checkpoint stays there; ``--reuse-runs`` skips training when that folder already holds the
   finished run of the same config);
2. writes the generator-only checkpoint ``course_lib/pretrained/NAME.pt`` and records its SHA-256, size and
   training CPU seconds in ``course_lib/pretrained/manifest.json``;
3. evaluates it with ``python -m course_lib evaluate --checkpoint pretrained:NAME`` (seed 0, the default sample
   count; a DDPM with its ``sampling_steps`` DDIM steps), and measures the class shares of the same samples with
   the course's classifier;
4. writes the table ``benchmarks/RESULTS-pretrained.md`` and its rows ``benchmarks/results-pretrained.json``
   (which ``tests/test_pretrained.py`` reads); rows of models not named are kept.

Training time is the process's CPU seconds (user + system) spent in ``GANTrainer.fit`` (``DDPMTrainer.fit`` for
a DDPM), so it does not depend on how busy the machine was; the wall-clock seconds are recorded beside it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib import cli, data as data_mod, machine, pretrained  # noqa: E402  (course_lib before torch: its thread rule)
from course_lib.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from course_lib.config import TrainConfig  # noqa: E402
from course_lib.diffusion_train import DDPMTrainer  # noqa: E402
from course_lib.families import family_of  # noqa: E402
from course_lib.train import GANTrainer  # noqa: E402

import torch  # noqa: E402

RESULTS_MD = ROOT / "benchmarks" / "RESULTS-pretrained.md"
RESULTS_JSON = ROOT / "benchmarks" / "results-pretrained.json"
EVAL_SEED = 0
CHECK_N = 256   # samples of a DDPM's check evaluation (quick_check)


def cpu_model() -> str:
    """The CPU's model name with its family / model numbers (``course_lib.machine``) and the CPU count."""
    return f"{machine.cpu_model()}, {os.cpu_count()} CPUs"


def train(model: pretrained.PretrainedModel, runs: Path, reuse: bool) -> dict:
    """Train ``model`` into ``runs/<name>/`` (or reuse the finished run there); return its ``train.json``."""
    config, out = model.config(), runs / model.name
    record = out / "train.json"
    if reuse and record.is_file() and (out / "checkpoint.pt").is_file():
        done = json.loads(record.read_text())
        if TrainConfig.from_dict(done.get("config", {})) == config:  # fields added since then take their defaults
            print(f"{model.name}: reusing the finished run in {out}")
            return done
    out.mkdir(parents=True, exist_ok=True)
    for stale in (record, out / "checkpoint.pt"):
        stale.unlink(missing_ok=True)
    dataset = data_mod.load(config.data, image_size=config.image_size, fallback=config.fallback, split=config.split)
    trainer = (DDPMTrainer if family_of(config) == "ddpm" else GANTrainer)(config, dataset=dataset, out_dir=out)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trainer.fit()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if trainer.interrupted or trainer.step != config.steps:
        raise SystemExit(f"{model.name}: training stopped at step {trainer.step} of {config.steps}; nothing written")
    done = {"config": config.to_dict(), "steps": trainer.step, "cpu_seconds": round(cpu, 1),
            "wall_seconds": round(wall, 1), "threads": torch.get_num_threads(), "cpu_model": cpu_model(),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    record.write_text(json.dumps(done, indent=2) + "\n")
    return done


def export(model: pretrained.PretrainedModel, run: Path, trained: dict) -> dict:
    """Write the shipped file of ``model`` from the run's checkpoint; record it in the manifest; return the entry."""
    state = load_checkpoint(run / "checkpoint.pt")
    path = save_checkpoint(pretrained.generator_only_state(state), model.file)
    entry = {"file": path.name, "sha256": pretrained.file_sha256(path), "bytes": path.stat().st_size,
             "step": int(state["step"]), "seed": model.seed, "data": model.data, "config": trained["config"]}
    _update_manifest(model.name, entry)
    return entry


def _update_manifest(name: str, entry: dict) -> None:
    made = pretrained.manifest()
    made[name] = entry
    ordered = {k: made[k] for k in pretrained.names() if k in made}
    pretrained.MANIFEST.write_text(json.dumps(ordered, indent=1) + "\n")


def evaluate(model: pretrained.PretrainedModel, run: Path) -> dict:
    """``python -m course_lib evaluate --checkpoint pretrained:NAME`` (its JSON in the run folder), plus the class
    shares of the same samples for image models; return the metrics the table shows."""
    out = run / "evaluation.json"
    cpu0 = time.process_time()
    code = cli.main(["evaluate", "--checkpoint", pretrained.PREFIX + model.name, "--out", str(out),
                     "--seed", str(EVAL_SEED)])
    if code != 0:
        raise SystemExit(f"{model.name}: evaluate failed (exit {code})")
    result = json.loads(out.read_text())
    keys = ("n", "frechet_distance", "frechet_distance_real", "kid", "kid_sd", "precision", "recall",
            "coverage", "min_class_share", "classes_present", "modes", "num_modes", "high_quality", "sampler",
            "sampling_steps", "network_evaluations_per_image", "images_per_second")
    row = {k: result[k] for k in keys if k in result}
    row["eval_cpu_seconds"] = round(time.process_time() - cpu0, 1)
    row.update(pretrained.class_shares(model.name, seed=EVAL_SEED))
    if model.sampling_steps is not None:
        row["check"] = quick_check(model, run)
    return row


def quick_check(model: pretrained.PretrainedModel, run: Path) -> dict:
    """The same evaluation on ``CHECK_N`` samples, for the tests to compare with: a DDPM draws a few images a second
    on a CPU, so its full evaluation (5,000 samples, twice) takes tens of CPU minutes."""
    out = run / "evaluation-check.json"
    code = cli.main(["evaluate", "--checkpoint", pretrained.PREFIX + model.name, "--out", str(out),
                     "--seed", str(EVAL_SEED), "--n", str(CHECK_N)])
    if code != 0:
        raise SystemExit(f"{model.name}: evaluate --n {CHECK_N} failed (exit {code})")
    result = json.loads(out.read_text())
    return {"n": CHECK_N, "frechet_distance": result["frechet_distance"],
            "min_class_share": result["min_class_share"],
            **pretrained.class_shares(model.name, n=CHECK_N, seed=EVAL_SEED)}


def _fmt(v, spec: str = ".3g") -> str:
    return "" if v is None else format(v, spec)


def write_table(rows: dict[str, dict]) -> None:
    """``RESULTS-pretrained.md`` and ``results-pretrained.json`` from the rows (name -> row)."""
    RESULTS_JSON.write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Shipped models: how each was made, and what it scores", "",
             f"Written by `python tools/make_pretrained.py` (the rows: `{RESULTS_JSON.name}`). Each model is trained "
             "on the CPU with one torch thread from its recipe and seed (`course_lib/pretrained.py`), saved as a "
             "generator-only course checkpoint in `course_lib/pretrained/`, and evaluated by "
             f"`python -m course_lib evaluate --checkpoint pretrained:NAME --seed {EVAL_SEED}` (Fashion-MNIST: "
             "5,000 samples, classifier-feature FD and KID against the 10,000 test images, beside the floor of "
             "real training images the classifier never saw; ring8: 2,500 points, modes covered and high-quality "
             "share). Training time is the CPU seconds of the training loop (user + system), which do not depend "
             "on the machine's load; the wall-clock seconds are in the JSON. `tests/test_pretrained.py` checks "
             "that each file loads by name, refuses a flipped byte, samples in the asked shape and scores, on the "
             "same seed, within these tolerances of this table: FD within 10 %, every class share (and the "
             "conditional model's share in the asked class) within 2 points; ring8 the same modes and the "
             "high-quality share within 1 point. A DDPM is sampled with its own number of DDIM steps (the model's "
             "`sampling_steps`); images per second are the wall-clock rate of evaluate's sampling on one CPU thread "
             "(they depend on the machine's load), where recorded.", "",
             "| model | command | steps | train CPU s | CPU | torch | date | SHA-256 | size | FD (floor) | KID | "
             "smallest class share | modes / high quality | images/s (network evaluations each) |", "|" + "---|" * 14]
    for name, r in rows.items():
        fd = f"{_fmt(r.get('frechet_distance'), '.2f')} ({_fmt(r.get('frechet_distance_real'), '.2f')})" \
            if "frechet_distance" in r else ""
        kid = f"{_fmt(r.get('kid'), '.2f')} ± {_fmt(r.get('kid_sd'), '.2g')}" if "kid" in r else ""
        share = f"{100 * r['min_class_share']:.1f} %" if "min_class_share" in r else ""
        modes = f"{r['modes']}/{r['num_modes']}, {100 * r['high_quality']:.1f} %" if "modes" in r else ""
        speed = f"{r['images_per_second']:.4g} ({r['network_evaluations_per_image']})" \
            if "images_per_second" in r else ""
        lines.append(f"| {name} | `{r['command']}` | {r['steps']} | {r['cpu_seconds']:.0f} | {r['cpu_model']} | "
                     f"{r['torch']} | {r['date']} | `{r['sha256'][:12]}…` | {r['bytes'] / 2**20:.2f} MiB | {fd} | "
                     f"{kid} | {share} | {modes} | {speed} |")
    lines += ["", f"All files together: {sum(r['bytes'] for r in rows.values()) / 2**20:.2f} MiB (limits: "
              f"{pretrained.MAX_FILE_BYTES / 2**20:.0f} MiB each, {pretrained.MAX_TOTAL_BYTES / 2**20:.0f} MiB in "
              "all).", "", "## Per model", ""]
    for name, r in rows.items():
        model = pretrained.get(name)
        lines += [f"### {name}", "", f"- {model.summary}; the model of notebook {model.notebook}.",
                  f"- recipe: `{model.recipe_call}`",
                  f"- full SHA-256 `{r['sha256']}`, {r['bytes']:,} bytes",
                  f"- trained {r['steps']} steps in {r['cpu_seconds']:.0f} CPU s ({r['wall_seconds']:.0f} s wall, "
                  f"{r['threads']} thread) on {r['cpu_model']}, torch {r['torch']}, Python {r['python']}, "
                  f"{r['date']}"]
        if "class_shares" in r:
            shares = ", ".join(f"{c} {100 * s:.1f}" for c, s in zip(data_mod.FASHION_CLASSES, r["class_shares"]))
            lines.append(f"- class shares of the {r['n']} samples (%): {shares}")
        if "label_accuracy" in r:
            lines.append(f"- samples the classifier puts in the class they were asked for: "
                         f"{100 * r['label_accuracy']:.1f} %")
        if "precision" in r:
            lines.append(f"- precision {r['precision']:.3f}, recall {r['recall']:.3f}, coverage "
                         f"{r['coverage']:.3f}")
        lines.append("")
    RESULTS_MD.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"models to make (default: all of {', '.join(pretrained.names())})")
    p.add_argument("--runs", default=str(ROOT / "runs" / "pretrained"), help="folder of the training runs")
    p.add_argument("--reuse-runs", action="store_true",
                   help="skip training where the run folder holds the finished run of the same config")
    args = p.parse_args(argv)
    for name in args.names:
        pretrained.get(name)  # an unknown name stops here, listing the known ones
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    for name in args.names or pretrained.names():
        model, run = pretrained.get(name), Path(args.runs) / name
        trained = train(model, Path(args.runs), args.reuse_runs)
        entry = export(model, run, trained)
        scores = evaluate(model, run)
        rows[name] = {"command": pretrained.remake_command(name), **{k: trained[k] for k in (
            "steps", "cpu_seconds", "wall_seconds", "threads", "cpu_model", "torch", "python", "date")},
            "sha256": entry["sha256"], "bytes": entry["bytes"], "eval_seed": EVAL_SEED, **scores}
        _update_manifest(name, {**entry, "train_cpu_seconds": trained["cpu_seconds"],
                                "metric": pretrained.metric_line(rows[name])})
        rows = {k: rows[k] for k in pretrained.names() if k in rows}
        write_table(rows)
        print(f"{name}: wrote {model.file} ({entry['bytes']:,} bytes, sha256 {entry['sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
