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
4. the checksum: a changed byte anywhere in the tensors or the other fields (a bit flip on disk, a transfer
   error, an edit) is refused as *damaged*. Version-1 files (written before checksums) load with a warning.

Writing goes through ``utils.atomic_write`` (temporary file, fsync, rename), so a crash or a kill during a save
never damages the last good checkpoint, and the new file gets the user's umask (or the mode of the file it
replaces). A full disk is reported as such, and the previous checkpoint is kept.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from .utils import atomic_write, is_int

__all__ = ["CheckpointError", "CheckpointDamagedError", "CheckpointSaveError", "UnverifiedCheckpointWarning",
           "FORMAT", "FORMAT_VERSION", "STEP_MAX", "save_checkpoint", "load_checkpoint", "validate_state",
           "state_checksum", "check_finite_weights"]

FORMAT = "gan-course-checkpoint"
FORMAT_VERSION = 2  # 2: adds "checksum" (SHA-256 of the rest); 1: no checksum (still read, with a warning)
REQUIRED_KEYS = ("format", "version", "config", "step", "G", "D")
CHECKSUM_KEY = "checksum"
STEP_MAX = 2**63 - 1  # counters are stored as 64-bit integers by torch and numpy
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, of another format or version, or does not fit the model."""


class CheckpointDamagedError(CheckpointError):
    """A checkpoint file cannot be read, or its contents do not match the checksum saved with it."""


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (disk full, read-only, no permission); the previous file is kept.

    ``errno`` is the operating system's error number (``errno.ENOSPC`` for a full disk)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint of format version 1 has no checksum, so damage to it cannot be detected."""


# ----------------------------------------------------------------------------- checksum

def _feed(h: "hashlib._Hash", obj: Any) -> int:
    """Feed a canonical, type-tagged serialisation of ``obj`` to ``h``; return the tensor bytes fed.

    Tensors contribute their dtype, shape and raw bytes (after moving to the CPU); dicts keep their order (the
    pickle keeps it too); floats are written exactly (``float.hex``), so the digest of a state before saving
    equals the digest of the state read back."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.resolve_conj().resolve_neg().cpu().contiguous()
        h.update(b"T" + str(t.dtype).encode() + b"[" + ",".join(map(str, t.shape)).encode() + b"]")
        raw = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
        h.update(raw)
        return t.numel() * t.element_size()
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, int):
        h.update(b"I%d;" % obj)
    elif isinstance(obj, float):
        h.update(b"F" + float.hex(obj).encode() + b";")
    elif isinstance(obj, str):
        e = obj.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(e) + e)
    elif isinstance(obj, (bytes, bytearray)):
        h.update(b"Y%d:" % len(obj) + bytes(obj))
    elif isinstance(obj, dict):
        h.update(b"D%d{" % len(obj))
        n = 0
        for k, v in obj.items():
            n += _feed(h, k) + _feed(h, v)
        return n
    elif isinstance(obj, (list, tuple)):
        h.update((b"L" if isinstance(obj, list) else b"U") + b"%d(" % len(obj))
        return sum(_feed(h, v) for v in obj)
    else:  # torch.dtype, torch.device, ...: whatever weights_only lets through has a stable repr
        text = f"{type(obj).__module__}.{type(obj).__qualname__}={obj!r}".encode()
        h.update(b"O%d:" % len(text) + text)
    return 0


def _digest(state: dict[str, Any]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = _feed(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return h.hexdigest(), n


def state_checksum(state: dict[str, Any]) -> str:
    """The SHA-256 (hex, 64 characters) of everything in ``state`` except its ``checksum`` entry: each tensor's
    dtype, shape and bytes, and every other field in a canonical form. Equal before saving and after loading."""
    return _digest(state)[0]


# ----------------------------------------------------------------------------- schema

def _short(v: Any) -> str:
    """A value for a message: tensors by dtype and shape, long reprs cut."""
    if isinstance(v, torch.Tensor):
        return f"a tensor of dtype {v.dtype} and shape {tuple(v.shape)}"
    text = repr(v)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(v).__name__})"


class _Schema:
    """Collects the path of the field being checked, so that the one message names it."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, expected: str, v: Any) -> None:
        raise CheckpointError(f"{self.source} is invalid: {field} must be {expected}, got {_short(v)}; the file "
                              "was edited or written by another program. Use an earlier checkpoint or train again")

    def counter(self, field: str, v: Any, minimum: int = 0) -> None:
        if not (is_int(v) and minimum <= v <= STEP_MAX):
            self.fail(field, f"a whole number in [{minimum}, 2**63 - 1]", v)

    def mapping(self, field: str, v: Any, optional: bool = False) -> bool:
        """Check that ``v`` is a dict with string keys (or None when ``optional``); True when it is a dict."""
        if v is None and optional:
            return False
        if not isinstance(v, dict):
            self.fail(field, "a dict" + (" or None" if optional else ""), v)
        bad = next((k for k in v if not isinstance(k, str)), None)
        if bad is not None:
            self.fail(f"{field} keys", "strings", bad)
        return True

    def weights(self, field: str, v: Any, optional: bool = False) -> None:
        """A state_dict: names -> floating-point tensors (batch norm's ``num_batches_tracked`` is an integer)."""
        if not self.mapping(field, v, optional):
            return
        for k, t in v.items():
            if not isinstance(t, torch.Tensor):
                self.fail(f"{field}[{k!r}]", "a tensor", t)
            if not k.endswith("num_batches_tracked") and not t.is_floating_point():
                self.fail(f"{field}[{k!r}]", "a floating-point tensor (weights are float32, float16 or bfloat16)",
                          t)

    def betas(self, field: str, v: Any) -> None:
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(
            (isinstance(b, (int, float)) and not isinstance(b, bool)) or
            (isinstance(b, torch.Tensor) and b.numel() == 1) for b in v)
        if not ok:
            self.fail(field, "a pair of numbers such as (0.5, 0.999)", v)

    def optimizer(self, field: str, v: Any) -> None:
        if v is None:
            return
        if not isinstance(v, dict) or not isinstance(v.get("state"), dict) or \
                not isinstance(v.get("param_groups"), list):
            self.fail(field, "an optimizer state_dict (a dict with 'state' and 'param_groups')", v)
        for i, group in enumerate(v["param_groups"]):
            if not isinstance(group, dict):
                self.fail(f"{field}['param_groups'][{i}]", "a dict", group)
            if "betas" in group:
                self.betas(f"{field}['param_groups'][{i}]['betas']", group["betas"])

    def rng(self, v: Any) -> None:
        self.mapping("rng", v)
        expected = torch.get_rng_state().numel()
        for key, t in v.items():
            if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 and t.numel() > 0):
                self.fail(f"rng[{key!r}]", "a random-generator state (a 1-D uint8 tensor)", t)
        torch_state = v.get("torch")
        if torch_state is not None and torch_state.numel() != expected:
            self.fail("rng['torch']", f"the CPU generator's state ({expected} bytes)",
                      f"{torch_state.numel()} bytes")

    def history(self, v: Any) -> None:
        self.mapping("history", v)
        for k, values in v.items():
            if not isinstance(values, list):
                self.fail(f"history[{k!r}]", "a list of numbers", values)
            bad = next((x for x in values if not isinstance(x, (int, float)) or isinstance(x, bool)), None)
            if bad is not None:
                self.fail(f"history[{k!r}]", "a list of numbers", bad)

    def data_info(self, v: Any) -> None:
        self.mapping("data_info", v)
        if "name" in v and not isinstance(v["name"], str):
            self.fail("data_info['name']", "a string", v["name"])
        shape = v.get("sample_shape")
        if shape is not None and not (isinstance(shape, (list, tuple)) and shape and
                                      all(is_int(s) and s >= 1 for s in shape)):
            self.fail("data_info['sample_shape']", "a list of positive whole numbers such as [2] or [1, 28, 28]",
                      shape)
        nc = v.get("num_classes")
        if nc is not None and not (is_int(nc) and nc >= 1):
            self.fail("data_info['num_classes']", "a positive whole number or None", nc)
        if v.get("note") is not None and not isinstance(v["note"], str):
            self.fail("data_info['note']", "a string or None", v["note"])


def validate_state(state: Any, source: str = "checkpoint") -> None:
    """Check the schema of a checkpoint's state once, field by field; raise at the first problem.

    Required: ``format`` (the course's tag), ``version`` (1..FORMAT_VERSION), ``config`` (a dict), ``step`` (a
    whole number in [0, 2**63 - 1]), ``G`` and ``D`` (dicts of floating-point tensors). Checked when present:
    ``G_ema``, ``opt_G``/``opt_D`` (their betas), ``scaler_G``/``scaler_D``, ``rng`` (uint8 generator states),
    ``history`` (lists of numbers), ``fixed_noise``, ``data_info``, ``batches_drawn``, ``skipped_steps``,
    ``world_size``, ``checksum``. Unknown extra fields are allowed (and covered by the checksum).

    Raises:
        CheckpointError: one message naming ``source``, the field, what it must be and what it is.
    """
    s = _Schema(source)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a course_lib checkpoint (no '{FORMAT}' format tag); only "
                              "files written by course_lib's training loop can be loaded")
    version = state.get("version")
    if is_int(version) and version > FORMAT_VERSION:
        raise CheckpointError(f"{source} has format version {version!r}, but this course_lib reads versions up to "
                              f"{FORMAT_VERSION}; upgrade course_lib (pip install -U -e .) to read it")
    if not (is_int(version) and version >= 1):
        s.fail("version", f"a format version, a whole number in [1, {FORMAT_VERSION}]", version)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{source} lacks the entries {missing}; it is incomplete. Use an earlier checkpoint "
                              "or train again")
    s.mapping("config", state["config"])
    if "betas" in state["config"]:
        s.betas("config['betas']", state["config"]["betas"])
    s.counter("step", state["step"])
    for key in ("batches_drawn", "skipped_steps"):
        if key in state:
            s.counter(key, state[key])
    if "world_size" in state:
        s.counter("world_size", state["world_size"], minimum=1)
    s.weights("G", state["G"])
    s.weights("D", state["D"])
    s.weights("G_ema", state.get("G_ema"), optional=True)
    for key in ("opt_G", "opt_D"):
        s.optimizer(key, state.get(key))
    for key in ("scaler_G", "scaler_D"):
        s.mapping(key, state.get(key), optional=True)
    if "rng" in state:
        s.rng(state["rng"])
    if "history" in state:
        s.history(state["history"])
    noise = state.get("fixed_noise")
    if noise is not None and not (isinstance(noise, torch.Tensor) and noise.is_floating_point()):
        s.fail("fixed_noise", "a floating-point tensor or None", noise)
    if "data_info" in state and state["data_info"] is not None:
        s.data_info(state["data_info"])
    if version >= 2 or CHECKSUM_KEY in state:
        c = state.get(CHECKSUM_KEY)
        digest = c.get("digest") if isinstance(c, dict) else None
        if not (isinstance(c, dict) and c.get("algorithm") == "sha256" and isinstance(digest, str) and
                len(digest) == 64 and all(ch in "0123456789abcdef" for ch in digest)):
            s.fail(CHECKSUM_KEY, "{'algorithm': 'sha256', 'digest': <64 hex digits>} (format version 2 files "
                   "carry one)", c)


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


class _RecordingFile:
    """A binary file that remembers the OSError of a failed write: torch.save turns it into a RuntimeError
    ("enforce fail at inline_container.cc"), and the errno (a full disk) is needed for the message."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, b) -> int:
        try:
            return self._f.write(b)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _os_error(exc: BaseException, recorded: OSError | None) -> OSError | None:
    """The OSError (with an errno) behind a failed save: ``exc`` itself, the one a write recorded, or one in
    the exception's chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        if seen is None:
            break
        seen = seen.__cause__ or seen.__context__
    return recorded if recorded is not None and recorded.errno is not None else None


def _save_error(path: Path, err: OSError, had_previous: bool, nbytes: int) -> CheckpointSaveError:
    kept = ("the previous checkpoint is kept" if had_previous else "no checkpoint was written (there was none "
            "before)")
    if err.errno in _DISK_FULL:
        need = f"about {max(nbytes, 1) / 2**20:.1f} MiB"
        return CheckpointSaveError(f"disk full while saving the checkpoint {str(path)!r}; {kept}. Free {need} "
                                   f"on that disk (df -h {str(path.parent)!r}) or use --out on another disk, "
                                   "then resume", err.errno)
    return CheckpointSaveError(f"could not save the checkpoint {str(path)!r} ({err.strerror or err}); {kept}. "
                               "Check that the folder is writable, or use another --out", err.errno)


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
    digest, nbytes = _digest(state)
    state[CHECKSUM_KEY] = {"algorithm": "sha256", "digest": digest}
    validate_state(state, source=f"the state to save to {str(path)!r}")
    had_previous = path.is_file()
    recorder: list[_RecordingFile] = []

    def write(f) -> None:
        recorder.append(_RecordingFile(f))
        torch.save(state, recorder[0])

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except Exception as exc:
        err = _os_error(exc, recorder[0].error if recorder else None)
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
