"""Train once, reuse: the generator that notebook 04 trains, for the notebooks after it (06, 09).

Notebook 04 trains the DCGAN of Radford et al. (``recipes.DCGAN``) and saves it to ``runs/04_dcgan/checkpoint.pt``.
``trained_generator`` finds the best generator there is, in this order, and prints one line saying which:

1. in the ``quick`` budget (the automatic tests): a short run, trained here (the files of earlier runs are ignored);
2. the run folder that notebook 04 wrote (``run_dir``);
3. the model shipped with the course (``course_lib.pretrained``, name ``pretrained``);
4. otherwise a short run, trained here; a folder or shipped file that cannot be read is named, never raised.

    >>> G, source = trained_generator()                 # doctest: +SKIP
    >>> x = sampling.generate(G, 64, G.latent_dim, device)  # (64, 1, 32, 32) in [-1, 1]  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import budget
from . import data as data_mod
from .checkpoint import CheckpointError
from .config import TrainConfig
from .device import get_device
from .recipes import DCGAN
from .sampling import first_lines, load_generator
from .train import GANTrainer

__all__ = ["RUN_DIR", "Reused", "trained_generator", "run_dir_for_budget", "short_run"]

RUN_DIR = "runs/04_dcgan"  # where notebook 04 saves its DCGAN (relative to the notebook's folder)


class Reused(NamedTuple):
    """A generator and where it came from.

    G: in eval mode; maps (N, G.latent_dim) noise to (N, C, S, S) images in [-1, 1]. source: one line of text.
    """

    G: nn.Module
    source: str


def run_dir_for_budget(run_dir: str | os.PathLike = RUN_DIR) -> Path:
    """The folder a training notebook saves to: ``run_dir`` itself, or ``run_dir + "-quick"`` in the ``quick``
    budget, so that a seconds-long test run never stands in for a real one."""
    return Path(f"{run_dir}-quick") if budget.mode() == "quick" else Path(run_dir)


def short_run(data: str = "fashion-mnist", steps: int | None = None, dataset: data_mod.Dataset | None = None,
              device: str | torch.device | None = None, **changes: Any) -> nn.Module:
    """Train ``recipes.DCGAN[data]`` for ``steps`` (default: 12 / 300 / 1,500 steps in the quick / cpu / gpu
    budget; widths 16 in quick) on ``dataset`` (default: the training split, 2,000 images in quick) and return its
    generator in eval mode. ``changes`` override config fields (tests use tiny networks). Raises ValueError for
    data that ``recipes.DCGAN`` has no settings for."""
    if data not in DCGAN:
        raise ValueError(f"no DCGAN settings for {data!r} in recipes.DCGAN; known: {', '.join(DCGAN)}")
    quick = budget.mode() == "quick"
    steps = budget.pick(quick=12, cpu=300, gpu=1500) if steps is None else steps
    if dataset is None:
        dataset = data_mod.load(data, split="train", image_size=DCGAN[data]["image_size"])
        dataset = dataset.subset(2000) if quick else dataset
    widths = dict(g_width=16, d_width=16) if quick else {}
    device_changes = {} if device is None else {"device": str(get_device(device))}
    cfg = TrainConfig.for_data(data, **{**DCGAN[data], "steps": steps, "checkpoint_every": max(steps, 1), **widths,
                                        **device_changes, **changes})
    trainer = GANTrainer(cfg, dataset=dataset, verbose=False)
    trainer.fit(progress=True)
    return (trainer.G if trainer.G_ema is None else trainer.G_ema).eval()


def _from_run_folder(run_dir: Path, data: str, device: torch.device) -> tuple[nn.Module | None, str]:
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        return None, f"no run in {run_dir} (notebook 04 saves one there)"
    try:
        G, config, _ = load_generator(path, device=device)
    except (CheckpointError, OSError, ValueError, KeyError, RuntimeError) as exc:
        return None, f"{path} cannot be read ({first_lines(exc)})"
    if config.data != data:
        return None, f"{path} holds a {config.data!r} run, not {data!r}"
    return G, f"loaded notebook 04's generator from {path} ({config.steps:,} steps, loss {config.loss!r})"


def _from_pretrained(name: str, device: torch.device) -> tuple[nn.Module | None, str]:
    try:
        from .pretrained import load_pretrained
    except ImportError:
        return None, "no shipped models in this version of course_lib"
    try:
        return load_pretrained(name, device), f"loaded the model shipped with the course, {name!r}"
    except (CheckpointError, OSError, ValueError, KeyError, RuntimeError) as exc:
        return None, f"the shipped model {name!r} cannot be loaded ({first_lines(exc)})"


def trained_generator(run_dir: str | os.PathLike = RUN_DIR, pretrained: str | None = "fashion-dcgan",
                      data: str = "fashion-mnist", device: str | torch.device | None = None,
                      steps: int | None = None, dataset: data_mod.Dataset | None = None,
                      **changes: Any) -> Reused:
    """Notebook 04's generator: trained here in the quick budget, else loaded from ``run_dir``, else the shipped
    model ``pretrained`` (None: none), else trained here by ``short_run(data, steps, dataset, **changes)``.

    Prints one line saying which (and why the earlier sources were passed over). Returns ``Reused(G, source)``:
    G in eval mode on ``device`` (default ``get_device()``), (N, G.latent_dim) noise -> (N, C, S, S) in [-1, 1].
    """
    device = get_device(device)
    skipped: list[str] = []
    if budget.mode() != "quick":
        G, why = _from_run_folder(Path(run_dir), data, device)
        if G is None:
            skipped.append(why)
            if pretrained is not None:
                G, why = _from_pretrained(pretrained, device)
                skipped += [] if G is not None else [why]
        if G is not None:
            print(why)
            return Reused(G, why)
    reason = "quick budget" if not skipped else "; ".join(skipped)
    print(f"training a short DCGAN here instead ({reason})")
    G = short_run(data, steps, dataset, device, **changes).to(device)
    return Reused(G, f"a short DCGAN trained here ({reason})")
