"""Checkpoint files: written atomically, read without executing code, checked for damage and for a sane schema.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, saved with ``torch.save`` and
read with ``torch.load(..., weights_only=True)``, so a file from someone else cannot run code on your machine.
It carries a format tag, a version number and (from version 2) a SHA-256 checksum of everything else in it:

    >>> save_checkpoint(state, "runs/ring8/checkpoint.pt")     # adds format, version and checksum
    >>> state = load_checkpoint("runs/ring8/checkpoint.pt")    # refuses damaged, foreign or doctored files
    >>> check_finite_weights(state, "sampling")                # refuses NaN/inf generator weights

Loading checks, in this order, and stops at the first problem with one message that names it:

1. the file exists, is readable and holds only plain data (``weights_only``: nothing in it is run);
2. it is a course checkpoint (format tag) of a version this code reads;
3. the schema (``validate_state``): every known field has the right type and range (the message names the field);
4. the checksum covers the values: a change to any tensor or other field (a bit flip on disk, a transfer
   error, an edit) is refused as *damaged*. Bytes of the file that change no value (zip headers and padding,
   the pickle's bookkeeping) are not refused: what loads is what was saved. Version-1 files (written before
   checksums) load with a warning.

The format tag, the checksum and the schema are written in ``course_lib.checkpoint_integrity`` (their names are
re-exported here).

Writing goes through ``utils.atomic_write`` (temporary file, fsync, rename), so a crash or a kill during a save
never damages the last good checkpoint, and the new file gets the user's umask (or the mode of the file it
replaces). A full disk is reported as such, and the previous checkpoint is kept.
"""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from .checkpoint_integrity import (CHECKSUM_KEY, FORMAT, FORMAT_VERSION, STEP_MAX, CheckpointDamagedError,
                                   CheckpointError, UnverifiedCheckpointWarning, check_plain_data, state_checksum,
                                   state_digest, validate_state)
from .run_files import RecordingFile, os_error_behind, save_error_message
from .utils import atomic_write

__all__ = ["CheckpointError", "CheckpointDamagedError", "CheckpointSaveError", "UnverifiedCheckpointWarning",
           "FORMAT", "FORMAT_VERSION", "STEP_MAX", "save_checkpoint", "load_checkpoint", "validate_state",
           "state_checksum", "check_finite_weights"]


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (disk full, read-only, no permission); the previous file is kept.

    ``errno`` is the operating system's error number (``errno.ENOSPC`` for a full disk)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


# ----------------------------------------------------------------------------- saving

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


def _save_error(path: Path, err: OSError, had_previous: bool, nbytes: int) -> CheckpointSaveError:
    message = save_error_message(path, err, "checkpoint", had_previous, nbytes, then=", then resume")
    return CheckpointSaveError(message, err.errno)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename); return the path.

    ``state`` gets the keys ``format``, ``version`` and ``checksum`` (SHA-256 of the rest, see
    ``state_checksum``) added and is schema-checked first (``validate_state``), so a file that this function
    writes always loads. The folder is created if needed; the file's mode follows the umask (or the file it
    replaces). If the save fails (an exception, Ctrl-C) the temporary file is deleted and ``path`` keeps its
    previous content; the temporary file of a process killed mid-save (``.checkpoint.pt.<pid>.*.tmp``) is
    deleted by the next save.

    Raises:
        CheckpointError: the state does not fit the schema (names the field).
        CheckpointSaveError: the disk is full ("disk full while saving the checkpoint; the previous checkpoint
            is kept") or the folder cannot be written.
    """
    path = Path(path)
    state = {k: v for k, v in state.items() if k != CHECKSUM_KEY}
    state.update(format=FORMAT, version=FORMAT_VERSION)
    digest, nbytes = state_digest(state)
    state[CHECKSUM_KEY] = {"algorithm": "sha256", "digest": digest}
    check_plain_data(state, source=f"the state to save to {str(path)!r}")  # a file that is written must load
    validate_state(state, source=f"the state to save to {str(path)!r}")
    had_previous = path.is_file()
    recorder: list[RecordingFile] = []

    def write(f) -> None:
        recorder.append(RecordingFile(f))
        torch.save(state, recorder[0])

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except Exception as exc:
        err = os_error_behind(exc, recorder[0].error if recorder else None)
        if err is None:
            raise
        raise _save_error(path, err, had_previous, nbytes) from exc
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


# ----------------------------------------------------------------------------- loading

def _refused_global(exc: BaseException) -> str:
    """The line of a weights_only refusal that names the forbidden object (not torch's advice to disable it)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln:
            return ln
    return lines[-1] if lines else type(exc).__name__


def _damaged(path: Path, exc: BaseException) -> CheckpointDamagedError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return CheckpointDamagedError(f"checkpoint {str(path)!r} is damaged: it is truncated or corrupt and cannot be "
                                  f"read ({type(exc).__name__}: {first[:200]}); use an earlier checkpoint or "
                                  "train again")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` safely (``weights_only=True``), check its schema once
    (``validate_state``) and its checksum.

    Returns the state dict (with its ``format``, ``version`` and ``checksum`` entries).

    Raises:
        CheckpointDamagedError: the file is truncated or corrupt, or its contents do not match its checksum
            (the message says the file is damaged).
        CheckpointError: the file is missing or empty, holds objects other than plain data (a tampered or
            foreign file), is not a course checkpoint, comes from a newer format version, or has a field of
            the wrong type or range (the message names the field).

    A version-1 file (written before checksums) is loaded with an ``UnverifiedCheckpointWarning``.
    """
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {str(path / 'checkpoint.pt')!r}?" if (path / "checkpoint.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file{hint}")
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a regular file (a device or a pipe); name the "
                              "checkpoint.pt that a training run wrote")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path (a training run writes "
                              "<out>/checkpoint.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): the save did not finish; use an "
                              "earlier checkpoint or train again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():  # not a refusal: a damaged pickle
            raise _damaged(path, exc) from None
        raise CheckpointError(f"checkpoint {str(path)!r} was refused and nothing in it was run: it holds objects "
                              f"outside the course's plain checkpoint format ({_refused_global(exc)}), so it may "
                              "have been tampered with, come from another program or be damaged. Do not load it "
                              "with weights_only=False unless you trust its source; train again or ask for the "
                              "original file") from None
    except PermissionError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({exc.strerror}); check its "
                              "permissions") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise _damaged(path, exc) from None
    source = f"checkpoint {str(path)!r}"
    validate_state(state, source)
    if state["version"] < 2 and CHECKSUM_KEY not in state:
        warnings.warn(f"{source} has format version 1 (written before checkpoints carried a checksum), so damage "
                      "to it cannot be detected; it is loaded as it is. Resume and save it to add a checksum",
                      UnverifiedCheckpointWarning, stacklevel=2)
        return state
    if state_checksum(state) != state[CHECKSUM_KEY]["digest"]:
        raise CheckpointDamagedError(f"{source} is damaged: its contents do not match the SHA-256 checksum saved "
                                     "with it (a changed byte: a disk or transfer error, or an edit), so its "
                                     "weights cannot be trusted. Use an earlier checkpoint or train again")
    return state


# ----------------------------------------------------------------------------- usable weights

def check_finite_weights(state: dict[str, Any], for_what: str = "sampling", use_ema: bool = True,
                         keys: Iterable[str] | None = None, source: str = "checkpoint") -> None:
    """Refuse a checkpoint whose weights are NaN or infinite before they are used ``for_what``.

    Args:
        state: a state from ``load_checkpoint``.
        for_what: what the weights are for, in the message: ``"sampling"``, ``"evaluation"``, ``"resuming"``.
        use_ema: check the generator that sampling uses: ``G_ema`` when present (and ``use_ema``), else ``G``.
        keys: check these entries instead (e.g. ``("G", "D", "G_ema")`` before resuming); missing or None ones
            are skipped.
        source: how the message names the checkpoint (e.g. ``"checkpoint 'runs/x/checkpoint.pt'"``).

    Raises:
        CheckpointError: naming the network, the first non-finite tensor and the step, with the likely causes
            (the same kind of message as training's non-finite-weights refusal).
    """
    if keys is None:
        keys = ("G_ema",) if use_ema and state.get("G_ema") is not None else ("G",)
    names = {"G": "generator", "G_ema": "EMA generator", "D": "discriminator"}
    for key in keys:
        weights = state.get(key)
        if not weights:
            continue
        for name, t in weights.items():
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and \
                    not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise CheckpointError(
                    f"{source}: the {names.get(key, key)}'s weights are not finite (NaN or inf: {bad} of "
                    f"{t.numel()} values of {key}[{name!r}]) at step {state.get('step')}, so it cannot be used "
                    f"for {for_what}. The run diverged before this save, or the file was edited. Use an earlier "
                    "checkpoint, or train again with a lower learning rate, the default loss, or without float16 "
                    "AMP")
