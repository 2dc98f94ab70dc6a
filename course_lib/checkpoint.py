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


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename); return the path.

    ``state`` gets the keys ``format`` and ``version`` added. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state, format=FORMAT, version=FORMAT_VERSION)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` safely (``weights_only=True``) and validate it.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, holds objects other than plain data
            (a tampered or foreign file), is not a course checkpoint, or comes from a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path (a training run writes "
                              "<out>/checkpoint.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): the save did not finish; use an "
                              "earlier checkpoint or train again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} was refused: it holds objects outside the course's "
                              f"plain checkpoint format, so it may have been tampered with or come from another "
                              f"program ({str(exc).splitlines()[0]})") from None
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
