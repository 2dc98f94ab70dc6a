"""Device choice and seeding: the one place that decides where tensors live and how runs repeat.

    >>> from course_lib.device import get_device, seed_everything
    >>> device = get_device()          # cuda, then mps, then cpu
    >>> seed_everything(0)             # CPU runs are now repeatable
"""
from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

from .utils import check_seed

__all__ = ["DeviceError", "get_device", "seed_everything", "describe_device"]

VALID_DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(RuntimeError):
    """A device was requested that this machine does not have."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


_DEVICE_NAME = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<index>.*))?$")


def _parse(pref: str, origin: str) -> tuple[str, int | None]:
    """``(kind, index)`` of a device name such as ``"cuda:1"``; ``origin`` names where it came from."""
    m = _DEVICE_NAME.match(pref)
    kind = m.group("kind") if m else pref
    if kind not in VALID_DEVICES:
        raise ValueError(f"{origin}unknown device {pref!r}; valid choices are {', '.join(VALID_DEVICES)} "
                         "(optionally with an index, e.g. 'cuda:1')")
    index = m.group("index")
    if index is not None and not (index.isascii() and index.isdigit()):
        raise ValueError(f"{origin}device {pref!r} has an invalid index {index!r}: after ':' comes a device "
                         f"number (0, 1, ...), e.g. '{kind}:0'; or give just '{kind}'")
    if kind == "auto" and index is not None:
        raise ValueError(f"{origin}device {pref!r}: 'auto' takes no index; use 'auto' or e.g. 'cuda:1'")
    return kind, None if index is None else int(index)


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return the device to train on.

    Args:
        preference: ``"auto"`` (or ``None``) picks cuda, then mps, then cpu. ``"cpu"``, ``"cuda"``,
            ``"cuda:1"`` or ``"mps"`` ask for one device explicitly; the environment variable
            ``COURSE_DEVICE`` overrides ``"auto"`` (and is named in the message when it is wrong).

    Raises:
        DeviceError: the requested device is not available here (the message says what is).
        ValueError: the name is not a device name (``"tpu"``, ``"cpu:abc"``).
        TypeError: ``preference`` is not a string, a ``torch.device`` or None (e.g. the integer 1).
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    if preference is not None and not isinstance(preference, str):
        raise TypeError(f"device must be a name such as 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps' (or a "
                        f"torch.device), got {preference!r} ({type(preference).__name__}); for GPU number 1 "
                        "write 'cuda:1'")
    pref, origin = (preference or "auto").strip().lower() or "auto", ""
    if pref == "auto":
        raw = os.environ.get("COURSE_DEVICE", "")
        if raw.strip():
            pref, origin = raw.strip().lower(), f"COURSE_DEVICE={raw!r}: "
    kind, index = _parse(pref, origin)
    origin_hint = " (unset COURSE_DEVICE or set it to a device this machine has)" if origin else ""
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{origin}device {pref!r} was requested but CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu, or --device auto to pick the best "
                              f"available device{origin_hint}")
        if (index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"{origin}device {pref!r} was requested but only {torch.cuda.device_count()} "
                              f"CUDA device(s) exist: use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
                              f"{origin_hint}")
    if kind == "mps" and not _mps_available():
        raise DeviceError(f"{origin}device {pref!r} was requested but Apple MPS is not available here; "
                          f"use --device cpu or --device auto{origin_hint}")
    if kind == "cpu" and index not in (None, 0):
        raise ValueError(f"{origin}device {pref!r}: there is one CPU device; use 'cpu'{origin_hint}")
    return torch.device(kind if index is None else f"{kind}:{index}")


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` seeded the same way.

    On CPU, code that draws its randomness after this call repeats exactly. ``deterministic=True`` also
    asks cuDNN for deterministic kernels (slower; only matters on CUDA).

    Raises:
        ValueError: ``seed`` is not an integer in [0, 2**63 - 1] (a 64-bit seed; bools are refused).
    """
    seed = check_seed("seed", seed)
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
