"""A plain, hand-written DCGAN loop with a standard ``DataLoader``: the baseline the course's loop is timed against.

Used by ``benchmarks/throughput.py`` and its tests only; the course's own timing tools are in
``course_lib.timing`` (``measure_throughput``, ``time_steps``).

    >>> from plain_loop import PlainLoop, compare_loops            # benchmarks/ on sys.path
    >>> trainer = GANTrainer(cfg, dataset=random_images(1024, 3, 32), verbose=False)
    >>> c = compare_loops(trainer, PlainLoop(trainer.G, trainer.D, trainer.dataset.x.cpu()), steps=10)
    >>> c["ratio"]                         # > 1: the course's loop is faster than the plain DataLoader loop
"""
from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib.device import get_device  # noqa: E402
from course_lib.timing import synchronize, time_steps  # noqa: E402
from course_lib.utils import check_int  # noqa: E402

__all__ = ["PlainLoop", "measure_plain_loop", "compare_loops"]


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
    """Time the baseline ``PlainLoop(G, D, x, ...)`` (see there). Returns the keys of
    ``course_lib.timing.measure_throughput``; ``G`` and ``D`` are untouched."""
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    loop = PlainLoop(G, D, x, batch_size, device, lr, betas, reuse_fake, seed)
    r = time_steps(loop.step, steps, warmup, loop.device, batch_size)
    return {**r, "batch_size": batch_size, "device": str(loop.device),
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
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    check_int("chunk", chunk)
    if trainer.config.batch_size != plain.batch_size:
        raise ValueError(f"the loops use different batch sizes ({trainer.config.batch_size} and "
                         f"{plain.batch_size}): compare them at the same batch size")
    if warmup:
        trainer.fit(steps=warmup, progress=False)
        plain.run(warmup)
    synchronize(trainer.device)
    total = {"course": [0.0, 0.0], "plain": [0.0, 0.0]}
    per_step = {"course": trainer.config.batch_size * trainer.config.n_critic, "plain": plain.batch_size}
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
