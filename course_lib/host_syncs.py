"""Hidden host syncs: the tensor reads that make the host wait for the GPU, counted on any device.

    >>> from course_lib.host_syncs import count_host_syncs, assert_no_cuda_syncs
    >>> count_host_syncs(trainer.train_step, steps=3)["per_step"]     # device-to-host reads per step
    >>> assert_no_cuda_syncs(trainer.train_step)                       # on CUDA: the ground truth

A read such as ``loss.item()`` or ``if torch.isfinite(t).all():`` waits until the GPU has finished all the work
queued before it; inside a training step a few of them cost most of the time on a fast GPU.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any, Callable

import torch

from .utils import check_int

__all__ = ["SYNC_READS", "HostSyncError", "count_host_syncs", "assert_no_cuda_syncs"]

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

