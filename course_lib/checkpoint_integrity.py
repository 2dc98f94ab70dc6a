"""What makes a checkpoint trustworthy: its format tag and version, the SHA-256 checksum of its contents, and the
schema of every field. ``course_lib.checkpoint`` saves and loads files with these checks (and re-exports them).

    >>> from course_lib.checkpoint_integrity import state_checksum, validate_state
    >>> validate_state(state)                 # raises CheckpointError naming the first field that is wrong
    >>> state_checksum(state)                 # 64 hex digits, equal before saving and after loading
"""
from __future__ import annotations

import collections
import hashlib
from typing import Any

import torch

from .data import IMAGE_DATASETS, POINT_DATASETS
from .utils import is_int

__all__ = ["CheckpointError", "CheckpointDamagedError", "UnverifiedCheckpointWarning", "FORMAT", "FORMAT_VERSION",
           "REQUIRED_KEYS", "CHECKSUM_KEY", "STEP_MAX", "state_checksum", "state_digest", "validate_state",
           "check_plain_data"]

FORMAT = "gan-course-checkpoint"
FORMAT_VERSION = 2  # 2: adds "checksum" (SHA-256 of the rest); 1: no checksum (still read, with a warning)
REQUIRED_KEYS = ("format", "version", "config", "step", "G", "D")
CHECKSUM_KEY = "checksum"
STEP_MAX = 2**63 - 1  # counters are stored as 64-bit integers by torch and numpy


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, of another format or version, or does not fit the model."""


class CheckpointDamagedError(CheckpointError):
    """A checkpoint file cannot be read, or its contents do not match the checksum saved with it."""


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


def state_digest(state: dict[str, Any]) -> tuple[str, int]:
    """``(SHA-256 hex digest, tensor bytes hashed)`` of everything in ``state`` except its ``checksum`` entry."""
    h = hashlib.sha256()
    n = _feed(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return h.hexdigest(), n


def state_checksum(state: dict[str, Any]) -> str:
    """The SHA-256 (hex, 64 characters) of everything in ``state`` except its ``checksum`` entry: each tensor's
    dtype, shape and bytes, and every other field in a canonical form. Equal before saving and after loading."""
    return state_digest(state)[0]


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
        if shape and v.get("name") in POINT_DATASETS and len(shape) != 1:
            self.fail("data_info['sample_shape']", f"(dim,) for the points of {v['name']!r}", shape)
        if shape and v.get("name") in IMAGE_DATASETS and len(shape) != 3:
            self.fail("data_info['sample_shape']", f"(channels, height, width) for the images of {v['name']!r}",
                      shape)


_PLAIN_LEAVES = (type(None), bool, int, float, str, bytes, torch.dtype, torch.device)
_PLAIN_CONTAINERS = (dict, collections.OrderedDict, list, tuple, torch.Size)


def check_plain_data(state: Any, source: str = "the state to save") -> None:
    """Refuse a state that ``load_checkpoint`` (``torch.load(weights_only=True)``) would refuse: anything but
    tensors, ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, dtypes and devices in dicts, lists and
    tuples. A NumPy number (``np.int64(3)``) or another class would be pickled as a global that the loader never
    runs, so the file could be written but never read; ``save_checkpoint`` calls this first.

    Raises:
        CheckpointError: naming the field (``config['steps']``), its type and the fix.
    """
    stack: list[tuple[str, Any]] = [("", state)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, torch.Tensor) or type(v) in _PLAIN_LEAVES:
            continue
        if type(v) in _PLAIN_CONTAINERS:
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in items:
                if isinstance(v, dict) and type(k) not in (str, int):
                    raise CheckpointError(f"{source}: the key {k!r} of {where or 'the state'} is a "
                                          f"{type(k).__module__}.{type(k).__qualname__}; checkpoints hold plain "
                                          "data, so the file could never be loaded: use a string key")
                stack.append((f"{where}[{k!r}]" if where else str(k), x))
            continue
        kind = f"{type(v).__module__}.{type(v).__qualname__}"
        raise CheckpointError(f"{source}: {where or 'the state'} is {_short(v)} of type {kind}, which the checkpoint "
                              "loader refuses (it reads plain numbers, strings, lists, dicts and tensors only), so "
                              "the file could never be loaded; convert it first (int(v), float(v), bool(v) or "
                              "v.item() for a NumPy or 0-dim tensor number)")


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
