"""Command line: ``python -m course_lib train | sample | evaluate`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]


def _number(convert, ok, bad_text: str, bad_value: str):
    """An argparse ``type``: ``convert(text)``, refused with a clear message unless ``ok(value)``."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {bad_text}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {bad_value}, got {text!r}")
        return v
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive whole number", "a positive whole number")
_nonneg_int = _number(int, lambda v: v >= 0, "a non-negative whole number", "a non-negative whole number")
_positive_float = _number(float, lambda v: v > 0 and np.isfinite(v), "a positive number", "a positive finite number")
_unit_float = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "a number in [0, 1)")


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .losses import LOSSES
    from .train import AMP_CHOICES, LR_SCHEDULES

    p = argparse.ArgumentParser(prog="python -m course_lib",
                                description="Train GANs, sample from them and evaluate them (GAN course).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,sample,evaluate}")

    t = sub.add_parser("train", help="train a GAN with the course's recipe for a dataset",
                       description="Train a GAN with the course's recipe for --data. Writes checkpoint.pt, "
                                   "samples.png, config.json and metrics.json into --out.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", choices=DATASETS, default="ring8", help="dataset")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--loss", choices=list(LOSSES), help="GAN loss (default: the recipe's)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=_positive_int, help="generator steps (default: the recipe's)")
    g.add_argument("--epochs", type=_positive_int, help="passes over the data (instead of --steps)")
    t.add_argument("--batch-size", type=_positive_int, help="global batch size")
    t.add_argument("--lr", type=_positive_float, help="learning rate of both networks")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="constant, or linear decay to 0 over the run (default: the recipe's)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="random seed")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--image-size", type=_positive_int, help="image size for image data (8, 16, 32 or 64)")
    t.add_argument("--latent-dim", type=_positive_int, help="size of z")
    t.add_argument("--conditional", action=argparse.BooleanOptionalAction, default=None,
                   help="class-conditional GAN (labelled image data; default: the recipe's, on for digits)")
    t.add_argument("--spectral-norm", action="store_true", default=None, help="spectral normalisation in D")
    t.add_argument("--label-smoothing", type=_unit_float, help="one-sided label smoothing of real targets")
    t.add_argument("--r1-gamma", type=float, help="weight of the R1 penalty")
    t.add_argument("--r1-every", type=_positive_int, help="compute R1 every k steps, weighted k times (lazy R1)")
    t.add_argument("--ema", type=_unit_float, help="EMA decay of the generator (0 turns EMA off)")
    t.add_argument("--amp", choices=AMP_CHOICES, default="auto", help="mixed precision")
    t.add_argument("--no-compile", action="store_true", help="never use torch.compile")
    t.add_argument("--compile", action="store_true", help="use torch.compile even off CUDA")
    t.add_argument("--no-channels-last", action="store_true", help="keep the default memory format")
    t.add_argument("--checkpoint-every", type=_positive_int, help="steps between checkpoints")
    t.add_argument("--nan-policy", choices=("stop", "skip"),
                   help="on a NaN/inf loss: stop (keep the last good checkpoint; the default) or skip the step")
    t.add_argument("--fallback", action="store_true", default=None,
                   help="use the offline 'digits' data if MNIST / Fashion-MNIST cannot be downloaded")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="write raw samples of a trained generator to .npy",
                       description="Write N samples in data space to a .npy file: points (N, D), or images "
                                   "(N, C, H, W) in [-1, 1]. A .png path writes an image grid instead.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--checkpoint", required=True, help="checkpoint.pt written by 'train'")
    s.add_argument("--n", type=_positive_int, default=2500, help="number of samples")
    s.add_argument("--out", required=True, help="output file (.npy, or .png for a grid of images)")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the noise")
    s.add_argument("--label", type=_nonneg_int, help="class to generate (conditional models)")
    s.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    s.add_argument("--device", default="cpu", help="device to sample on")

    e = sub.add_parser("evaluate", help="measure a trained generator against the real data",
                       description="Sample N points or images from a checkpoint and measure them: modes covered "
                                   "and high-quality share for 2-D mixtures; classifier-based Frechet distance, "
                                   "precision/recall, density/coverage, classifier score, class coverage and "
                                   "memorisation for images. Each value is printed beside its real-versus-real "
                                   "floor (real data measured the same way) and all are written as JSON.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--checkpoint", required=True, help="checkpoint.pt written by 'train'")
    e.add_argument("--n", type=_positive_int, default=None,
                   help="number of samples (default: 2500 for points, 1440 for images)")
    e.add_argument("--out", default=None,
                   help="JSON file to write (default: evaluation.json beside the checkpoint)")
    e.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the noise")
    e.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    e.add_argument("--device", default="cpu", help="device to sample on")
    return p


def _train_config(args):
    from .train import TrainConfig

    changes = {"seed": args.seed, "device": args.device, "amp": args.amp, "nan_policy": args.nan_policy or "stop",
               "fallback": bool(args.fallback)}
    for key, attr in (("loss", "loss"), ("steps", "steps"), ("batch_size", "batch_size"),
                      ("image_size", "image_size"), ("latent_dim", "latent_dim"), ("r1_gamma", "r1_gamma"),
                      ("r1_every", "r1_every"),
                      ("label_smoothing", "label_smoothing"), ("checkpoint_every", "checkpoint_every"),
                      ("lr_schedule", "lr_schedule")):
        v = getattr(args, attr)
        if v is not None:
            changes[key] = v
    if args.lr is not None:
        changes["lr_g"] = changes["lr_d"] = args.lr
    if args.ema is not None:
        changes["ema_decay"] = args.ema or None
    if args.conditional is not None:
        changes["conditional"] = args.conditional
    if args.spectral_norm:
        changes["spectral_norm"] = True
    if args.no_compile:
        changes["compile"] = False
    elif args.compile:
        changes["compile"] = True
    if args.no_channels_last:
        changes["channels_last"] = False
    return TrainConfig.for_data(args.data, **changes)


# train options that a resumed run takes from its checkpoint instead
RESUME_FIXED = ("loss", "epochs", "batch_size", "lr", "lr_schedule", "image_size", "latent_dim", "conditional",
                "spectral_norm", "label_smoothing", "r1_gamma", "r1_every", "ema", "fallback")


def cmd_train(args) -> int:
    import torch

    from . import metrics, plots
    from .train import GANTrainer, TrainConfig

    out = Path(args.out)
    if args.resume:
        fixed = [f"--{k.replace('_', '-')}" for k in RESUME_FIXED if getattr(args, k, None) is not None]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot be changed when resuming: the run continues with the "
                             f"settings saved in {args.resume}; only --steps (the new total), --device, "
                             f"--checkpoint-every, --nan-policy and --quiet apply")
        changes = {"device": args.device}
        if args.nan_policy:
            changes["nan_policy"] = args.nan_policy
        if args.steps:
            changes["steps"] = args.steps
        if args.checkpoint_every:
            changes["checkpoint_every"] = args.checkpoint_every
        trainer = GANTrainer.from_checkpoint(args.resume, out_dir=out, verbose=not args.quiet, **changes)
        config = trainer.config
    else:
        config = _train_config(args)
        if args.epochs:
            probe = GANTrainer(config, verbose=False)
            per_epoch = probe.shard_size // probe.local_batch
            config = TrainConfig.from_dict({**config.to_dict(),
                                            "steps": max(1, -(-args.epochs * per_epoch // config.n_critic_effective))})
            del probe
        trainer = GANTrainer(config, out_dir=out, verbose=not args.quiet)
    if trainer.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    trainer.close()  # under torchrun: every process leaves the process group together
    if trainer.rank != 0:
        return 130 if trainer.interrupted else 0
    summary = {"data": config.data, "steps": trainer.step, "train_seconds": round(seconds, 2),
               "interrupted": trainer.interrupted, "skipped_steps": trainer.skipped_steps,
               "device": str(trainer.device), "world_size": trainer.world_size,
               "batch_size": config.batch_size, "batch_per_process": trainer.local_batch,
               "lr_g": config.lr_g, "lr_d": config.lr_d, "lr_schedule": config.lr_schedule}
    summary.update(metrics.summarize(trainer))
    (out / "metrics.json").write_text(json.dumps({"final": summary, "history": trainer.history}) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if trainer.dataset.kind == "images":
        ax = plots.show_images(trainer.sample(64, noise=trainer.fixed_noise.cpu(),
                                              labels=None if trainer.fixed_labels is None
                                              else trainer.fixed_labels.cpu()),
                               title=f"{config.data}, step {trainer.step}", size=5)
    elif trainer.dataset.sample_shape == (2,):
        ax = plots.plot_2d(trainer.sample(2500), trainer.dataset.x[:2500], D=trainer.D,
                           centres=trainer.dataset.centres, device=trainer.device,
                           title=f"{config.data}, step {trainer.step}")
    else:
        _, ax = plt.subplots(figsize=(4, 3))
        ax.hist(trainer.sample(2500).numpy().ravel(), bins=80, density=True)
    ax.figure.savefig(out / "samples.png", dpi=120, bbox_inches="tight")
    plt.close("all")
    shown = {k: v for k, v in summary.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}/checkpoint.pt, samples.png, config.json, metrics.json")
    if trainer.interrupted:
        return 130
    del torch
    return 0


def cmd_sample(args) -> int:
    import torch

    from .train import generate, load_generator

    G, config, info = load_generator(args.checkpoint, device=args.device, use_ema=not args.no_ema)
    num_classes = info.get("num_classes")
    labels = None
    if args.label is not None:
        if not num_classes:
            raise ValueError(f"--label needs a conditional model; {args.checkpoint} is unconditional")
        if args.label >= num_classes:
            raise ValueError(f"--label must be a class in [0, {num_classes}), got {args.label}")
        labels = torch.full((args.n,), args.label, dtype=torch.long)
    x = generate(G, args.n, config.latent_dim, next(G.parameters()).device, labels=labels,
                 num_classes=num_classes, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        if x.dim() != 4:
            raise ValueError("a .png output needs an image model; use .npy for points")
        from . import plots
        import matplotlib

        matplotlib.use("Agg")
        ax = plots.show_images(x[:256], nrow=16, size=6)
        ax.figure.savefig(out, dpi=120, bbox_inches="tight")
    elif out.suffix == ".npy":
        np.save(out, x.numpy().astype(np.float32))
    else:
        raise ValueError(f"--out must end in .npy or .png, got {out.name!r}")
    print(f"wrote {args.n} samples of shape {tuple(x.shape[1:])} to {out}")
    return 0


def cmd_evaluate(args) -> int:
    from . import data as data_mod
    from . import metrics
    from .train import generate, load_generator

    G, config, info = load_generator(args.checkpoint, device=args.device, use_ema=not args.no_ema)
    shape = tuple(info.get("sample_shape") or ())
    name = info.get("name") or config.data
    images = len(shape) == 3
    n = args.n or (1440 if images else 2500)
    x = generate(G, n, config.latent_dim, next(G.parameters()).device, num_classes=info.get("num_classes"),
                 seed=args.seed)
    result: dict = {"checkpoint": str(args.checkpoint), "data": name, "n": n, "seed": args.seed,
                    "ema": not args.no_ema}
    if images:
        if name not in data_mod.IMAGE_DATASETS:
            raise ValueError(f"no course classifier for the data {name!r}; evaluate handles "
                             f"{', '.join(data_mod.IMAGE_DATASETS)}")
        result.update(metrics.evaluate_images(x, data=name, image_size=shape[-1], seed=0))
        rows = [(k, v, result.get(f"{k}_real")) for k, v in result.items()
                if isinstance(v, float) and not k.endswith("_real") and k != "classifier_accuracy"]
        note = (f"classifier held-out accuracy {result['classifier_accuracy']:.3f}; set metrics on chunks of "
                f"{result['n_eval']} samples (x{result['chunks']}), k={result['k']} for precision/recall, "
                f"k={result['k_density']} for density/coverage")
    else:
        ds = data_mod.load(name, n=n, seed=args.seed + 1)
        if ds.centres is None:
            raise ValueError(f"the data {name!r} has no mode centres to measure against")
        fake = metrics.mode_metrics(x, ds.centres, ds.std)
        real = metrics.mode_metrics(ds.x, ds.centres, ds.std)
        for key in ("modes", "high_quality", "counts"):
            result[key], result[f"{key}_real"] = fake[key], real[key]
        result.update(num_modes=fake["num_modes"], min_count=20, n_std=3.0)
        rows = [("modes", fake["modes"], real["modes"]), ("high_quality", fake["high_quality"], real["high_quality"])]
        note = (f"{fake['num_modes']} modes; high quality = within 3 std of the nearest centre; a mode is covered "
                f"by >= 20 high-quality samples")
    print(f"{name}: {n} samples from {args.checkpoint}")
    print(f"{'metric':<28}{'generated':>12}{'real floor':>12}")
    for key, v, r in rows:
        fmt = (lambda t: f"{t:>12}") if isinstance(v, int) else (lambda t: f"{t:>12.4f}")
        print(f"{key:<28}{fmt(v)}{fmt(r) if r is not None else '':>12}")
    print(note)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data import DatasetUnavailableError
    from .device import DeviceError
    from .train import NonFiniteLossError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CheckpointError, DatasetUnavailableError, DeviceError, NonFiniteLossError, ValueError,
            TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside the training loop (which stops cleanly by itself)
        print("error: interrupted", file=sys.stderr)
        return 130
