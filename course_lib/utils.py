"""Small helpers that the rest of ``course_lib`` shares: one home for each idiom.

The lowest module of the library (it imports only the standard library and torch), so every other module may
use it:

* argument checks: ``is_int``, ``check_int``, ``check_bool``, ``check_seed``;
* environment switches: ``env_flag`` (one definition of "on");
* context managers: ``eval_mode`` (eval, then restore), ``frozen`` (no weight gradients), ``one_thread``,
  ``preserved_torch_rng``;
* files: ``atomic_write`` (temporary file, fsync, rename).
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO, Iterator

import torch
from torch import nn

__all__ = ["is_int", "check_int", "check_bool", "check_seed", "SEED_MAX", "env_flag", "TRUE_WORDS", "FALSE_WORDS",
           "eval_mode", "frozen", "one_thread", "preserved_torch_rng", "atomic_write"]

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


# ----------------------------------------------------------------------------- argument checks

def is_int(v: Any) -> bool:
    """True for a Python or NumPy integer, False for everything else (``True`` and ``False`` included)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return False
    return isinstance(v, np.integer)


def check_int(name: str, v: Any, minimum: int = 1, maximum: int | None = None, allow_none: bool = False) -> Any:
    """Return ``v`` if it is an integer in ``[minimum, maximum]`` (or None when ``allow_none``), else raise.

    Raises:
        ValueError: naming ``name``, what was expected ("a positive integer" for ``minimum=1``) and the value.
    """
    if v is None and allow_none:
        return v
    if is_int(v) and v >= minimum and (maximum is None or v <= maximum):
        return v
    kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
    if maximum is not None:
        kind = f"an integer in [{minimum}, {maximum}]"
    raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}, got {v!r}")


def check_positive_number(name: str, v: Any) -> Any:
    """Return ``v`` if it is a positive finite int or float (not a bool), else raise ValueError naming ``name``."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
        return v
    raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def check_bool(name: str, v: Any, allow_none: bool = False) -> Any:
    """Return ``v`` if it is a real bool (or None when ``allow_none``); strings such as ``'no'`` are refused.

    Raises:
        TypeError: naming ``name`` and the value (``'no'`` is a non-empty string, so it would count as True).
    """
    if isinstance(v, bool) or (v is None and allow_none):
        return v
    raise TypeError(f"{name} must be True or False{' (or None)' if allow_none else ''}, got {v!r} "
                    f"({type(v).__name__})")


def check_seed(v: Any, name: str = "seed") -> int:
    """Return ``v`` if it is a valid seed, an integer in [0, 2**63 - 1], else raise ValueError naming the range."""
    if is_int(v) and 0 <= v <= SEED_MAX:
        return int(v)
    raise ValueError(f"{name} must be an integer in [0, 2**63 - 1] (a 64-bit seed), got {v!r}")


# ----------------------------------------------------------------------------- environment

def env_flag(name: str, default: bool = False) -> bool:
    """The environment variable ``name`` read as a switch: 1/true/yes/on are True, 0/false/no/off are False
    (case and spaces ignored), unset is ``default``.

    Raises:
        ValueError: the variable holds something else (the message names it and the accepted words).
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False if word else default
    raise ValueError(f"environment variable {name}={raw!r} is not a switch; use 1/true/yes/on or 0/false/no/off")


# ----------------------------------------------------------------------------- context managers

@contextlib.contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block, then restore each one's previous mode (None entries are
    skipped). Batch norm uses its running statistics inside the block."""
    present = [m for m in modules if m is not None]
    before = [m.training for m in present]
    for m in present:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in zip(present, before):
            m.train(was_training)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of ``module``'s trainable parameters for the block, then turn it back on.

    A graph built inside the block has no path to those weights, so a later ``backward`` computes no gradient
    for them: a network used as a fixed function (D in the generator's step) costs no weight gradients.
    Gradients of the other networks, and every value, are unchanged."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a block with one CPU thread (tiny networks: thread hand-offs cost more than they save), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def preserved_torch_rng() -> Iterator[None]:
    """Run a block that may draw from torch's global CPU generator, then put that generator back as it was, so
    the block does not change what the caller's code draws afterwards."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


# ----------------------------------------------------------------------------- files

def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any] | bytes | str, fsync: bool = True,
                 mode: int | None = None) -> Path:
    """Write a file atomically: into a temporary file in the same folder, flushed (and fsync'ed), then renamed
    over ``path`` (``os.replace`` is atomic), so a crash or a kill never leaves a half-written ``path``.

    Args:
        path: the target file; its folder must exist.
        write: ``bytes`` or ``str`` (UTF-8) to write, or a function ``write(f)`` that writes to a binary file.
        fsync: flush the data to disk before the rename (slower, survives a power cut).
        mode: permission bits of the new file; default: those of the file it replaces, else 0o666 less the
            process's umask (as ``open`` would give), not ``mkstemp``'s 0o600.

    The temporary file is named ``.<name>.<pid>.<random>.tmp`` and is deleted if writing fails.
    """
    path = Path(path)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, str):
                f.write(write.encode("utf-8"))
            elif isinstance(write, (bytes, bytearray)):
                f.write(write)
            else:
                write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
