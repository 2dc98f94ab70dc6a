"""Device choice and seeding: the one place that decides where tensors live and how runs repeat.

    >>> from course_lib.device import get_device, seed_everything
    >>> device = get_device()          # cuda, then mps, then cpu
    >>> seed_everything(0)             # CPU runs are now repeatable
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["DeviceError", "get_device", "seed_everything", "describe_device"]

VALID_DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(RuntimeError):
    """A device was requested that this machine does not have."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return the device to train on.

    Args:
        preference: ``"auto"`` (or ``None``) picks cuda, then mps, then cpu. ``"cpu"``, ``"cuda"``,
            ``"cuda:1"`` or ``"mps"`` ask for one device explicitly; the environment variable
            ``COURSE_DEVICE`` overrides ``"auto"``.

    Raises:
        DeviceError: the requested device is not available here (the message says what is).
        ValueError: the name is not a device name.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        pref = os.environ.get("COURSE_DEVICE", "auto").strip().lower() or "auto"
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = pref.split(":")[0]
    if kind not in VALID_DEVICES:
        raise ValueError(f"unknown device {preference!r}; valid choices are {', '.join(VALID_DEVICES)} "
                         "(optionally with an index, e.g. 'cuda:1')")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {preference!r} was requested but CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu, or --device auto to pick the best "
                              "available device")
        index = int(pref.split(":")[1]) if ":" in pref else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {preference!r} was requested but only {torch.cuda.device_count()} "
                              "CUDA device(s) exist")
    if kind == "mps" and not _mps_available():
        raise DeviceError(f"device {preference!r} was requested but Apple MPS is not available here; "
                          "use --device cpu or --device auto")
    return torch.device(pref)


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` seeded the same way.

    On CPU, code that draws its randomness after this call repeats exactly. ``deterministic=True`` also
    asks cuDNN for deterministic kernels (slower; only matters on CUDA).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def describe_device(device: torch.device | None = None) -> str:
    """One human-readable line about ``device`` (name, memory for CUDA, thread count for CPU)."""
    device = device or get_device()
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"cuda: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"
