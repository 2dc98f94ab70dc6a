"""Small, repeatable comparisons of training recipes on the 2-D mixtures.

The stabilisation notebook trains several variants of one base recipe (another loss, label smoothing, TTUR,
spectral normalisation, a penalty, ...) with the same data, seed and number of generator steps, and compares
them with the same metrics (``course_lib.metrics.mode_metrics``):

    >>> from course_lib import experiments
    >>> recipes = {"baseline": {}, "hinge": {"loss": "hinge"}, "R1": {"r1_gamma": 0.1}}
    >>> rows = experiments.compare(recipes, data="ring8", steps=1500, seeds=(0,))
    >>> print(experiments.format_table(rows))
    >>> experiments.plot_results(rows)

Every run is an ordinary ``GANTrainer`` run (the course's one training loop); nothing here trains by itself.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import data as data_mod
from .metrics import mode_metrics
from .train import GANTrainer, TrainConfig
from .utils import SEED_MAX, check_int, is_int

__all__ = ["compare", "format_table", "plot_results", "plot_samples", "DEFAULT_COLUMNS"]

DEFAULT_COLUMNS = ("name", "modes", "num_modes", "high_quality", "min_modes", "d_loss", "g_loss")


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds or not all(is_int(s) and 0 <= s <= SEED_MAX for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers in [0, 2**63 - 1], got {seeds!r}")
    return seeds


def compare(recipes: Mapping[str, Mapping[str, Any]], data: str = "ring8", steps: int = 1500,
            seeds: Sequence[int] = (0,), base: Mapping[str, Any] | None = None, n_samples: int = 2500,
            min_count: int = 20, tail: int = 100, verbose: bool = True) -> list[dict]:
    """Train every recipe on a 2-D mixture with the same seeds and step budget; measure each with
    ``mode_metrics``.

    Args:
        recipes: ``{name: TrainConfig changes}``, e.g. ``{"hinge": {"loss": "hinge"}}``; ``{}`` is the base.
        data: ``"ring8"`` or ``"grid25"`` (a dataset with mode centres).
        steps: generator steps per run (the same for every recipe). seeds: one run per seed and recipe.
        base: changes applied to ``TrainConfig.for_data(data)`` before each recipe's own changes. Unless
            ``base`` or a recipe says otherwise, runs use ``compile=False`` (compiling each short run of a
            small MLP costs more than it saves) and ``amp="off"`` (bfloat16 cannot resolve modes of std 0.02
            at radius 2: its spacing there is 1/64).
        n_samples: samples drawn from each trained generator; min_count: high-quality samples a mode needs to
            count as covered (20 of 2,500 in the course's benchmarks, scaled with ``n_samples``: pass it).
        tail: the reported losses are averaged over the last ``tail`` steps.
        verbose: print one line per finished run.

    Returns:
        One dict per recipe, in the order given: ``name``, ``modes`` (mean over seeds), ``min_modes``,
        ``num_modes``, ``high_quality`` (mean share in [0, 1]), ``d_loss``, ``g_loss`` (means of the last
        ``tail`` steps, averaged over seeds), ``seconds`` (mean wall time of one run), ``steps``, ``seeds``,
        ``per_seed`` (list of ``mode_metrics`` dicts), ``samples`` ((n_samples, 2) tensor of the first seed)
        and ``config`` (the first seed's ``TrainConfig``).

    Raises:
        ValueError: unknown data, a dataset without mode centres, empty recipes or bad seeds.
        TypeError / ValueError from ``TrainConfig``: a recipe names an unknown field or a bad value (the
            message names the recipe).
    """
    if data not in data_mod.POINT_DATASETS:
        raise ValueError(f"compare trains on the 2-D mixtures ('ring8', 'grid25'), got {data!r}")
    if not isinstance(recipes, Mapping) or not recipes:
        raise ValueError("recipes must be a non-empty dict {name: {TrainConfig field: value}}")
    check_int("steps", steps)
    seeds = _check_seeds(seeds)
    dataset = data_mod.load(data)
    if dataset.centres is None or dataset.sample_shape != (2,):
        raise ValueError(f"{data!r} has no 2-D mode centres; use 'ring8' or 'grid25'")
    base = {"compile": False, "amp": "off", **(base or {})}
    rows = []
    for name, changes in recipes.items():
        if not isinstance(changes, Mapping):
            raise TypeError(f"recipe {name!r}: expected a dict of TrainConfig changes, got {type(changes).__name__}")
        per_seed, losses, times, samples, first_cfg = [], [], [], None, None
        for seed in seeds:
            try:
                cfg = TrainConfig.for_data(data, **{**base, **changes, "steps": steps, "seed": seed})
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"recipe {name!r}: {exc}") from None
            trainer = GANTrainer(cfg, dataset=dataset, verbose=False)
            t0 = time.perf_counter()
            trainer.fit(progress=False)
            times.append(time.perf_counter() - t0)
            x = trainer.sample(n_samples)
            m = mode_metrics(x, dataset.centres, dataset.std, min_count=min_count)
            per_seed.append(m)
            h = trainer.history
            losses.append((float(np.mean(h["d_loss"][-tail:])), float(np.mean(h["g_loss"][-tail:]))))
            if samples is None:
                samples, first_cfg = x, cfg
            if verbose:
                print(f"{name:>22s} seed {seed}: {m['modes']}/{m['num_modes']} modes, "
                      f"{100 * m['high_quality']:.1f}% high quality")
        rows.append({
            "name": name, "modes": float(np.mean([m["modes"] for m in per_seed])),
            "min_modes": min(m["modes"] for m in per_seed), "num_modes": per_seed[0]["num_modes"],
            "high_quality": float(np.mean([m["high_quality"] for m in per_seed])),
            "d_loss": float(np.mean([l[0] for l in losses])), "g_loss": float(np.mean([l[1] for l in losses])),
            "seconds": float(np.mean(times)), "steps": steps, "seeds": seeds, "per_seed": per_seed,
            "samples": samples, "config": first_cfg,
        })
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = DEFAULT_COLUMNS,
                 percent: Sequence[str] = ("high_quality",)) -> str:
    """A plain-text table (one line per row) of the chosen columns; ``percent`` columns print as %.

    Args:
        rows: dicts such as those of ``compare``. columns: keys to print, in order.
        percent: columns holding shares in [0, 1], printed as percentages.

    Returns:
        The table as a string (header, rule, rows), ready for ``print``.

    Raises:
        KeyError: a row lacks one of the columns (the message lists the keys it has).
    """
    if not rows:
        raise ValueError("no rows to show")
    cells = []
    for row in rows:
        line = []
        for c in columns:
            if c not in row:
                raise KeyError(f"column {c!r} is not in row {row.get('name', '?')!r}; it has {sorted(row)}")
            v = row[c]
            line.append(f"{100 * v:.1f}%" if c in percent and isinstance(v, (int, float)) else _fmt(v))
        cells.append(line)
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    out.append("  ".join("-" * w for w in widths))
    for r in cells:
        out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def plot_results(rows: Sequence[Mapping[str, Any]], axes=None, title: str | None = None):
    """Two bar charts, modes covered (mean over seeds, with the minimum as a dot) and high-quality share,
    one bar per recipe; returns the Figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    else:
        fig = axes[0].figure
    names = [r["name"] for r in rows]
    pos = np.arange(len(rows))
    axes[0].bar(pos, [r["modes"] for r in rows], color="tab:blue")
    axes[0].plot(pos, [r["min_modes"] for r in rows], "k.", label="worst seed")
    axes[0].axhline(rows[0]["num_modes"], color="gray", ls="--", lw=0.8)
    axes[0].set_ylabel("modes covered")
    axes[0].set_ylim(0, rows[0]["num_modes"] + 0.5)
    axes[0].legend(fontsize=7, loc="lower right")
    axes[1].bar(pos, [100 * r["high_quality"] for r in rows], color="tab:orange")
    axes[1].set_ylabel("high-quality samples (%)")
    axes[1].set_ylim(0, 100)
    for ax in axes:
        ax.set_xticks(pos)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_samples(rows: Sequence[Mapping[str, Any]], centres: torch.Tensor, ncols: int = 4, size: float = 2.4,
                 n: int = 1000):
    """One small scatter plot of generated points (first seed) per recipe, mode centres as crosses;
    returns the Figure."""
    import matplotlib.pyplot as plt

    nrows = math.ceil(len(rows) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    c = torch.as_tensor(centres).float()
    lim = float(c.abs().max()) * 1.5 + 0.3
    for ax, row in zip(axes.flat, rows):
        s = row["samples"][:n].float().numpy()
        ax.scatter(s[:, 0], s[:, 1], s=1.5, c="tab:orange", alpha=0.6)
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="k", s=15)
        m = row["per_seed"][0]
        ax.set_title(f"{row['name']}\n{m['modes']}/{m['num_modes']} modes, {100 * m['high_quality']:.0f}% HQ",
                     fontsize=8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(rows):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
