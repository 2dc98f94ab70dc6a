"""Training budgets: the one place that decides how long a training cell runs.

Three modes:

* ``quick``: set ``COURSE_QUICK=1`` (the test configuration does). Seconds per cell, for nbval and CI.
* ``cpu``: the student default on a laptop or Binder: good-looking results in a few minutes.
* ``gpu``: chosen automatically when a CUDA device is found: larger runs.

Notebooks never hard-code a step count; they write ``steps = budget.pick(quick=200, cpu=3000, gpu=20000)``.
"""
from __future__ import annotations

import os

import torch

from .utils import env_flag

__all__ = ["mode", "pick", "is_quick"]

MODES = ("quick", "cpu", "gpu")


def is_quick() -> bool:
    """True when ``COURSE_QUICK`` is switched on (1, true, yes, on: ``utils.env_flag``)."""
    return env_flag("COURSE_QUICK")


def mode() -> str:
    """The budget mode in force: ``COURSE_BUDGET`` if set, else quick / gpu / cpu as described above."""
    forced = os.environ.get("COURSE_BUDGET", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"COURSE_BUDGET={forced!r} is not a budget mode; use one of {', '.join(MODES)}")
        return forced
    if is_quick():
        return "quick"
    return "gpu" if torch.cuda.is_available() else "cpu"


def pick(quick, cpu, gpu=None):
    """Return the value for the current mode (``gpu`` defaults to ``cpu``)."""
    m = mode()
    if m == "quick":
        return quick
    if m == "gpu":
        return cpu if gpu is None else gpu
    return cpu
