"""Measuring training speed on any device: throughput, host syncs, FLOPs and MFU, the option ladder, memory
against batch size, and scaling over processes.

    >>> from course_lib.speed import measure_throughput, compare_loops, PlainLoop, random_images
    >>> cfg = TrainConfig.for_data("mnist", image_size=32, batch_size=64, ema_decay=None, amp="off")
    >>> trainer = GANTrainer(cfg, dataset=random_images(1024, 3, 32), verbose=False)
    >>> r = measure_throughput(trainer, steps=20)
    >>> r["images_per_s"], r["peak_mem_bytes"]
    >>> c = compare_loops(trainer, PlainLoop(trainer.G, trainer.D, trainer.dataset.x.cpu()), steps=10)
    >>> c["ratio"]                         # > 1: the course's loop is faster than the plain DataLoader loop
    >>> count_host_syncs(trainer.train_step, steps=3)["per_step"]     # device-to-host reads per step
    >>> measure_mfu(trainer, steps=10)["mfu"]                         # achieved FLOP/s / the device's peak
    >>> option_ladder(lambda opts: TrainConfig.for_data(..., **opts), dataset, steps=10)   # fp32 ... CUDA graphs
    >>> memory_sweep(lambda b: TrainConfig.for_data(..., batch_size=b), [64, 128, 256], dataset)
    >>> scaling_efficiency(nprocs=(1, 2))                             # torchrun, gloo on a CPU, NCCL on GPUs

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

import contextlib
import copy
import dataclasses
import gc
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .device import get_device
from .runtime import convert_sync_batchnorm  # noqa: F401 - re-exported: the speed options in one place
from .runtime import dist_info
from .utils import check_bool, check_int

__all__ = ["measure_throughput", "measure_plain_loop", "compare_loops", "PlainLoop", "random_images",
           "synchronize", "time_steps", "measure_loader",
           "count_host_syncs", "assert_no_cuda_syncs", "HostSyncError", "SYNC_READS",
           "count_flops", "GPUPeak", "GPU_PEAKS", "gpu_peak", "measure_matmul_peak", "peak_flops",
           "precision_of", "measure_mfu",
           "tf32_enabled", "compile_for_device", "Rung", "LADDER", "option_ladder", "format_ladder",
           "is_out_of_memory", "memory_sweep", "saved_tensor_bytes",
           "convert_sync_batchnorm", "torchrun_command", "scaling_efficiency"]

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
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)


def random_images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> data_mod.Dataset:
    """A ``Dataset`` of ``n`` uniform-noise images (n, channels, size, size), float32 in [-1, 1], for timing."""
    check_int("n", n)
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
    images = steps * trainer.config.batch_size * trainer.config.n_critic
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


def time_steps(step: Callable[[], Any], steps: int, warmup: int, device: torch.device | str,
               images_per_step: int) -> dict[str, Any]:
    """Time ``step()`` (any callable that queues one training step): ``warmup`` untimed calls, then ``steps``
    timed ones between two synchronisations. Returns ``images_per_s``, ``seconds``, ``cpu_seconds``,
    ``peak_mem_bytes`` (CUDA, else None), ``steps``, ``warmup``."""
    _check_counts(steps, warmup)
    device = torch.device(device)
    for _ in range(warmup):
        step()
    synchronize(device)
    _reset_peak(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"images_per_s": steps * images_per_step / seconds, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "peak_mem_bytes": _peak(device), "steps": steps, "warmup": warmup}


def _trainer_of(trainer_or_config: Any, dataset: data_mod.Dataset | None = None) -> Any:
    from .train import GANTrainer, TrainConfig

    if isinstance(trainer_or_config, TrainConfig):
        return GANTrainer(trainer_or_config, dataset=dataset, verbose=False)
    if isinstance(trainer_or_config, GANTrainer):
        return trainer_or_config
    raise TypeError(f"expected a GANTrainer or a TrainConfig, got {type(trainer_or_config).__name__}")


def _images_per_step(trainer: Any) -> int:
    return trainer.config.batch_size * trainer.config.n_critic



def measure_loader(loader: Any, device: torch.device | str, epochs: int = 2) -> dict[str, Any]:
    """Images per second of a ``DataLoader`` delivering batches to ``device`` (``.to(device,
    non_blocking=True)``; asynchronous only from pinned memory, ``pin_memory=True``). ``epochs`` passes over
    the loader; the last one is timed, so that worker start-up (each epoch, unless ``persistent_workers``)
    counts only where it recurs. Batches are ``(x, ...)`` tuples or lists, or tensors."""
    check_int("epochs", epochs)
    device = torch.device(device)
    seconds = images = 0
    for epoch in range(epochs):
        synchronize(device)
        t0, images = time.perf_counter(), 0
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = x.to(device, non_blocking=True)
            images += len(x)
        synchronize(device)
        seconds = time.perf_counter() - t0
    return {"images_per_s": images / seconds, "seconds": seconds, "images": images,
            "num_workers": getattr(loader, "num_workers", None), "pin_memory": getattr(loader, "pin_memory", None)}

# ============================================================================ hidden host syncs

#: Tensor methods that read a value back to the host. On CUDA each one waits for the GPU to finish all the work
#: queued before it (a device-to-host synchronisation); ``print(t)`` and f-strings go through ``__repr__`` and
#: ``__format__``; ``if t:`` and ``if torch.isfinite(t).all():`` through ``__bool__``.
SYNC_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__repr__",
              "__format__")
_TORCH_DIR = os.path.dirname(torch.__file__)
_OPTIM_DIR = os.path.join(_TORCH_DIR, "optim") + os.sep
_HERE = os.path.abspath(__file__)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(_HERE)) + os.sep


class HostSyncError(RuntimeError):
    """A step that should run without device-to-host synchronisation synchronised."""


def _caller_site() -> tuple[str, bool]:
    """``("file:line in function", from_optim)``: the first frame outside torch and this module, and whether
    the read itself was made by ``torch.optim``."""
    frame = sys._getframe(2)
    from_optim = frame.f_code.co_filename.startswith(_OPTIM_DIR)
    while frame is not None and (frame.f_code.co_filename.startswith(_TORCH_DIR)
                                 or os.path.abspath(frame.f_code.co_filename) == _HERE):
        frame = frame.f_back
    if frame is None:
        return "<torch>", from_optim
    path = os.path.abspath(frame.f_code.co_filename)
    if path.startswith(_PACKAGE_PARENT):  # course_lib/train.py rather than an absolute path
        path = os.path.relpath(path, _PACKAGE_PARENT)
    elif os.path.isfile(path):
        path = os.path.basename(path)
    return f"{path}:{frame.f_lineno} in {frame.f_code.co_name}", from_optim


def count_host_syncs(fn: Callable[[], Any], steps: int = 1) -> dict[str, Any]:
    """Call ``fn()`` ``steps`` times and count the tensor reads that would synchronise a GPU with the host.

    An honest check that runs on a CPU: during the calls ``torch.Tensor``'s reading methods (``SYNC_READS``:
    ``.item()``, ``.tolist()``, ``.numpy()``, ``.cpu()``, ``bool(t)``, ``float(t)``, ``int(t)``, ``print(t)``,
    ``f"{t}"``...) are wrapped by counters. Not counted: reads made inside another counted read (``print(t)``
    counts once), and reads made by ``torch.optim`` itself (Adam's step counter is a CPU tensor even in a CUDA
    run, so reading it waits for nothing). Reads that a library makes for you are counted, e.g. a float16
    ``GradScaler.step`` reading ``found_inf``: on a GPU that is a real synchronisation. On CUDA
    ``assert_no_cuda_syncs`` is the ground truth.

    Returns:
        dict: ``total`` reads, ``per_step`` (total / steps), ``by_kind`` ({method: count}), ``sites``
        ({"file:line in function": count}: the first caller outside torch) and ``steps``.
    """
    check_int("steps", steps)
    counts: Counter = Counter()
    sites: Counter = Counter()
    depth = [0]
    originals = {name: torch.Tensor.__dict__.get(name, _MISSING) for name in SYNC_READS}

    def wrap(name: str, method: Callable) -> Callable:
        def counted(self, *args, **kwargs):
            if depth[0] == 0:
                site, from_optim = _caller_site()
                if not from_optim:
                    counts[name] += 1
                    sites[f"{site}: {name}"] += 1
            depth[0] += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        counted.__name__ = name
        return counted

    for name in SYNC_READS:
        setattr(torch.Tensor, name, wrap(name, getattr(torch.Tensor, name)))
    try:
        for _ in range(steps):
            fn()
    finally:
        for name, original in originals.items():
            if original is _MISSING:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)
    total = sum(counts.values())
    return {"total": total, "per_step": total / steps, "by_kind": dict(counts), "sites": dict(sites),
            "steps": steps}


_MISSING = object()


def assert_no_cuda_syncs(fn: Callable[[], Any], steps: int = 3, warmup: int = 2) -> None:
    """Run ``fn()`` ``warmup`` times, then ``steps`` times under ``torch.cuda.set_sync_debug_mode("error")``,
    which makes every synchronising CUDA call raise. Use it on a steady-state training step.

    Raises:
        RuntimeError: no CUDA device (on a CPU use ``count_host_syncs``).
        HostSyncError: a call synchronised; the message names the step and CUDA's own description.
    """
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    if not torch.cuda.is_available():
        raise RuntimeError("assert_no_cuda_syncs needs a CUDA device, and none is available; on a CPU count the "
                           "host reads with count_host_syncs(fn, steps) instead")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    step = 0
    try:
        for step in range(1, steps + 1):
            fn()
    except RuntimeError as exc:
        raise HostSyncError(f"call {step} of {steps} synchronised the GPU with the host: {exc}. Keep values on "
                            f"the device (no .item(), .tolist(), bool(t), print(t) inside the step)") from exc
    finally:
        torch.cuda.set_sync_debug_mode(before)
    torch.cuda.synchronize()


# ============================================================================ FLOPs and MFU

def count_flops(fn: Callable[[], Any]) -> int:
    """The floating-point operations of one call of ``fn()`` (forward and backward passes alike), counted by
    ``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions (2 per multiply-add);
    element-wise work (activations, batch norm, the optimiser) is not counted, as is usual for MFU."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


@dataclasses.dataclass(frozen=True)
class GPUPeak:
    """Peak dense FLOP/s of a GPU per precision (None: no tensor-core path for it), at boost clock, without
    the 2:4 structured sparsity that spec sheets often quote (sparse figures are twice these)."""
    name: str
    pattern: str  # regular expression matched against torch.cuda.get_device_name()
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float
    source: str

    def get(self, precision: str) -> float | None:
        return getattr(self, precision)


T = 1e12
# Vendor figures: NVIDIA data sheets (T4, V100, A10, L4, A100, H100, H200) and architecture white papers
# (GA102 for the RTX 3090, AD102 for the RTX 4090: FP16/BF16 with FP32 accumulation, what PyTorch uses).
GPU_PEAKS: tuple[GPUPeak, ...] = (
    GPUPeak("H200 SXM", r"H200", 67 * T, 494.7 * T, 989.5 * T, 989.5 * T, "NVIDIA H200 data sheet"),
    GPUPeak("H100 PCIe", r"H100.*PCIe", 51 * T, 378 * T, 756 * T, 756 * T, "NVIDIA H100 data sheet"),
    GPUPeak("H100 SXM", r"H100", 67 * T, 494.7 * T, 989.5 * T, 989.5 * T, "NVIDIA H100 data sheet"),
    GPUPeak("A100", r"A100", 19.5 * T, 156 * T, 312 * T, 312 * T, "NVIDIA A100 data sheet"),
    GPUPeak("A10", r"\bA10\b", 31.2 * T, 62.5 * T, 125 * T, 125 * T, "NVIDIA A10 data sheet"),
    GPUPeak("L4", r"\bL4\b", 30.3 * T, 60 * T, 121 * T, 121 * T, "NVIDIA L4 data sheet"),
    GPUPeak("V100", r"V100", 15.7 * T, None, None, 125 * T, "NVIDIA V100 data sheet (SXM2)"),
    GPUPeak("T4", r"\bT4\b", 8.1 * T, None, None, 65 * T, "NVIDIA T4 data sheet"),
    GPUPeak("RTX 4090", r"RTX 4090", 82.6 * T, 82.6 * T, 165.2 * T, 165.2 * T, "NVIDIA Ada (AD102) white paper"),
    GPUPeak("RTX 3090", r"RTX 3090", 35.6 * T, 35.6 * T, 71 * T, 71 * T, "NVIDIA Ampere (GA102) white paper"),
)
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_peak(name: str) -> GPUPeak | None:
    """The ``GPU_PEAKS`` entry whose pattern matches a device name such as ``"NVIDIA H100 80GB HBM3"``."""
    for peak in GPU_PEAKS:
        if re.search(peak.pattern, name, flags=re.IGNORECASE):
            return peak
    return None


def measure_matmul_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        n: int | None = None, repeats: int = 3, max_seconds: float = 4.0) -> dict[str, Any]:
    """The FLOP/s of a large square matrix product on ``device``: the practical peak, for devices with no spec
    figure (CPUs, unknown GPUs). ``n`` defaults to 2048 on a CPU (smaller products run well below the peak) and
    8192 on a GPU; the best of ``repeats`` timed products counts (each ``2 n^3`` FLOPs) after one untimed one.
    On a CPU the default is halved (down to 256) while the ``repeats + 1`` products would take over
    ``max_seconds``, judged from a 256 x 256 product: a dtype the CPU has no instructions for would otherwise take
    minutes (bfloat16 without AVX-512 BF16 or AMX: under 1.5 GFLOP/s on an AVX2 EPYC, against about 85 in
    float32). On a busy machine the figure is low (a share of a core is measured), so an MFU against it can pass
    100 %.

    Returns:
        dict: ``flops_per_s``, ``n``, ``dtype``, ``seconds`` (best), ``threads`` (torch CPU threads), ``device``.
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    check_int("repeats", repeats)
    g = torch.Generator().manual_seed(0)
    if check_int("n", n, allow_none=True) is None:
        n = 8192 if device.type != "cpu" else _cpu_matmul_size(dtype, max_seconds / (repeats + 1))
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return {"flops_per_s": 2 * n**3 / best, "n": n, "dtype": str(dtype).replace("torch.", ""), "seconds": best,
            "threads": torch.get_num_threads(), "device": str(device)}


def _cpu_matmul_size(dtype: torch.dtype, max_seconds: float, largest: int = 2048) -> int:
    """The largest n in 256, 512, ..., ``largest`` whose n x n product in ``dtype`` should take at most
    ``max_seconds`` on this CPU, from the rate of one timed 256 x 256 product (``measure_matmul_peak``)."""
    rate = measure_matmul_peak("cpu", dtype, n=256, repeats=1)["flops_per_s"]  # a rough figure
    n = largest
    while n > 256 and 2 * n**3 / rate > max_seconds:
        n //= 2
    return n


def peak_flops(device: str | torch.device, precision: str = "fp32") -> dict[str, Any]:
    """The peak FLOP/s that MFU divides by: the vendor's dense figure for a known GPU (``GPU_PEAKS``), else a
    measured large matrix product (``measure_matmul_peak``; "tf32" then means float32 with TF32 allowed).

    Returns:
        dict: ``flops_per_s``, ``precision``, ``source`` (the data sheet, or "measured ...").
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name)
        if peak is not None and peak.get(precision) is not None:
            return {"flops_per_s": peak.get(precision), "precision": precision,
                    "source": f"{peak.source}: {peak.name} dense {precision}"}
    with tf32_enabled(precision == "tf32"):
        m = measure_matmul_peak(device, _DTYPES[precision])
    return {"flops_per_s": m["flops_per_s"], "precision": precision,
            "source": f"measured: {m['n']}x{m['n']} {m['dtype']} matmul on {device} ({m['threads']} threads)"}


def precision_of(trainer: Any) -> str:
    """The precision a trainer's convolutions run in: ``bf16`` / ``fp16`` under autocast; with autocast off,
    ``tf32`` on an Ampere or newer GPU while ``torch.backends.cudnn.allow_tf32`` is on (PyTorch's default for
    convolutions), else ``fp32``."""
    amp = getattr(trainer, "amp_mode", "off")
    if amp in ("bf16", "fp16"):
        return amp
    device = trainer.device
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def measure_mfu(trainer_or_config: Any, steps: int = 10, warmup: int = 3, peak: dict | float | None = None,
                dataset: data_mod.Dataset | None = None) -> dict[str, Any]:
    """Model FLOP utilisation of the course's training step: achieved FLOP/s over the device's peak.

    The FLOPs of one ``train_step`` are counted once (``count_flops``, an extra untimed step), the step rate is
    measured with ``measure_throughput``; achieved = FLOPs per step x steps per second.

    Args:
        trainer_or_config: a ``GANTrainer`` (it trains on) or a ``TrainConfig``.
        peak: FLOP/s to divide by, or a ``peak_flops`` dict; default ``peak_flops(device, precision_of(...))``.

    Returns:
        dict: ``mfu`` (0..1), ``achieved_flops_per_s``, ``flops_per_step``, ``peak_flops_per_s``,
        ``peak_source``, ``precision``, ``images_per_s``, ``device``.
    """
    trainer = _trainer_of(trainer_or_config, dataset)
    if warmup:
        trainer.fit(steps=warmup, progress=False)
    flops = count_flops(trainer.train_step)
    r = measure_throughput(trainer, steps=steps, warmup=0)
    precision = precision_of(trainer)
    if peak is None:
        peak = peak_flops(trainer.device, precision)
    if isinstance(peak, dict):
        peak_value, source = float(peak["flops_per_s"]), peak.get("source", "given")
    else:
        peak_value, source = float(peak), "given"
    if not peak_value > 0:
        raise ValueError(f"peak must be a positive number of FLOP/s, got {peak_value!r}")
    achieved = flops * steps / r["seconds"]
    return {"mfu": achieved / peak_value, "achieved_flops_per_s": achieved, "flops_per_step": flops,
            "peak_flops_per_s": peak_value, "peak_source": source, "precision": precision,
            "images_per_s": r["images_per_s"], "device": str(trainer.device)}


# ============================================================================ the option ladder

@contextlib.contextmanager
def tf32_enabled(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 for float32 matrix products and cuDNN convolutions in the block, then restore.

    TF32 keeps float32's range with a 10-bit mantissa on Ampere and newer GPUs. PyTorch allows it for
    convolutions by default (``torch.backends.cudnn.allow_tf32 = True``) and not for matmuls, so ``amp="off"``
    on such a GPU is *not* pure float32 for a DCGAN. No effect on a CPU."""
    check_bool("enabled", enabled)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def compile_for_device(model: nn.Module, mode: str = "default", device: torch.device | str | None = None
                       ) -> nn.Module:
    """``torch.compile(model, mode=mode)``; ``mode="reduce-overhead"`` (CUDA graphs: one launch replays the
    whole recorded step) needs CUDA, so on a CPU or MPS it falls back to the default mode with a warning."""
    modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    if mode not in modes:
        raise ValueError(f"mode must be one of {', '.join(modes)}, got {mode!r}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    if mode in ("reduce-overhead", "max-autotune") and device.type != "cuda":
        warnings.warn(f"torch.compile mode={mode!r} uses CUDA graphs, which need a CUDA device; on {device.type} "
                      f"compiling with mode='default' instead", UserWarning, stacklevel=2)
        mode = "default"
    return torch.compile(model, mode=mode)


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung of the option ladder: the TrainConfig options, TF32, and whether CUDA graphs are used."""
    name: str
    options: dict
    tf32: bool = False
    cuda_graphs: bool = False
    gpu_only: bool = False     # reported as "n/a on cpu" elsewhere
    slow_off_gpu: bool = False  # compiling takes minutes on a CPU: skipped there unless asked for


_FP32 = {"amp": "off", "channels_last": False, "compile": False}
LADDER: tuple[Rung, ...] = (
    Rung("fp32 eager", dict(_FP32)),
    Rung("+ TF32", dict(_FP32), tf32=True, gpu_only=True),
    Rung("+ channels-last", {**_FP32, "channels_last": True}, tf32=True),
    Rung("+ AMP bf16", {**_FP32, "channels_last": True, "amp": "bf16"}, tf32=True),
    Rung("+ torch.compile", {"channels_last": True, "amp": "bf16", "compile": True}, tf32=True, slow_off_gpu=True),
    Rung("+ CUDA graphs", {"channels_last": True, "amp": "bf16", "compile": False}, tf32=True, cuda_graphs=True,
         gpu_only=True),
)


def _amp_for(device: torch.device, amp: str) -> str:
    """bf16 where the device does it natively, else fp16 with gradient scaling (T4, V100)."""
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "fp16"
    return amp


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def option_ladder(make_config: Callable[[dict], Any], dataset: data_mod.Dataset, steps: int = 10,
                  warmup: int = 3, rungs: Sequence[Rung] = LADDER, compile_off_gpu: bool = False,
                  progress: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """Measure the cumulative speed options on one workload, each rung with a fresh trainer.

    Args:
        make_config: ``options -> TrainConfig``; it receives the rung's TrainConfig fields (``amp``,
            ``channels_last``, ``compile``) and should fix everything else (data, sizes, batch, device).
        dataset: the images to train on (e.g. ``random_images`` or Fashion-MNIST).
        steps, warmup: timed and untimed steps per rung (compilation and CUDA-graph capture fall in warm-up).
        rungs: default ``LADDER``: fp32 eager; + TF32; + channels-last; + AMP bf16 (float16 with gradient
            scaling where bf16 is not native); + torch.compile; + CUDA graphs (``mode="reduce-overhead"``).
        compile_off_gpu: also measure the torch.compile rung on a CPU (compiling a DCGAN there takes minutes).
        progress: called with each row as it is measured (to print it).

    Returns:
        one dict per rung: ``rung``, ``status`` ("measured", "n/a on cpu", "skipped", "failed"), ``note``,
        ``images_per_s``, ``peak_mem_bytes`` (CUDA), ``speedup`` (over the first measured rung),
        ``options``. A rung that fails (e.g. out of memory, a compiler error) is reported, not raised.
    """
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    rows: list[dict[str, Any]] = []
    base = None
    device = None
    for rung in rungs:
        cfg = make_config(dict(rung.options))
        device = get_device(cfg.device) if device is None else device
        opts = dict(rung.options, amp=_amp_for(device, rung.options.get("amp", "off")))
        row = {"rung": rung.name, "status": "measured", "note": "", "images_per_s": None, "peak_mem_bytes": None,
               "speedup": None, "options": {**opts, "tf32": rung.tf32, "cuda_graphs": rung.cuda_graphs}}
        on_gpu = device.type == "cuda"
        if rung.gpu_only and not on_gpu:
            row["status"] = f"n/a on {device.type}"
            row["note"] = ("TF32 is a tensor-core format of NVIDIA GPUs (Ampere and newer)" if rung.tf32 and not
                           rung.cuda_graphs else "CUDA graphs (torch.compile mode='reduce-overhead') need CUDA")
        elif rung.slow_off_gpu and not on_gpu and not compile_off_gpu:
            row["status"] = "skipped"
            row["note"] = f"compiling a DCGAN on {device.type} takes minutes; pass compile_off_gpu=True to measure"
        else:
            try:
                with tf32_enabled(rung.tf32):
                    r = _measure_rung(make_config, opts, rung, dataset, steps, warmup)
                row.update(images_per_s=r["images_per_s"], peak_mem_bytes=r["peak_mem_bytes"])
                if opts["amp"] != rung.options.get("amp", "off"):
                    row["note"] = f"{opts['amp']} with gradient scaling: bf16 is not native on this GPU"
            except Exception as exc:  # noqa: BLE001 - a failing rung is reported, the ladder goes on
                row["status"], row["note"] = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            finally:
                _free(device)
        if row["images_per_s"] is not None:
            base = base or row["images_per_s"]
            row["speedup"] = row["images_per_s"] / base
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _measure_rung(make_config, opts: dict, rung: Rung, dataset, steps: int, warmup: int) -> dict[str, Any]:
    from .train import GANTrainer

    cfg_opts = {k: opts[k] for k in ("amp", "channels_last", "compile")}
    trainer = GANTrainer(make_config(cfg_opts), dataset=dataset, verbose=False)
    trainer.G.train()
    trainer.D.train()
    if rung.cuda_graphs:
        trainer.G_wrapped = compile_for_device(trainer.G, "reduce-overhead", trainer.device)
        if not trainer.config.uses_double_backward():
            trainer.D_wrapped = compile_for_device(trainer.D, "reduce-overhead", trainer.device)

    def step() -> None:
        if rung.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: earlier graph outputs may be reused
        trainer.train_step()

    return time_steps(step, steps, warmup, trainer.device, _images_per_step(trainer))


def format_ladder(rows: Sequence[dict[str, Any]]) -> str:
    """The ladder as a markdown table: rung, images/s, speed-up, peak memory, MFU (when the rows have it),
    status and note."""
    mfu = any(r.get("mfu") is not None for r in rows)
    lines = ["| rung | images/s | speed-up | peak memory |" + (" MFU |" if mfu else "") + " status |",
             "|---|---|---|---|" + ("---|" if mfu else "") + "---|"]
    for r in rows:
        ips = f"{r['images_per_s']:,.0f}" if r["images_per_s"] is not None else "-"
        up = f"{r['speedup']:.2f}x" if r["speedup"] is not None else "-"
        mem = f"{r['peak_mem_bytes'] / 2**20:,.0f} MiB" if r["peak_mem_bytes"] else "n/a (not CUDA)"
        share = (f" {100 * r['mfu']:.2f} % |" if r.get("mfu") is not None else " - |") if mfu else ""
        status = r["status"] + (f": {r['note']}" if r["note"] else "")
        lines.append(f"| {r['rung']} | {ips} | {up} | {mem} |{share} {status} |")
    return "\n".join(lines)


# ============================================================================ memory against batch size

_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` (CUDA), ``MemoryError`` and a RuntimeError saying out of memory
    (the CPU allocator's "DefaultCPUAllocator: can't allocate memory", MPS's "MPS backend out of memory")."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


def saved_tensor_bytes(fn: Callable[[], Any], exclude: Sequence[nn.Module] = ()) -> int:
    """Bytes of the tensors that the forward passes inside ``fn()`` save for backward, each storage counted once
    (an activation saved by two operations, e.g. a ReLU's output kept by the ReLU and by the next layer, is one
    block of memory). Parameters are not activations: tensors sharing storage with a ``nn.Parameter`` or with the
    parameters and buffers of the ``exclude`` modules (a transposed weight saved by a linear layer) are left out.
    Every tensor saved during ``fn()`` counts, also those freed before it returns (the discriminator's, once its
    backward pass ran): an upper bound of the activation memory of a training step, on any device, and the same
    number on every run."""
    skip = {t.untyped_storage().data_ptr() for m in exclude for t in (*m.parameters(), *m.buffers())}
    # The storages are held until fn() returns, so a freed block cannot be reused at the same address by a later
    # tensor and then be mistaken for one already counted (which made the count depend on the allocator).
    seen: dict[tuple[int, str], torch.UntypedStorage] = {}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if t.layout != torch.strided or isinstance(t, nn.Parameter) or isinstance(t._base, nn.Parameter):
            return t
        storage = t.untyped_storage()
        key = (storage.data_ptr(), str(t.device))
        if key not in seen and storage.data_ptr() not in skip and storage.data_ptr() != 0:
            seen[key] = storage
            total += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def memory_sweep(make_config: Callable[[int], Any], batch_sizes: Sequence[int], dataset: data_mod.Dataset,
                 steps: int = 2, warmup: int = 1, memory_cap_bytes: int | None = None,
                 progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train a few steps at each batch size, measure the memory, catch out-of-memory, report the largest fit.

    Memory: on CUDA the peak ``torch.cuda.max_memory_allocated`` of the timed steps; elsewhere the training
    state (weights, gradients and Adam's two moments: 4 x the parameter bytes) plus the activations saved in one
    step (``saved_tensor_bytes``). ``memory_cap_bytes`` caps the memory: on CUDA through
    ``torch.cuda.set_per_process_memory_fraction`` (a real allocator error), elsewhere a batch whose measured
    footprint exceeds it counts as out of memory (announced in its row). An out-of-memory error is caught, the
    memory freed, and the sweep stops: larger batches would not fit either. Other errors are raised.

    Returns:
        dict: ``rows`` (one per batch tried: ``batch_size``, ``status`` "ok" / "out of memory", ``memory_bytes``,
        ``images_per_s``, ``note``), ``largest_fit`` (None if none fits), ``device``, ``memory_kind``.
    """
    sizes = [check_int("batch size", b) for b in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes is empty: give the batch sizes to try, e.g. [64, 128, 256]")
    check_int("memory_cap_bytes", memory_cap_bytes, allow_none=True)
    from .train import GANTrainer

    device = get_device(make_config(sizes[0]).device)
    cuda = device.type == "cuda"
    rows, largest = [], None
    fraction_before = None
    if cuda and memory_cap_bytes:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, memory_cap_bytes / total), device)
        fraction_before = 1.0
    try:
        for b in sorted(sizes):
            row = {"batch_size": b, "status": "ok", "memory_bytes": None, "images_per_s": None, "note": ""}
            trainer = None
            try:
                trainer = GANTrainer(make_config(b), dataset=dataset, verbose=False)
                if cuda:
                    r = time_steps(trainer.train_step, steps, warmup, device, _images_per_step(trainer))
                    row["memory_bytes"] = r["peak_mem_bytes"]
                else:
                    state = 4 * sum(p.numel() * p.element_size() for m in (trainer.G, trainer.D)
                                    for p in m.parameters())
                    row["memory_bytes"] = state + saved_tensor_bytes(trainer.train_step, (trainer.G, trainer.D))
                    if memory_cap_bytes and row["memory_bytes"] > memory_cap_bytes:
                        raise torch.OutOfMemoryError(
                            f"{row['memory_bytes'] / 2**20:.1f} MiB needed, over the cap of "
                            f"{memory_cap_bytes / 2**20:.1f} MiB (on {device.type}: the measured footprint)")
                    r = time_steps(trainer.train_step, steps, warmup, device, _images_per_step(trainer))
                row["images_per_s"] = r["images_per_s"]
                largest = b
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is caught; see below
                if not is_out_of_memory(exc):
                    raise
                row["status"], row["note"] = "out of memory", str(exc).splitlines()[0][:200]
            finally:
                del trainer
                _free(device)
            rows.append(row)
            if progress is not None:
                progress(row)
            if row["status"] != "ok":
                break
    finally:
        if fraction_before is not None:
            torch.cuda.set_per_process_memory_fraction(fraction_before, device)
    return {"rows": rows, "largest_fit": largest, "device": str(device),
            "memory_kind": "peak torch.cuda.max_memory_allocated" if cuda else
                           "training state (4 x parameters) + saved activations, measured"}


# ============================================================================ several processes

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(nproc_per_node: int, args: Sequence[str], nnodes: int = 1, node_rank: int = 0,
                     endpoint: str = "HOST:29500", rdzv_id: str = "gan-course", python: str | None = None
                     ) -> list[str]:
    """The ``torchrun`` command (as ``python -m torch.distributed.run``) for ``nnodes`` machines with
    ``nproc_per_node`` processes each, meeting through the c10d rendezvous at ``endpoint`` (``host:port`` of
    node 0; every node runs the same command, with its own ``--node-rank``). ``args`` follow, e.g.
    ``["-m", "course_lib", "train", ...]``. With ``nnodes=1`` and ``endpoint="localhost:PORT"`` it runs on one
    machine through the same rendezvous, which is how it is tested."""
    check_int("nproc_per_node", nproc_per_node)
    check_int("nnodes", nnodes)
    check_int("node_rank", node_rank, minimum=0, maximum=nnodes - 1)
    if not re.fullmatch(r"[^:\s]+:\d+", endpoint):
        raise ValueError(f"endpoint must be host:port of node 0 (e.g. 10.0.0.1:29500), got {endpoint!r}")
    return [python or sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
            f"--node-rank={node_rank}", f"--nproc-per-node={nproc_per_node}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}", *args]


_DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "TORCHELASTIC_RUN_ID", "GROUP_RANK", "ROLE_RANK")


def scaling_efficiency(nprocs: Sequence[int] = (1, 2), per_process_batch: int = 64, steps: int = 20,
                       warmup: int = 3, image_size: int = 16, width: int = 32, device: str = "cpu",
                       threads_per_process: int = 1, timeout: float = 600) -> dict[str, Any]:
    """Measured speed-up of data-parallel training over ideal, for each number of processes in ``nprocs``.

    Each count runs in its own ``torchrun`` (the c10d rendezvous on localhost, as the multi-node command does):
    a DCGAN on ``image_size`` noise images, ``per_process_batch`` images per process (weak scaling: the global
    batch grows with the processes), gloo on a CPU and NCCL on GPUs (``device="cuda"``, one GPU per process).
    Images per second are timed on rank 0 between two barriers after ``warmup`` steps.

    Returns:
        dict: ``rows`` (``processes``, ``images_per_s``, ``speedup`` over the first count, ``ideal``
        (processes / first), ``efficiency`` = speedup / ideal), ``device``, ``cpu_count``.

    Raises:
        RuntimeError: a run failed or timed out; the message holds the end of its output.
    """
    counts = [check_int("number of processes", n) for n in nprocs]
    for name, v in (("per_process_batch", per_process_batch), ("steps", steps), ("width", width),
                    ("threads_per_process", threads_per_process)):
        check_int(name, v)
    check_int("warmup", warmup, minimum=0)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and max(counts) > torch.cuda.device_count():
        raise ValueError(f"{max(counts)} processes need {max(counts)} GPUs, and {torch.cuda.device_count()} are "
                         f"present; lower nprocs or use device='cpu'")
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.update(OMP_NUM_THREADS=str(threads_per_process), TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p))
    rows = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for n in counts:
            out = Path(tmp) / f"{n}.json"
            worker = ["-m", "course_lib.speed", "--scaling-worker", json.dumps(
                {"per_process_batch": per_process_batch, "steps": steps, "warmup": warmup, "image_size": image_size,
                 "width": width, "device": device, "threads": threads_per_process, "out": str(out)})]
            cmd = torchrun_command(n, worker, endpoint=f"localhost:{_free_port()}", rdzv_id=uuid.uuid4().hex[:8])
            try:
                proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"the {n}-process run did not finish in {timeout:.0f} s (processes waiting "
                                   f"on each other?): {' '.join(cmd)}") from exc
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(f"the {n}-process run failed (exit code {proc.returncode}): "
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")
            rows.append({"processes": n, **json.loads(out.read_text())})
    base_n, base_ips = rows[0]["processes"], rows[0]["images_per_s"]
    for r in rows:
        r["speedup"] = r["images_per_s"] / base_ips
        r["ideal"] = r["processes"] / base_n
        r["efficiency"] = r["speedup"] / r["ideal"]
    return {"rows": rows, "device": device, "cpu_count": os.cpu_count(), "per_process_batch": per_process_batch,
            "threads_per_process": threads_per_process}


def _scaling_worker(spec: dict[str, Any]) -> None:
    """One process of ``scaling_efficiency`` (run under torchrun): time ``fit`` between barriers."""
    import torch.distributed as dist

    from .train import GANTrainer, TrainConfig

    torch.set_num_threads(spec["threads"])
    world = dist_info()[2]
    cfg = TrainConfig.for_data("mnist", image_size=spec["image_size"], batch_size=spec["per_process_batch"] * world,
                               g_width=spec["width"], d_width=spec["width"], ema_decay=None, device=spec["device"],
                               amp="off", compile=False, steps=10**9)
    n_images = max(4 * spec["per_process_batch"] * world, 256)
    trainer = GANTrainer(cfg, dataset=random_images(n_images, 1, spec["image_size"]), verbose=False)
    if spec["warmup"]:
        trainer.fit(steps=spec["warmup"], progress=False)
    barrier = dist.barrier if dist.is_initialized() else (lambda: None)
    synchronize(trainer.device)
    barrier()
    t0 = time.perf_counter()
    trainer.fit(steps=spec["steps"], progress=False)
    synchronize(trainer.device)
    barrier()
    seconds = time.perf_counter() - t0
    if trainer.rank == 0:
        Path(spec["out"]).write_text(json.dumps({
            "images_per_s": spec["steps"] * cfg.batch_size * cfg.n_critic / seconds, "seconds": seconds,
            "global_batch": cfg.batch_size, "world_size": world}))
    trainer.close()


if __name__ == "__main__":  # python -m course_lib.speed --scaling-worker '{...}' (used by scaling_efficiency)
    if len(sys.argv) == 3 and sys.argv[1] == "--scaling-worker":
        _scaling_worker(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m course_lib.speed --scaling-worker SPEC_JSON (run by scaling_efficiency)")
