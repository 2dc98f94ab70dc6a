"""Timing a training step honestly: warm up, synchronise, time, and count images per second.

    >>> from course_lib.timing import measure_throughput, random_images, synchronize
    >>> cfg = TrainConfig.for_data("mnist", image_size=32, batch_size=64, ema_decay=None, amp="off")
    >>> r = measure_throughput(cfg, steps=20, dataset=random_images(1024, 1, 32))
    >>> r["images_per_s"], r["peak_mem_bytes"]

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

import time
from typing import Any, Callable

import torch

from . import data as data_mod
from .utils import check_int

__all__ = ["synchronize", "random_images", "measure_throughput", "time_steps", "measure_loader", "trainer_for",
           "images_per_step"]


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


def random_images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> data_mod.Dataset:
    """A ``Dataset`` of ``n`` uniform-noise images (n, channels, size, size), float32 in [-1, 1], for timing."""
    check_int("n", n)
    data_mod.check_image_size(size)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    return data_mod.Dataset("random", x, kind="images", note="uniform noise images for speed measurements")


def trainer_for(trainer_or_config: Any, dataset: data_mod.Dataset | None = None) -> Any:
    """``trainer_or_config`` itself if it is a ``GANTrainer``, else a quiet ``GANTrainer`` built from the
    ``TrainConfig`` (on ``dataset`` when given, else on the config's data)."""
    from .train import GANTrainer, TrainConfig

    if isinstance(trainer_or_config, TrainConfig):
        return GANTrainer(trainer_or_config, dataset=dataset, verbose=False)
    if isinstance(trainer_or_config, GANTrainer):
        return trainer_or_config
    raise TypeError(f"expected a GANTrainer or a TrainConfig, got {type(trainer_or_config).__name__}")


def images_per_step(trainer: Any) -> int:
    """Real images the discriminator sees per generator step: ``batch_size x n_critic``."""
    return trainer.config.batch_size * trainer.config.n_critic


def time_steps(step: Callable[[], Any], steps: int, warmup: int, device: torch.device | str,
               images_per_step: int) -> dict[str, Any]:
    """Time ``step()`` (any callable that queues one training step): ``warmup`` untimed calls, then ``steps``
    timed ones between two synchronisations. Returns ``images_per_s``, ``seconds``, ``cpu_seconds``,
    ``peak_mem_bytes`` (CUDA, else None), ``steps``, ``warmup``."""
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
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
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    trainer = trainer_for(trainer_or_config, dataset)
    device = trainer.device
    if warmup:
        trainer.fit(steps=warmup, progress=False)
    synchronize(device)
    _reset_peak(device)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(steps=steps, progress=False)  # one call: per-call work of fit (its progress bar) is not repeated
    synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"images_per_s": steps * images_per_step(trainer) / seconds, "seconds": seconds,
            "peak_mem_bytes": _peak(device), "cpu_seconds": cpu_seconds, "steps": steps, "warmup": warmup,
            "batch_size": trainer.config.batch_size, "device": str(device),
            "options": {"amp": trainer.amp_mode, "channels_last": trainer.channels_last,
                        "compile": bool(trainer.compile_G or trainer.compile_D)}}


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

