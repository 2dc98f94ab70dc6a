"""Run files written atomically: ``config.json``, ``metrics.json``, ``samples.png``, ``evaluation.json`` and the
``.npy`` / ``.png`` outputs of ``sample``.

    >>> write_json("runs/ring8/config.json", config.to_dict(), indent=2)
    >>> write_figure("runs/ring8/samples.png", fig, dpi=120, bbox_inches="tight")
    >>> write_array("samples.npy", x.numpy())

Each file goes through ``utils.atomic_write`` (a temporary file in the same folder, fsync, rename), so a crash, a
kill or a full disk never leaves a half-written file: the file is either the new one or the previous one. A
write that fails (a full disk, a read-only disk) raises ``RunFileSaveError`` with one line that names the file,
says that the previous file is kept and how to fix it; the checkpoint's own save error (``checkpoint.py``) is
built by the same ``save_error_message``.
"""
from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, IO

from .utils import atomic_write

__all__ = ["RunFileSaveError", "DISK_FULL_ERRNOS", "write_bytes", "write_json", "write_figure", "write_array",
           "RecordingFile", "os_error_behind", "save_error_message"]

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class RunFileSaveError(ValueError):
    """A run file could not be written (disk full, read-only, no permission); the previous file is kept.

    A ``ValueError``, so the command line prints it as one ``error:`` line. ``errno`` is the operating system's
    error number (``errno.ENOSPC`` for a full disk), or None."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def os_error_behind(exc: BaseException, recorded: OSError | None = None) -> OSError | None:
    """The OSError (with an errno) behind a failed write: ``exc`` itself, one in its chain of causes, or
    ``recorded`` (the error a wrapped file saw when a library turned it into another exception); else None."""
    seen: BaseException | None = exc
    for _ in range(8):
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        if seen is None:
            break
        seen = seen.__cause__ or seen.__context__
    return recorded if recorded is not None and recorded.errno is not None else None


def save_error_message(path: Path, err: OSError, what: str, had_previous: bool, nbytes: int,
                       then: str = "") -> str:
    """One line for a failed save of the ``what`` (``"checkpoint"``, ``"file"``) at ``path``: a full disk says
    so and how much to free (``then`` is appended to that fix, e.g. ``", then resume"``); other errors name the
    system's reason."""
    kept = f"the previous {what} is kept" if had_previous else f"no {what} was written (there was none before)"
    if err.errno in DISK_FULL_ERRNOS:
        return (f"disk full while saving the {what} {str(path)!r}; {kept}. Free about {max(nbytes, 1) / 2**20:.1f} "
                f"MiB on that disk (df -h {str(path.parent)!r}) or use --out on another disk{then}")
    return (f"could not save the {what} {str(path)!r} ({err.strerror or err}); {kept}. Check that the folder is "
            "writable, or use another --out")


class RecordingFile:
    """A binary file that counts the bytes written and remembers the OSError of a failed write (a library may
    turn it into another exception)."""

    def __init__(self, f: IO[bytes]):
        self._f, self.error, self.written = f, None, 0

    def write(self, b: Any) -> int:
        try:
            n = self._f.write(b)
        except OSError as exc:
            self.error = exc
            raise
        self.written += memoryview(b).nbytes
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], nbytes: int) -> Path:
    """``atomic_write`` of ``path`` (its folder is created), with a failed write turned into RunFileSaveError."""
    path = Path(path)
    had_previous = path.is_file()
    wrapped: list[RecordingFile] = []

    def counted(f: IO[bytes]) -> None:
        wrapped.append(RecordingFile(f))
        write(wrapped[0])

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, counted)
    except Exception as exc:
        err = os_error_behind(exc, wrapped[0].error if wrapped else None)
        if err is None:
            raise
        need = max(nbytes, wrapped[0].written if wrapped else 0)
        raise RunFileSaveError(save_error_message(path, err, "file", had_previous, need), err.errno) from exc
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (its folder is created); return the path.

    Raises:
        RunFileSaveError: the disk is full or the folder cannot be written; ``path`` keeps its previous content.
    """
    return _write(path, lambda f: f.write(data), len(data))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None, **dumps_kwargs: Any) -> Path:
    """Write ``obj`` as JSON (UTF-8, one trailing newline) to ``path`` atomically; return the path.

    Raises:
        TypeError: ``obj`` holds something JSON cannot write (nothing is written).
        RunFileSaveError: the disk is full or the folder cannot be written; ``path`` keeps its previous content.
    """
    return write_bytes(path, (json.dumps(obj, indent=indent, **dumps_kwargs) + "\n").encode("utf-8"))


def write_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure (or anything with a ``.figure`` or ``savefig``) to ``path`` atomically, in the
    format of its suffix (``.png``, ``.pdf``, ``.svg``; any case); return the path. ``savefig_kwargs`` go to
    ``savefig`` (``dpi``, ``bbox_inches``).

    Raises:
        RunFileSaveError: the disk is full or the folder cannot be written; ``path`` keeps its previous content.
    """
    figure = getattr(fig, "figure", fig)
    buf = io.BytesIO()  # rendered first: a figure that fails to draw never touches the disk
    figure.savefig(buf, format=Path(path).suffix.lstrip(".").lower() or "png", **savefig_kwargs)
    return write_bytes(path, buf.getvalue())


def write_array(path: str | os.PathLike, array: Any) -> Path:
    """Save a NumPy array to ``path`` (``.npy`` format, whatever the suffix's case) atomically; return the path.
    The array is written straight to the file (no second copy in memory).

    Raises:
        RunFileSaveError: the disk is full or the folder cannot be written; ``path`` keeps its previous content.
    """
    import numpy as np

    array = np.asarray(array)
    return _write(path, lambda f: np.save(f, array, allow_pickle=False), array.nbytes + 128)
