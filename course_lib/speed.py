"""Measuring training speed: images per second of the course's loop, and of a plain hand-written loop.

    >>> from course_lib.speed import measure_throughput, compare_loops, PlainLoop, random_images
    >>> cfg = TrainConfig.for_data("mnist", image_size=32, batch_size=64, ema_decay=None, amp="off")
    >>> trainer = GANTrainer(cfg, dataset=random_images(1024, 3, 32), verbose=False)
    >>> r = measure_throughput(trainer, steps=20)
    >>> r["images_per_s"], r["peak_mem_bytes"]
    >>> c = compare_loops(trainer, PlainLoop(trainer.G, trainer.D, trainer.dataset.x.cpu()), steps=10)
    >>> c["ratio"]                         # > 1: the course's loop is faster than the plain DataLoader loop

The measuring functions warm up first (``warmup`` steps, not timed: first-call allocations, cuDNN autotuning and
``torch.compile``'s compilation happen there), then time ``steps`` steps, waiting for the GPU to finish
(``torch.cuda.synchronize``) before the clock starts and before it stops. Peak memory is the largest
``torch.cuda.max_memory_allocated`` during the timed steps (None off CUDA). ``cpu_seconds`` is the CPU time
of this process over the timed steps (all its threads): on a shared machine it is steadier than the wall
clock, since time spent waiting for a core is not counted.

*Images per second* counts the real images the discriminator sees: ``batch_size x n_critic`` per generator step
(the global batch under DistributedDataParallel).
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .device import get_device

__all__ = ["measure_throughput", "measure_plain_loop", "compare_loops", "PlainLoop", "random_images",
           "synchronize"]


def synchronize(device: torch.device) -> None:
    """Wait until all queued work on ``device`` is done (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _check_counts(steps: Any, warmup: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")


def random_images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> data_mod.Dataset:
    """A ``Dataset`` of ``n`` uniform-noise images (n, channels, size, size), float32 in [-1, 1], for timing."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    data_mod.check_image_size(size)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    return data_mod.Dataset("random", x, kind="images", note="uniform noise images for speed measurements")


def measure_throughput(trainer_or_config: Any, steps: int = 20, warmup: int = 5,
                       dataset: data_mod.Dataset | None = None) -> dict[str, Any]:
    """Time the course's training loop (``GANTrainer.fit``).

    Args:
        trainer_or_config: a ``GANTrainer`` (trained further by ``warmup + steps`` steps: its history and
            weights change; give it no ``out_dir`` so no checkpoint is timed), or a ``TrainConfig`` (a quiet
            trainer is built from it, with ``dataset`` when given).
        steps: timed generator steps. warmup: untimed steps before them.

    Returns:
        dict with ``images_per_s``, ``seconds`` (of the timed steps), ``cpu_seconds`` (CPU time of this
        process over them), ``peak_mem_bytes`` (CUDA, else None),
        ``steps``, ``warmup``, ``batch_size``, ``device`` and ``options`` (amp, channels_last, compile).
    """
    from .train import GANTrainer, TrainConfig

    _check_counts(steps, warmup)
    if isinstance(trainer_or_config, TrainConfig):
        trainer = GANTrainer(trainer_or_config, dataset=dataset, verbose=False)
    elif isinstance(trainer_or_config, GANTrainer):
        trainer = trainer_or_config
    else:
        raise TypeError(f"measure_throughput takes a GANTrainer or a TrainConfig, got "
                        f"{type(trainer_or_config).__name__}")
    device = trainer.device
    if warmup:
        trainer.fit(steps=warmup, progress=False)
    synchronize(device)
    _reset_peak(device)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(steps=steps, progress=False)
    synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    images = steps * trainer.config.batch_size * trainer.config.n_critic_effective
    return {"images_per_s": images / seconds, "seconds": seconds, "peak_mem_bytes": _peak(device),
            "cpu_seconds": cpu_seconds,
            "steps": steps, "warmup": warmup, "batch_size": trainer.config.batch_size, "device": str(device),
            "options": {"amp": trainer.amp_mode, "channels_last": trainer.channels_last,
                        "compile": bool(trainer.compile_G or trainer.compile_D)}}


class PlainLoop:
    """A plain, hand-written DCGAN loop with a standard ``torch.utils.data.DataLoader``: the baseline.

    The loop is what one writes following pytorch/examples' DCGAN: a ``TensorDataset`` of ``x``
    ((N, C, S, S) float32 in [-1, 1], kept on the CPU), ``DataLoader(shuffle=True, batch_size,
    drop_last=True)``, each batch moved to ``device``; Adam; binary cross-entropy on logits (the non-saturating
    loss). One ``step()``: a discriminator update on a real batch and on ``G(z).detach()``, then a generator
    update. By default the generator update uses fresh noise (as ``GANTrainer`` does); ``reuse_fake=True``
    reuses the discriminator step's fakes as pytorch/examples does (one generator forward pass fewer). No
    per-step checks or logging. ``G`` and ``D`` are copied: the originals are untouched.
    """

    def __init__(self, G: nn.Module, D: nn.Module, x: torch.Tensor, batch_size: int = 64,
                 device: str | torch.device = "cpu", lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 reuse_fake: bool = False, seed: int = 0):
        self.device = get_device(device) if isinstance(device, str) else device
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must be an image tensor of shape (N, C, S, S), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if len(x) < batch_size:
            raise ValueError(f"x has {len(x)} images, fewer than one batch of {batch_size}")
        torch.manual_seed(seed)
        self.batch_size, self.reuse_fake = batch_size, reuse_fake
        self.G = copy.deepcopy(G).to(self.device).train()
        self.D = copy.deepcopy(D).to(self.device).train()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.cpu()), batch_size=batch_size,
                                                  shuffle=True, drop_last=True,
                                                  pin_memory=self.device.type == "cuda")
        self.ones = torch.ones(batch_size, device=self.device)
        self.zeros = torch.zeros(batch_size, device=self.device)
        self._it = self._batches()

    def _batches(self):
        while True:
            for (real,) in self.loader:
                yield real

    def step(self) -> torch.Tensor:
        """One discriminator and one generator update; returns the generator loss (not synchronised)."""
        G, D, B, dev = self.G, self.D, self.batch_size, self.device
        real = next(self._it).to(dev, non_blocking=True)
        self.opt_D.zero_grad(set_to_none=True)
        z = torch.randn(B, G.latent_dim, device=dev)
        if self.reuse_fake:
            fake = G(z)
            d_in = fake.detach()
        else:
            with torch.no_grad():
                d_in = G(z)
        d_loss = (F.binary_cross_entropy_with_logits(D(real), self.ones)
                  + F.binary_cross_entropy_with_logits(D(d_in), self.zeros))
        d_loss.backward()
        self.opt_D.step()
        self.opt_G.zero_grad(set_to_none=True)
        if not self.reuse_fake:
            fake = G(torch.randn(B, G.latent_dim, device=dev))
        g_loss = F.binary_cross_entropy_with_logits(D(fake), self.ones)
        g_loss.backward()
        self.opt_G.step()
        return g_loss

    def run(self, steps: int) -> None:
        """``steps`` steps, then wait for the device."""
        for _ in range(steps):
            last = self.step()
        last.item()
        synchronize(self.device)


def measure_plain_loop(G: nn.Module, D: nn.Module, x: torch.Tensor, batch_size: int = 64, steps: int = 20,
                       warmup: int = 5, device: str | torch.device = "cpu", lr: float = 2e-4,
                       betas: tuple[float, float] = (0.5, 0.999), reuse_fake: bool = False,
                       seed: int = 0) -> dict[str, Any]:
    """Time the baseline ``PlainLoop(G, D, x, ...)`` (see there). Returns the same keys as
    ``measure_throughput``; ``G`` and ``D`` are untouched."""
    _check_counts(steps, warmup)
    loop = PlainLoop(G, D, x, batch_size, device, lr, betas, reuse_fake, seed)
    if warmup:
        loop.run(warmup)
    _reset_peak(loop.device)
    t0, c0 = time.perf_counter(), time.process_time()
    loop.run(steps)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"images_per_s": steps * batch_size / seconds, "seconds": seconds, "peak_mem_bytes": _peak(loop.device),
            "cpu_seconds": cpu_seconds, "steps": steps, "warmup": warmup, "batch_size": batch_size,
            "device": str(loop.device),
            "options": {"amp": "off", "channels_last": False, "compile": False, "reuse_fake": reuse_fake}}


def compare_loops(trainer: Any, plain: PlainLoop, steps: int = 20, warmup: int = 3, chunk: int = 1
                  ) -> dict[str, Any]:
    """Time the course's loop (``trainer.fit``) against a ``PlainLoop`` fairly on a busy machine.

    The two loops take turns, ``chunk`` steps at a time (the order alternates), until each has done ``steps``
    timed steps, so that a change of load (other jobs on a shared CPU) hits both alike. Use ``chunk=1`` on a
    CPU; on a GPU a larger chunk (e.g. 10) keeps the per-chunk synchronisation from mattering.

    Returns a dict: ``course`` and ``plain`` (each ``images_per_s``, ``seconds``, ``cpu_seconds``,
    ``images_per_cpu_s``), ``ratio`` (course / plain images per second; above 1: the course's loop is faster),
    ``ratio_cpu`` (the same per CPU-second), ``ratio_median_of_pairs`` (median over consecutive chunk pairs).
    """
    _check_counts(steps, warmup)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if trainer.config.batch_size != plain.batch_size:
        raise ValueError(f"the loops use different batch sizes ({trainer.config.batch_size} and "
                         f"{plain.batch_size}): compare them at the same batch size")
    if warmup:
        trainer.fit(steps=warmup, progress=False)
        plain.run(warmup)
    synchronize(trainer.device)
    total = {"course": [0.0, 0.0], "plain": [0.0, 0.0]}
    per_step = {"course": trainer.config.batch_size * trainer.config.n_critic_effective, "plain": plain.batch_size}
    pair_ratios = []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        order = ("course", "plain") if (done // chunk) % 2 == 0 else ("plain", "course")
        wall = {}
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "course":
                trainer.fit(steps=n, progress=False)
                synchronize(trainer.device)
            else:
                plain.run(n)
            wall[name] = time.perf_counter() - t0
            total[name][0] += wall[name]
            total[name][1] += time.process_time() - c0
        pair_ratios.append((wall["plain"] / per_step["plain"]) / (wall["course"] / per_step["course"]))
        done += n
    out: dict[str, Any] = {}
    for name, (sec, cpu) in total.items():
        images = steps * per_step[name]
        out[name] = {"images_per_s": images / sec, "seconds": sec, "cpu_seconds": cpu,
                     "images_per_cpu_s": images / cpu if cpu > 0 else float("nan")}
    out["ratio"] = out["course"]["images_per_s"] / out["plain"]["images_per_s"]
    out["ratio_cpu"] = out["course"]["images_per_cpu_s"] / out["plain"]["images_per_cpu_s"]
    out["ratio_median_of_pairs"] = statistics.median(pair_ratios)
    out.update(steps=steps, warmup=warmup, chunk=chunk, batch_size=plain.batch_size, device=str(trainer.device))
    return out
