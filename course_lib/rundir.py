"""Run folders and output files: checked before any work is done, and locked while a run writes into them.

    >>> with RunFolder("runs/ring8", mode="new") as run:   # checks the path, then takes the folder's lock
    ...     trainer = GANTrainer(config, out_dir=run.path)
    ...     trainer.fit()
    >>> out = check_output_file("samples.png", (".png", ".npy"), flag="--out")   # for sample / evaluate
    >>> check_sample_memory(n, sample_shape)               # refuses --n 99999999999999 before allocating

Rules (the same for the library and the CLI):

* a *new* run refuses a folder that already holds a run (``checkpoint.pt`` or ``config.json``), unless the run
  resumes (``mode="resume"``, from a checkpoint in that folder) or replaces it (``mode="overwrite"``);
* a folder is locked by one run at a time: an advisory ``fcntl.flock`` on ``<folder>/.lock``, which the kernel
  releases when the process exits, is killed or crashes, so a stale lock never blocks a later run. A second run
  into a busy folder stops at once with a message naming the folder and the PID of the run that holds it (the
  lock is taken before the rule above is applied, so a folder whose run is still training is reported as busy).
  ``python -m course_lib train`` takes it (``GANTrainer`` itself does not). Within one process the lock is
  shared (re-entrant): code that already holds a folder may enter it again;
* bad paths (an empty name, an existing file, ``/dev/null``, a name too long, a read-only file system, no write
  permission, ``<folder>/checkpoint.pt`` being a folder) are refused before any data is loaded or any step runs.

Errors are ``RunFolderError`` (a ``ValueError``, so the CLI prints them as one ``error:`` line).
"""
from __future__ import annotations

import errno
import math
import os
import stat
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Iterable, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RunFolderError", "RunFolderBusyError", "SampleTooLargeError", "RunFolder", "RUN_FILES", "RUN_OUTPUTS",
           "LOCK_NAME",
           "MODES", "check_output_file", "estimate_bytes", "available_memory", "check_sample_memory"]

LOCK_NAME = ".lock"
RUN_FILES = ("checkpoint.pt", "config.json")  # a folder holding either holds a run
RUN_OUTPUTS = (*RUN_FILES, "metrics.json", "samples.png", "evaluation.json")  # every file a run's commands write
TRAIN_OUTPUTS = RUN_OUTPUTS[:4]  # the files of ``train``: no other command's --out may replace them
MODES = ("new", "resume", "overwrite")
_FALLBACK_NAME_MAX = 255
_HELD: dict[str, list] = {}  # lock file (real path) -> [descriptor, holders in this process]
_HELD_GUARD = threading.Lock()


class RunFolderError(ValueError):
    """An output folder or file cannot be used: the message names the path, the problem and the fix."""


class RunFolderBusyError(RunFolderError):
    """Another process holds the run folder's lock (``pid`` is its process id when known, else None)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


class SampleTooLargeError(RunFolderError):
    """The requested samples would not fit in the memory available."""


# ----------------------------------------------------------------------------- path checks

def _flag(flag: str) -> str:
    return f"{flag} " if flag else ""


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, a loop of links: treated as absent (the length check comes first)
        return False


def _nearest_existing(path: Path) -> Path:
    p = path
    while not _exists(p) and p != p.parent:
        p = p.parent
    return p


def _check_name_lengths(path: Path, flag: str) -> None:
    """Refuse a path with a component longer than the file system allows (usually 255 bytes)."""
    base = _nearest_existing(path.parent if path.parent != path else path)
    try:
        name_max = os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = _FALLBACK_NAME_MAX
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise RunFolderError(f"{_flag(flag)}{str(path)[:40]!r}... has a name of {len(os.fsencode(part))} "
                                 f"bytes, longer than this file system allows ({name_max}); choose a shorter "
                                 "name")


def _check_writable_ancestor(path: Path, flag: str, what: str) -> None:
    """Refuse when the deepest existing folder above ``path`` is not a folder, is read-only or not writable."""
    base = _nearest_existing(path)
    if base == path:
        base = path if path.is_dir() else path.parent
    if not base.is_dir():
        raise RunFolderError(f"{_flag(flag)}{str(path)!r}: {str(base)!r} is a file, not a folder, so the {what} "
                             "cannot be created there; choose another path")
    try:
        read_only = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    if read_only:
        raise RunFolderError(f"{_flag(flag)}{str(path)!r} is on a read-only file system ({str(base)!r}); choose a "
                             "folder on a writable disk, e.g. under your home folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise RunFolderError(f"{_flag(flag)}{str(path)!r}: the folder {str(base)!r} is not writable by you; "
                             "choose a folder you can write to")


def check_output_file(path: str | os.PathLike, suffixes: Sequence[str] = (), flag: str = "--out",
                      what: str = "output file") -> Path:
    """Check a file that a command will write (``sample --out``, ``evaluate --out``) before any work.

    The file may exist (it is replaced) but must be a regular file; its folder is created later if missing.

    Args:
        path: the file to write.
        suffixes: allowed endings, e.g. ``(".png", ".npy")``; empty allows any.
        flag: the option that named it, for the message (``""`` for library calls).
        what: what the file is, for the message.

    Returns:
        the path as a ``Path``.

    Raises:
        RunFolderError: the name is empty, is an existing folder or a non-regular file (``/dev/null``), has the
            wrong suffix, is too long, or its folder is read-only, not writable or not a folder.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{_flag(flag)}must be a path (a string), got {path!r} ({type(path).__name__})")
    if str(path).strip() == "":
        raise RunFolderError(f"{_flag(flag)}is empty; name the {what}, e.g. {flag or 'path'} "
                             f"samples{suffixes[0] if suffixes else '.json'}")
    p = Path(path)
    _check_name_lengths(p, flag)
    if p.is_dir():
        example = p / f"{'samples' if '.png' in suffixes else 'result'}{suffixes[0] if suffixes else '.json'}"
        raise RunFolderError(f"{_flag(flag)}{str(p)!r} is an existing folder, not a file; name the {what} "
                             f"inside it, e.g. {str(example)!r}")
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        raise RunFolderError(f"{_flag(flag)}{str(p)!r} is not a regular file (a device or a pipe); name a normal "
                             f"file for the {what}")
    if suffixes and p.suffix.lower() not in {s.lower() for s in suffixes}:
        raise RunFolderError(f"{_flag(flag)}must end in {' or '.join(suffixes)}, got {p.name!r}")
    _check_writable_ancestor(p, flag, what)
    if p.exists() and not os.access(p, os.W_OK):
        raise RunFolderError(f"{_flag(flag)}{str(p)!r} exists and is not writable by you; choose another file")
    _check_not_a_train_file(p, flag)
    return p


def _check_not_a_train_file(p: Path, flag: str) -> None:
    """Refuse a path that is (or links to) a file that ``train`` wrote into a run folder."""
    try:
        real = p.resolve()
    except (OSError, RuntimeError):  # a loop of links: no run file behind it
        return
    if real.name.lower() in TRAIN_OUTPUTS and any((real.parent / n).exists() for n in RUN_FILES):
        raise RunFolderError(f"{_flag(flag)}{str(p)!r} is the {real.name} of the run in {str(real.parent)!r}, "
                             f"which this would replace; choose another file name, e.g. "
                             f"{str(p.with_name('my_' + real.name))!r}")


# ----------------------------------------------------------------------------- run folders

class RunFolder:
    """A run's output folder: checked (``check``), created and locked (``lock``) before any work.

    Use it as a context manager (``check`` + ``lock`` on entry, ``release`` on exit), or call the methods.

    Args:
        path: the folder (``--out``).
        mode: ``"new"`` (refuse a folder that holds a run), ``"resume"`` (continue the run of ``source``; the
            folder may hold that run, not another one) or ``"overwrite"`` (replace the run in the folder).
        source: the checkpoint being resumed (``mode="resume"``).
        flag: the option that named the folder, for messages (``""`` for library calls).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "new", source: str | os.PathLike | None = None,
                 flag: str = "--out"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{_flag(flag)}must be a folder path (a string), got {path!r} "
                            f"({type(path).__name__})")
        self.raw, self.mode, self.flag = path, mode, flag
        self.path = Path(path)
        self.source = None if source is None else Path(source)
        self._fd: int | None = None
        self._key = ""

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, mode={self.mode!r}, locked={self.locked})"

    @property
    def locked(self) -> bool:
        return self._fd is not None

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def holds_run(self) -> bool:
        """True when the folder holds a run's files (``checkpoint.pt`` or ``config.json``)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def check(self) -> "RunFolder":
        """Check the folder before any work; return self.

        Raises:
            RunFolderError: ``--out ""``; the path is a file or ``/dev/null``; a name is too long; the disk is
                read-only or the folder not writable; ``checkpoint.pt``/``config.json`` inside it is a folder;
                or (mode ``"new"``) the folder already holds a run, or (mode ``"resume"``) it holds another run.
        """
        return self._check_paths()._check_run()

    def _check_paths(self) -> "RunFolder":
        """The checks of the path itself (name, kind, disk, the run files' kinds), before the folder is made."""
        f, p = self.flag, self.path
        if str(self.raw).strip() == "":
            raise RunFolderError(f"{_flag(f)}is empty, which would write the run into the current folder; name a "
                                 f"folder for the run, e.g. {f or 'out_dir='} runs/ring8")
        _check_name_lengths(p / RUN_FILES[0], f)
        if p.is_symlink() and not _exists(p):
            raise RunFolderError(f"{_flag(f)}{str(p)!r} is a symbolic link to {os.readlink(p)!r}, which does not "
                                 "exist (or is a loop of links); create the folder it points to, remove the link, "
                                 "or choose another folder")
        if p.exists() and not p.is_dir():
            kind = "a file" if p.is_file() else "not a folder (a device or a pipe)"
            raise RunFolderError(f"{_flag(f)}{str(p)!r} is {kind}; a run needs a folder: choose a new folder "
                                 "name, e.g. runs/ring8")
        _check_writable_ancestor(p, f, "run folder")
        for name in RUN_FILES:
            if (p / name).is_dir():
                raise RunFolderError(f"{_flag(f)}{str(p / name)!r} is a folder, so the run's {name} cannot be "
                                     "written; remove or rename it, or choose another folder")
        return self

    def _check_run(self) -> "RunFolder":
        """The rule on the run files already in the folder (``__enter__`` applies it under the lock, so that
        two runs racing for one folder cannot both pass it)."""
        f, p = self.flag, self.path
        if self.mode == "new" and self.holds_run():
            found = ", ".join(n for n in RUN_FILES if (p / n).exists())
            raise RunFolderError(f"{_flag(f)}{str(p)!r} already holds a run ({found}); a new run would replace it. "
                                 f"Pass --resume {str(p / 'checkpoint.pt')} to continue it, --overwrite to "
                                 "replace it, or choose another folder")
        if self.mode == "resume" and self.source is not None and self.holds_run() and \
                not _same_file(p / "checkpoint.pt", self.source):
            raise RunFolderError(f"{_flag(f)}{str(p)!r} already holds another run; resuming {str(self.source)!r} "
                                 "there would mix or replace its files. Resume into the checkpoint's own folder "
                                 "or a new one, or pass --overwrite to replace that run")
        return self

    def lock(self) -> "RunFolder":
        """Create the folder and take its lock (``<folder>/.lock``, ``fcntl.flock`` exclusive, non-blocking).

        The lock is held until ``release`` or the process ends (the kernel drops it even after ``kill -9``).
        The holder's PID is written into the lock file, for the message another run gets.

        Raises:
            RunFolderBusyError: another process holds the lock (the message names the folder and its PID).
            RunFolderError: the folder or its lock file cannot be created.
        """
        if self._fd is not None:
            return self
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            key = os.path.realpath(self.lock_path)
        except OSError as exc:
            raise RunFolderError(f"{_flag(self.flag)}{str(self.path)!r}: cannot create the run folder "
                                 f"({exc.strerror or exc}); choose a folder you can write to") from None
        with _HELD_GUARD:
            if key in _HELD:  # this process holds it already (the CLI, then its trainer): share it
                _HELD[key][1] += 1
                self._fd, self._key = _HELD[key][0], key
                return self
            fd = self._acquire()
            _HELD[key] = [fd, 1]
            self._fd, self._key = fd, key
        return self

    def _acquire(self) -> int:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunFolderError(f"{_flag(self.flag)}{str(self.path)!r}: cannot create its lock file "
                                 f"({exc.strerror or exc}); choose a folder you can write to") from None
        try:
            _try_lock(fd)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            who = f"process {pid}" if pid else "another process"
            raise RunFolderBusyError(f"{_flag(self.flag)}{str(self.path)!r} is in use by another run ({who} holds "
                                     f"{str(self.lock_path)!r}); wait for it to finish or stop it, or choose "
                                     "another folder", pid) from None
        except OSError as exc:  # e.g. a file system without locks: go on unlocked rather than refuse to run
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def clear(self, extra: Iterable[str] = ()) -> list[str]:
        """For ``mode="overwrite"``, under the lock: delete the earlier run's files (``RUN_OUTPUTS``, its
        evaluation included, and ``extra``) so that the folder never mixes two runs' files.
        Returns the names deleted. Other files are left alone, and so is ``source`` (the checkpoint being
        resumed, when it lies in the folder)."""
        if self.mode != "overwrite":
            raise RunFolderError(f"clear() deletes a run's files and needs mode='overwrite', not {self.mode!r}")
        if self._fd is None:
            raise RunFolderError("take the lock (lock()) before clearing the run folder")
        removed = []
        for name in dict.fromkeys((*RUN_OUTPUTS, *extra)):
            target = self.path / name
            if self.source is not None and target.exists() and _same_file(target, self.source):
                continue
            if target.is_file() or target.is_symlink():
                target.unlink()
                removed.append(name)
        return removed

    def release(self) -> None:
        """Drop the lock, once every holder in this process has released it (the lock file stays: deleting it
        would let two runs lock different files)."""
        if self._fd is None:
            return
        with _HELD_GUARD:
            entry = _HELD.get(self._key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _HELD[self._key]
                    try:
                        os.ftruncate(entry[0], 0)
                    except OSError:
                        pass
                    os.close(entry[0])  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunFolder":
        """Check the path, take the lock, then apply the rule on the run files (under the lock, so that a run
        still training in the folder is reported as busy, not as a finished run to resume or overwrite)."""
        self._check_paths()
        self.lock()
        try:
            return self._check_run()
        except BaseException:
            self.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
        if exc_type is not None:
            self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        """After a run that failed before writing anything: remove the folder this object created, so that a
        refused command leaves no trace (only when it holds nothing but the lock file)."""
        if not getattr(self, "_created", False):
            return
        try:
            if [q.name for q in self.path.iterdir()] in ([], [LOCK_NAME]):
                self.lock_path.unlink(missing_ok=True)
                self.path.rmdir()
        except OSError:
            pass

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _try_lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    import msvcrt  # pragma: no cover - Windows: lock the first byte

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        raise BlockingIOError(errno.EAGAIN, "locked") from None


def _holder_pid(fd: int, wait_s: float = 1.0) -> int | None:
    """The PID in a lock file held by another process. The holder writes it just after taking the lock, so a
    process that lost a race can find the file still empty: it looks again for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while (pid := _read_pid(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except (OSError, AttributeError):
        return None
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------- sample size

def estimate_bytes(n: int, sample_shape: Sequence[int], itemsize: int = 4) -> int:
    """Bytes of ``n`` samples of ``sample_shape`` (float32 by default): the tensor that ``sample`` builds."""
    return int(n) * math.prod(int(s) for s in sample_shape) * int(itemsize)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else the free pages), or None
    when this system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(b: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.0f} {unit}" if unit == "bytes" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} EiB"  # pragma: no cover


def check_sample_memory(n: int, sample_shape: Sequence[int], available: int | None = None, copies: int = 1,
                        flag: str = "--n", latent_dim: int = 0) -> int:
    """Refuse ``n`` samples that would not fit in memory, before generating any; return the estimated bytes
    of the samples.

    The cost per sample is the measured one of ``sampling.generate``, which allocates its output once and
    fills it batch by batch: ``copies`` float32 samples plus the noise, ``4 * (copies * sample size +
    latent_dim)`` bytes (2,000,000 ring8 points measured 16.8 bytes each at the peak, for 16 estimated; the old
    batch-list-then-concatenate code measured 528). ``sample`` writes its ``.npy`` in chunks, so it needs one
    copy; ``evaluate`` asks for two (the metrics work on a copy).

    Args:
        n: number of samples.
        sample_shape: one sample's shape, e.g. ``(2,)`` or ``(1, 28, 28)``.
        available: bytes available (default: ``available_memory()``; no check when unknown).
        copies: copies of the samples held at the peak.
        latent_dim: size of the noise vector drawn for every sample at once (``generate`` holds all of it:
            for 2-D points it is as large as the samples).

    Raises:
        SampleTooLargeError: ``n`` samples and their noise exceed ``available``.
    """
    need = estimate_bytes(n, sample_shape)
    per = copies * estimate_bytes(1, sample_shape) + estimate_bytes(1, (latent_dim,))  # bytes per sample
    available = available_memory() if available is None else available
    if available is not None and n * per > available:
        fits = max(1, available // max(per, 1))
        kept = f", {copies} copies" if copies > 1 else ""
        noise = f", with their noise of {latent_dim} numbers each" if latent_dim else ""
        raise SampleTooLargeError(f"{_flag(flag)}{n} samples of shape {tuple(sample_shape)} need about "
                                  f"{_size(n * per)} of memory (float32{kept}{noise}), more than the "
                                  f"{_size(available)} available; ask for fewer, at most about {flag or 'n'} {fits}")
    return need
