"""Memory of a training step: what the forward passes save for backward, and the largest batch that fits.

    >>> from course_lib.memory import memory_sweep, saved_tensor_bytes
    >>> saved_tensor_bytes(trainer.train_step, (trainer.G, trainer.D))   # activation bytes, on any device
    >>> memory_sweep(lambda b: TrainConfig.for_data(..., batch_size=b), [64, 128, 256], dataset)["largest_fit"]
"""
from __future__ import annotations

import gc
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import data as data_mod
from .device import get_device
from .timing import images_per_step, time_steps
from .utils import check_int

__all__ = ["is_out_of_memory", "saved_tensor_bytes", "memory_sweep", "free_cached_memory"]

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
                    r = time_steps(trainer.train_step, steps, warmup, device, images_per_step(trainer))
                    row["memory_bytes"] = r["peak_mem_bytes"]
                else:
                    state = 4 * sum(p.numel() * p.element_size() for m in (trainer.G, trainer.D)
                                    for p in m.parameters())
                    row["memory_bytes"] = state + saved_tensor_bytes(trainer.train_step, (trainer.G, trainer.D))
                    if memory_cap_bytes and row["memory_bytes"] > memory_cap_bytes:
                        raise torch.OutOfMemoryError(
                            f"{row['memory_bytes'] / 2**20:.1f} MiB needed, over the cap of "
                            f"{memory_cap_bytes / 2**20:.1f} MiB (on {device.type}: the measured footprint)")
                    r = time_steps(trainer.train_step, steps, warmup, device, images_per_step(trainer))
                row["images_per_s"] = r["images_per_s"]
                largest = b
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is caught; see below
                if not is_out_of_memory(exc):
                    raise
                row["status"], row["note"] = "out of memory", str(exc).splitlines()[0][:200]
            finally:
                del trainer
                free_cached_memory(device)
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


def free_cached_memory(device: torch.device) -> None:
    """Collect Python garbage and, on CUDA, return the allocator's cached blocks (between two measurements)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
