"""Command line: ``python -m course_lib train | sample | evaluate`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checks import InvalidValue, check_int, check_positive_number, check_seed

__all__ = ["main", "build_parser"]


def argtype(name: str, check: Callable[..., Any], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """The argparse ``type`` of a check of ``course_lib.checks`` (the one wrapper; the library and the command line
    refuse the same values): ``convert(text)``, then ``check(name, value)``. A refusal reads "expected <what the
    check expects>, got '<text>'", also for text that is no number at all (the check is asked about the text)."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = text
        try:
            check(name, value)
        except InvalidValue as exc:
            raise argparse.ArgumentTypeError(f"expected {exc.expected}, got {text!r}") from None
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value is text:  # pragma: no cover - every numeric check refuses a string
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        return value
    return parse


def _flag(f: dataclasses.Field) -> str:
    """The command-line flag of a ``TrainConfig`` field: its ``flag`` metadata, else ``--field-name``."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _config_fields() -> list[dataclasses.Field]:
    """The ``TrainConfig`` fields that the train command exposes as flags (``cli`` metadata not False)."""
    from .config import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"] is not False]


def _resumable_flags() -> list[str]:
    """The flags of the fields that may change on resume (``config.RESUMABLE_FIELDS``, the library's rule)."""
    from .config import RESUMABLE_FIELDS

    return [_flag(f) for f in _config_fields() if f.name in RESUMABLE_FIELDS]


def _add_config_flags(t: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field, built from its metadata: help text, choices, parser; booleans get
    ``--x/--no-x``. Every default is None: "not given", so the recipe's value applies (or, on resume, the
    checkpoint's), and a given value can be compared with the checkpoint's."""
    from .recipes import RECIPES

    recipe_fields = {k for r in RECIPES.values() for k in r}
    steps = t.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=argtype("epochs", check_int, int),
                       help="passes over the data (instead of --steps)")
    t.add_argument("--lr", type=argtype("lr", check_positive_number, float),
                   help="learning rate of both networks (sets --lr-g and --lr-d)")
    for f in _config_fields():
        meta, kw = f.metadata, {"dest": f.name, "default": None}
        default = "the recipe's" if f.name in recipe_fields else repr(f.default)
        kw["help"] = meta["help"] if "(default:" in meta["help"] else \
            f"{meta['help']} (default: {'ring8' if f.name == 'data' else default})"
        if meta["choices"]:
            kw["choices"] = meta["choices"]
        elif "bool" in str(f.type):
            kw["action"] = argparse.BooleanOptionalAction
        elif f.type != "str":  # a number, or (betas) two: the field's check, or the flag's own (``cli``)
            check = meta["check"] if meta["cli"] is True else meta["cli"]
            kw["type"] = argtype(f.name, check, int if f.type.startswith("int") else float)
            if f.type.startswith("tuple"):
                kw.update(nargs=2, metavar=("BETA1", "BETA2"))
        (steps if f.name == "steps" else t).add_argument(_flag(f), **kw)


_CHECKPOINT_HELP = ("checkpoint.pt written by 'train', or pretrained:NAME for a model that ships with the course "
                    "(python -m course_lib pretrained lists them)")


_SAMPLING_STEPS_HELP = ("DDPM checkpoints: sample by DDIM (eta 0) with this many network evaluations per image, "
                        "1 to the training schedule's T (default: ancestral sampling over all T steps; a shipped "
                        "DDPM, pretrained:NAME: its own DDIM steps)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib",
                                description="Train GANs, sample from them and evaluate them (GAN course).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,sample,evaluate}")

    t = sub.add_parser("train", help="train a GAN (or with --model ddpm a diffusion model) with the course's recipe "
                                     "for a dataset",
                       description="Train a GAN with the course's recipe for --data (every option below changes "
                                   "one field of course_lib.config.TrainConfig). Writes checkpoint.pt, "
                                   "samples.png, config.json and metrics.json into --out. With --resume, only "
                                   f"{', '.join(_resumable_flags())} may differ from the checkpoint's settings "
                                   "(--steps: the new total).")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (a new run refuses a folder that holds one)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(t)

    s = sub.add_parser("sample", help="write raw samples of a trained generator to .npy",
                       description="Write N samples in data space to a .npy file: points (N, D), or images "
                                   "(N, C, H, W) in [-1, 1]. A .png path writes an image grid instead.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--checkpoint", required=True, help=_CHECKPOINT_HELP)
    s.add_argument("--n", type=argtype("n", check_int, int), default=2500, help="number of samples")
    s.add_argument("--out", required=True, help="output file (.npy, or .png for a grid of images)")
    s.add_argument("--seed", type=argtype("seed", check_seed, int), default=0, help="seed of the noise")
    s.add_argument("--label", type=argtype("label", partial(check_int, minimum=0), int),
                   help="class to generate (conditional models)")
    s.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    s.add_argument("--device", default="cpu", help="device to sample on")
    s.add_argument("--sampling-steps", type=argtype("sampling_steps", check_int, int), default=None,
                   help=_SAMPLING_STEPS_HELP)

    e = sub.add_parser("evaluate", help="measure a trained generator against the real data",
                       description="Sample N points or images from a checkpoint and measure them: modes covered "
                                   "and high-quality share for 2-D mixtures; classifier-based Frechet distance, "
                                   "precision/recall, density/coverage, classifier score, class coverage and "
                                   "memorisation for images. Each value is printed beside its real-versus-real "
                                   "floor (real data measured the same way) and all are written as JSON.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--checkpoint", required=True, help=_CHECKPOINT_HELP)
    e.add_argument("--n", type=argtype("n", check_int, int), default=None,
                   help="number of samples (default: 2500 for points, 1440 for images)")
    e.add_argument("--out", default=None,
                   help="JSON file to write (default: evaluation.json beside the checkpoint; for "
                        "pretrained:NAME, NAME-evaluation.json here)")
    e.add_argument("--seed", type=argtype("seed", check_seed, int), default=0, help="seed of the noise")
    e.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    e.add_argument("--device", default="cpu", help="device to sample on")
    e.add_argument("--sampling-steps", type=argtype("sampling_steps", check_int, int), default=None,
                   help=_SAMPLING_STEPS_HELP)

    sub.add_parser("pretrained", help="list the trained models that ship with the course",
                   description="List the shipped models: pass pretrained:NAME as --checkpoint to sample or "
                               "evaluate (course_lib.pretrained.load_pretrained(NAME) in Python).")
    return p


def _config_changes(args) -> tuple[dict, dict]:
    """The TrainConfig fields given on the command line: ``(changes, flags)``, field -> value and field ->
    the flag that set it (``--lr`` sets lr_g and lr_d unless --lr-g / --lr-d are given; ``--ema 0`` is None)."""
    changes, flags = {}, {}
    for f in _config_fields():
        v = getattr(args, f.name)
        if v is not None:
            changes[f.name] = tuple(v) if f.name == "betas" else (None if f.name == "ema_decay" and v == 0 else v)
            flags[f.name] = _flag(f)
    for key in ("lr_g",) if changes.get("model") == "ddpm" else ("lr_g", "lr_d"):
        if args.lr is not None and key not in changes:
            changes[key], flags[key] = args.lr, "--lr"
    return changes, flags


def _resume(args, out: Path, changes: dict, flags: dict):
    """The trainer of ``--resume``, under the one resume rule of ``course_lib.config``, in flag names."""
    from .checkpoint import load_checkpoint
    from .diffusion_train import DDPMTrainer
    from .families import family_of
    from .train import GANTrainer, ResumeConflictError

    if args.epochs:
        raise ValueError("--epochs cannot be used with --resume: give --steps, the new total number of steps")
    ddpm = family_of(load_checkpoint(args.resume).get("config") or {}) == "ddpm"
    try:
        trainer = (DDPMTrainer if ddpm else GANTrainer).from_checkpoint(args.resume, out_dir=out,
                                                                         verbose=not args.quiet, **changes)
    except ResumeConflictError as exc:
        named = ", ".join(sorted({flags.get(k, k) for k in exc.fields}))
        allowed = ", ".join(_resumable_flags())
        raise ValueError(f"{named} cannot be changed when resuming: the given value differs from the one saved "
                         f"in {args.resume}, and the run continues with its saved settings; only {allowed} (and "
                         f"--quiet) may change. Start a new run (without --resume) to change the others") from None
    if trainer.step >= trainer.config.steps:
        raise ValueError(f"the run in {args.resume} is already at step {trainer.step} of {trainer.config.steps}; "
                         f"nothing to train: pass --steps N with N > {trainer.step} (the new total) to continue")
    return trainer


def _check_family_flags(changes: dict, flags: dict) -> None:
    """Refuse the flags of the other family, given explicitly: GAN options with --model ddpm, DDPM options
    without it (``config.GAN_FIELDS`` / ``DDPM_FIELDS``)."""
    from .config import DDPM_FIELDS, GAN_FIELDS

    ddpm = changes.get("model") == "ddpm"
    wrong = sorted({flags[k] for k in changes if k in (GAN_FIELDS if ddpm else DDPM_FIELDS)})
    if wrong and ddpm:
        raise ValueError(f"{', '.join(wrong)}: GAN option(s), which --model ddpm (a diffusion model) does not use; "
                         "drop them, or train a GAN (--model dcgan)")
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: DDPM option(s); add --model ddpm to train a diffusion model, or "
                         "drop them")


def _new_trainer(args, out: Path, changes: dict, flags: dict):
    """The trainer of a new run: the recipe of --data with the given fields; --epochs becomes steps (from the
    data's length and the batch: one epoch is len(data) // batch real batches, n_critic per step)."""
    from . import data as data_mod
    from .distributed import dist_info
    from .streams import batches_per_epoch
    from .diffusion_train import DDPMTrainer
    from .train import GANTrainer, TrainConfig

    _check_family_flags(changes, flags)
    config = TrainConfig.for_data(changes.pop("data", "ring8"), **changes)
    dataset = data_mod.load(config.data, image_size=config.image_size, fallback=config.fallback, split=config.split)
    if args.epochs:
        per_epoch = batches_per_epoch(len(dataset), config.batch_size, dist_info().world_size)
        config = dataclasses.replace(config, steps=max(1, -(-args.epochs * per_epoch // config.n_critic)))
    trainer_class = DDPMTrainer if config.model == "ddpm" else GANTrainer
    return trainer_class(config, dataset=dataset, out_dir=out, verbose=not args.quiet)


def cmd_train(args) -> int:
    """``train``: the run folder is checked and locked (rank 0) before any data is loaded, then the run."""
    import contextlib

    from .rundir import RunFolder
    from .distributed import dist_info

    mode = "overwrite" if args.overwrite else ("resume" if args.resume else "new")
    if dist_info().rank != 0:  # under torchrun only rank 0 writes, so only rank 0 holds the folder
        folder = contextlib.nullcontext()
    else:
        folder = RunFolder(args.out, mode=mode, source=args.resume, flag="--out")
    with folder as run:
        return _train(args, run)


def _train(args, run=None) -> int:
    """The run itself; ``run`` is the locked ``RunFolder`` (None on ranks > 0). With ``--overwrite`` the earlier
    run's files are deleted only once the new trainer is built, so a refused command (a bad option, other data)
    leaves the earlier run as it was; a ``--resume`` source inside the folder is kept."""
    from . import plots, report
    from .run_files import write_figure, write_json

    out = Path(args.out)
    changes, flags = _config_changes(args)
    trainer = _resume(args, out, changes, flags) if args.resume else _new_trainer(args, out, changes, flags)
    if run is not None and args.overwrite:
        run.clear()  # every file of the earlier run (rundir.RUN_OUTPUTS), its evaluation.json included
    config = trainer.config
    t0 = time.perf_counter()
    start = (trainer.step, trainer.skipped_steps)
    trainer.fit()  # writes out/checkpoint.pt (every checkpoint_every steps and at the end)
    seconds = time.perf_counter() - t0
    trainer.close()  # under torchrun: every process leaves the process group together
    ran, skipped = trainer.step - start[0], trainer.skipped_steps - start[1]
    if ran > 0 and skipped >= ran:  # nothing was learnt: not a run to report as written
        raise ValueError(f"all {ran} steps were skipped: every one had a NaN or infinite loss or gradient "
                         f"(--nan-policy skip), so the networks did not learn and nothing but {out / 'checkpoint.pt'} "
                         "was written; lower the learning rate (--lr) or use --nan-policy stop to see the first "
                         "failing step")
    if trainer.rank != 0:
        return 130 if trainer.interrupted else 0
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict(), indent=2)  # after the checkpoint; atomic, as all run files
    summary = {"data": config.data, "steps": trainer.step, "train_seconds": round(seconds, 2),
               "interrupted": trainer.interrupted, "skipped_steps": trainer.skipped_steps,
               "device": str(trainer.device), "world_size": trainer.world_size,
               "batch_size": config.batch_size, "batch_per_process": trainer.local_batch,
               "lr_g": config.lr_g, "lr_d": config.lr_d, "lr_schedule": config.lr_schedule}
    if config.model == "ddpm":
        del summary["lr_d"]
        summary.update(diffusion_steps=config.diffusion_steps, noise_schedule=config.noise_schedule,
                       metrics_note="a DDPM's samples cost many network evaluations, so training measures none: "
                                    f"python -m course_lib evaluate --checkpoint {out / 'checkpoint.pt'} "
                                    "--sampling-steps 50")
    else:
        n, labels = report.summary_request(trainer.dataset, num_classes=trainer.num_classes, seed=config.seed)
        summary.update(report.summarize(trainer.sample(n, labels=labels) if n else None, trainer.dataset,
                                        labels=labels))
    summary.update({f"final_{k}": v[-1] for k, v in trainer.history.items() if k != "penalty" and v})
    write_json(out / "metrics.json", {"final": summary, "history": trainer.history})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if config.model == "ddpm":  # 64 images of the fixed x_T, by DDIM with at most 50 steps
        steps = min(50, config.diffusion_steps)
        fig = plots.show_images(trainer.sample(64, sampling_steps=steps, x_T=trainer.fixed_noise), size=6,
                                title=f"{config.data} DDPM, step {trainer.step}, {steps} DDIM steps")
    else:
        samples = plots.figure_samples(trainer, 2500)  # 64 images of the fixed noise, or 2,500 points
        fig = plots.sample_figure(samples, trainer.dataset, D=trainer.D, device=trainer.device,
                                  title=f"{config.data}, step {trainer.step}", loss=config.loss)
    write_figure(out / "samples.png", fig, dpi=120, bbox_inches="tight")
    plt.close("all")
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=2))
    written = (["checkpoint.pt"] if trainer.last_checkpoint is not None else []) + \
        ["samples.png", "config.json", "metrics.json"]
    print(f"wrote {out}/{', '.join(written)}")
    return 130 if trainer.interrupted else 0


def cmd_sample(args) -> int:
    import torch

    from .rundir import check_output_file, check_sample_memory
    from .pretrained import default_sampling_steps, resolve_checkpoint
    from .run_files import write_array, write_figure
    from .generation import load_model

    out = check_output_file(args.out, (".npy", ".png"), flag="--out", what="samples file")
    model = load_model(resolve_checkpoint(args.checkpoint), device=args.device, use_ema=not args.no_ema,
                       sampling_steps=args.sampling_steps
                       if args.sampling_steps is not None else default_sampling_steps(args.checkpoint))
    info = model.info
    if out.suffix.lower() == ".png" and len(info["sample_shape"]) != 3:
        raise ValueError(f"--out {out.name!r}: a .png grid needs an image model, but {args.checkpoint} makes points "
                         f"of shape {tuple(info['sample_shape'])}; use a .npy file")
    check_sample_memory(args.n, tuple(info["sample_shape"]), flag="--n", latent_dim=model.noise_numbers)
    num_classes = info.get("num_classes")
    labels = None
    if args.label is not None:
        if not num_classes:
            raise ValueError(f"--label needs a conditional model; {args.checkpoint} is unconditional")
        if args.label >= num_classes:
            raise ValueError(f"--label must be a class in [0, {num_classes}), got {args.label}")
        labels = torch.full((args.n,), args.label, dtype=torch.long)
    x = model.sample(args.n, labels=labels, seed=args.seed)
    if out.suffix.lower() == ".png":
        from . import plots
        import matplotlib

        matplotlib.use("Agg")
        ax = plots.show_images(x[:256], nrow=16, size=6)
        write_figure(out, ax, dpi=120, bbox_inches="tight")
    else:  # .npy (check_output_file allowed only these two, in any case)
        write_array(out, x.numpy().astype(np.float32, copy=False))
    cost = "" if model.family == "gan" else f" ({model.sampler}, {model.network_evaluations} network evaluations each)"
    print(f"wrote {args.n} samples of shape {tuple(x.shape[1:])} to {out}{cost}")
    return 0


def cmd_evaluate(args) -> int:
    from . import report
    from .rundir import check_output_file, check_sample_memory
    from .pretrained import default_sampling_steps, evaluation_out, resolve_checkpoint
    from .rundir import RunFolderError
    from .run_files import write_json
    from .generation import load_model, timed_sample

    try:
        out = check_output_file(args.out if args.out is not None else evaluation_out(args.checkpoint),
                                (".json",), flag="--out" if args.out is not None else "", what="evaluation file")
    except RunFolderError as exc:
        if args.out is not None:
            raise
        raise RunFolderError(f"evaluate writes its result beside the checkpoint by default, but {exc}; or pass --out "
                             "FILE to write it elsewhere") from None
    model = load_model(resolve_checkpoint(args.checkpoint), device=args.device, use_ema=not args.no_ema,
                       for_what="evaluation", sampling_steps=args.sampling_steps
                       if args.sampling_steps is not None else default_sampling_steps(args.checkpoint))
    config, info = model.config, model.info
    shape = tuple(info.get("sample_shape") or ())
    name = info.get("name") or config.data
    num_classes = info.get("num_classes")
    n, labels = report.summary_request(name, num_classes=num_classes, seed=args.seed, n=args.n)
    if n == 0:
        raise ValueError(f"no course metric applies to the data {name!r}: nothing to evaluate")
    check_sample_memory(n, shape, copies=2, flag="--n", latent_dim=model.noise_numbers)
    if model.family == "ddpm":
        faster = "" if model.sampling_steps else "; --sampling-steps 50 (DDIM) is about 20 times faster"
        print(f"sampling {n} images by {model.sampler}, {model.network_evaluations} network evaluations each{faster}")
    x, cost = timed_sample(model, n, labels=labels, seed=args.seed)
    result: dict = {"checkpoint": str(args.checkpoint), "data": name, "n": n, "seed": args.seed,
                    "ema": not args.no_ema, "model": config.model, **cost}
    result.update(report.summarize(x, name, labels=labels))
    if "image_metrics_error" in result:
        raise ValueError(f"the image metrics failed: {result['image_metrics_error']}")
    if "metrics_note" in result:
        raise ValueError(result["metrics_note"])
    print(f"{name}: {n} samples from {args.checkpoint}")
    print(f"{'metric':<24}{'generated':>12}{'real floor (mean +- sd)':>26}  verdict")
    for key, v in result.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or key.endswith(("_real", "_real_sd", "_sd")) \
                or key in ("n", "seed", "n_eval", "chunks", "k", "k_density", "num_modes", "n_reference") \
                or key in cost:
            continue
        real, sd, verdict = result.get(f"{key}_real"), result.get(f"{key}_real_sd"), result.get(f"{key}_verdict", "")
        shown = f"{real:.4g}" + (f" +- {sd:.2g}" if isinstance(sd, (int, float)) else "") if isinstance(
            real, (int, float)) else ""
        print(f"{key:<24}{v:>12.4g}{shown:>26}  {verdict}")
    print(f"sampling cost: {cost['network_evaluations_per_image']} network evaluation(s) per sample "
          f"({cost['sampler']}), {cost['images_per_second']:.4g} samples per second on {cost['sampling_device']}")
    write_json(out, result, indent=2, default=str)
    print(f"wrote {out}")
    return 0


def cmd_pretrained(args) -> int:
    """``pretrained``: one line per shipped model (name, what it is, size, metric)."""
    from .pretrained import describe

    print("\n".join(describe()))
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate, "pretrained": cmd_pretrained}


def _out_of_memory(exc: BaseException) -> str | None:
    """One line for an allocation that failed (CPU or GPU), or None when ``exc`` is another error."""
    text = str(exc)
    if not (isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    tried = re.search(r"tried to allocate ([\d.]+ ?\w+)", text)
    size = f" (an allocation of {tried.group(1)} failed)" if tried else ""
    return (f"out of memory{size}: the networks or batches asked for are too large for this machine; choose "
            "smaller sizes (--g-width, --d-width, --latent-dim, --depth, --batch-size, --image-size) or, for "
            "sample / evaluate, a smaller --n")


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors a user can fix print one line and exit 2, Ctrl-C (also while torch is still
    being imported) prints one line and exits 130."""
    try:
        from .checkpoint import CheckpointError
        from .data import DatasetUnavailableError
        from .device import DeviceError
        from .guard import NonFiniteLossError

        args = build_parser().parse_args(argv)
        try:
            return COMMANDS[args.command](args)
        except (CheckpointError, DatasetUnavailableError, DeviceError, NonFiniteLossError, ValueError,
                TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as exc:
            line = _out_of_memory(exc)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:  # outside the training loop (which stops cleanly by itself)
        global CTRL_C
        CTRL_C = True
        print("error: interrupted", file=sys.stderr)
        return 130


CTRL_C = False  # set when main() ended on a Ctrl-C (``python -m course_lib`` then exits at once with 130)
