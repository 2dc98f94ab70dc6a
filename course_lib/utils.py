"""Small helpers that the rest of ``course_lib`` shares: one home for each idiom.

One of the lowest modules of the library (it imports only the standard library, torch and ``checks``), so every
other module may use it:

* argument checks: ``is_int``, ``check_int``, ``check_bool``, ``check_seed``, ``check_positive_number``
  (written in ``course_lib.checks``, which the command line imports before torch; re-exported here);
* environment switches: ``env_flag`` (one definition of "on");
* context managers: ``eval_mode`` (eval, then restore), ``frozen`` (no weight gradients), ``one_thread``,
  ``preserved_torch_rng``;
* files: ``atomic_write`` (temporary file, fsync, rename).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO, Iterator

import torch
from torch import nn

from .checks import SEED_MAX, check_bool, check_int, check_positive_number, check_seed, is_int

__all__ = ["is_int", "check_int", "check_bool", "check_seed", "check_positive_number", "SEED_MAX", "env_flag",
           "TRUE_WORDS", "FALSE_WORDS", "eval_mode", "frozen", "one_thread", "preserved_torch_rng", "atomic_write"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


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
