"""Checkpoint files: written atomically, read without executing code.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, saved with ``torch.save`` and
read with ``torch.load(..., weights_only=True)``, so a file from someone else cannot run code on your machine.
It carries a format tag and a version number; files of another format or a newer version are refused.

Writing goes to a temporary file in the same folder that is flushed to disk and then renamed over the target
(``os.replace`` is atomic), so a crash or a kill during a save never damages the last good checkpoint.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint"]

FORMAT = "gan-course-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "config", "step", "G", "D")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, of another format or version, or does not fit the model."""


def _pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists here (or we cannot tell: then its files are left alone)."""
    if os.name != "posix":  # on Windows os.kill(pid, 0) would send Ctrl-C, not probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours, or cannot tell: keep its file
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files of earlier saves of ``path`` whose process is gone (killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        if parts and parts[0].isdigit() and int(parts[0]) != os.getpid() and not _pid_alive(int(parts[0])):
            tmp.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename); return the path.

    ``state`` gets the keys ``format`` and ``version`` added. The folder is created if needed. If the save
    fails (an exception, Ctrl-C) the temporary file is deleted and ``path`` keeps its previous content; the
    temporary file of a process killed mid-save (``.checkpoint.pt.<pid>.*.tmp``) is deleted by the next save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state, format=FORMAT, version=FORMAT_VERSION)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _refused_global(exc: BaseException) -> str:
    """The line of a weights_only refusal that names the forbidden object (not torch's advice to disable it)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln:
            return ln
    return lines[-1] if lines else type(exc).__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` safely (``weights_only=True``) and validate it.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, holds objects other than plain data
            (a tampered or foreign file), is not a course checkpoint, or comes from a newer format version.
    """
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {str(path / 'checkpoint.pt')!r}?" if (path / "checkpoint.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path (a training run writes "
                              "<out>/checkpoint.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): the save did not finish; use an "
                              "earlier checkpoint or train again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} was refused and nothing in it was run: it holds objects "
                              f"outside the course's plain checkpoint format ({_refused_global(exc)}), so it may "
                              "have been tampered with or come from another program. Do not load it with "
                              "weights_only=False unless you trust its source; train again or ask for the "
                              "original file") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); use an "
                              "earlier checkpoint or train again") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a course_lib checkpoint (no '{FORMAT}' format tag); only "
                              "files written by course_lib's training loop can be loaded")
    version = state.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {version!r}, but this course_lib "
                              f"reads versions up to {FORMAT_VERSION}; upgrade course_lib "
                              "(pip install -U -e .) to read it")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the entries {missing}; it is incomplete")
    return state
