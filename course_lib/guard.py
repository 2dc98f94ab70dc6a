"""The NaN guard of a training step: a non-finite loss or gradient never reaches the weights, without host syncs.

``d_step`` and ``g_step`` call it around their optimiser step, where the student can see it::

    ok = guard.check(loss, D.parameters(), scaled=...)   # (0-dim bool) finite and agreed by all processes
    with guard.masked(ok, "discriminator", opt_D):     # undone where ok is false: torch.where, no host read
        scaler.step(opt_D)

* ``finite_flag``, ``consensus`` (DDP), ``MaskedUpdate``: the device flag and the update kept or undone by it;
* ``StepStats``: the statistics and flags of the steps, kept on the device until a read;
* ``NonFiniteGuard``: the three together, with the policy (``"stop"``: a sticky mask; ``"skip"``: per update);
  ``NO_GUARD`` checks nothing (a step called without a trainer);
* ``NonFiniteLossError`` and the messages that name the step and the likely causes of a fault (learning rates,
  loss, penalties, AMP: the fields of a GAN's ``TrainConfig``).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import torch
import torch.distributed as dist

from .optim import optimizer_tensors

if TYPE_CHECKING:  # for annotations only: the messages read a config's fields
    from .config import TrainConfig

__all__ = ["NonFiniteLossError", "finite_flag", "consensus", "MaskedUpdate", "StepStats", "NonFiniteGuard",
           "NoGuard", "NO_GUARD", "skipped_message", "kept_checkpoint_text", "nonfinite_loss_message",
           "nonfinite_weights_message", "check_weights_finite"]


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN or infinite; the message names the step and the likely causes."""


def finite_flag(loss: torch.Tensor, params: Iterable[torch.Tensor], scaled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ok, value)``, both 0-dim tensors on the loss's device, computed without a host synchronisation:
    ``value`` = the loss plus (without gradient scaling) the total gradient norm, float32; ``ok`` = whether it
    is finite (bool). With a float16 gradient scaler the scaler itself skips updates with non-finite
    gradients, so only the loss is checked. Read ``ok`` only when the statistics are read (``GANTrainer``)."""
    value = loss.detach().float()
    if not scaled:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            value = value + torch.nn.utils.get_total_norm(grads).float()
    return torch.isfinite(value), value


def consensus(ok: torch.Tensor, distributed: bool) -> torch.Tensor:
    """``ok`` (0-dim bool) agreed by every process: a MIN all-reduce on the device under DDP (a collective, not
    a host synchronisation), so that all processes apply or skip an update together; ``ok`` itself otherwise."""
    if not distributed:
        return ok
    flag = ok.to(torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag.bool()


class MaskedUpdate:
    """``with masked(ok, key, target): <update>`` keeps an in-place update of ``target`` (an optimiser: the tensors
    its step changes, ``optim.optimizer_tensors``; or a module: its parameters and buffers) only where the 0-dim
    bool tensor ``ok`` is true, without reading ``ok`` on the host: the tensors are copied into buffers kept per
    ``key`` (allocated once per shape) before the block, and each one is set to ``torch.where(ok, new, old)``
    after it (exact both ways, and NaN-safe, unlike a weighted mix).

    An optimiser before its first step has no state to copy yet: then its parameters are copied, and after the
    block ``ok`` is read on the host (one synchronisation, at the start of a run); if it is false the parameters
    are put back and the state the step created is dropped, as if the step had not run. A tensor on another
    device than ``ok`` (Adam's CPU step count on MPS) gets a copy of ``ok``, which synchronises; on CPU and CUDA
    (fused Adam) none does.
    """

    def __init__(self) -> None:
        self._saved: dict[Any, tuple[tuple, list[torch.Tensor]]] = {}

    @contextlib.contextmanager
    def __call__(self, ok: torch.Tensor, key: Any, target: torch.optim.Optimizer | torch.nn.Module) -> Iterator[None]:
        if isinstance(target, torch.optim.Optimizer):
            tensors = optimizer_tensors(target)
        else:
            tensors = [*target.parameters(), *target.buffers()]
        if tensors is None:
            with self._first_step(ok, target):
                yield
            return
        shapes = tuple((t.shape, t.dtype, t.device) for t in tensors)
        saved = self._saved.get(key)
        if saved is None or saved[0] != shapes:
            saved = self._saved[key] = (shapes, [torch.empty_like(t) for t in tensors])
        with torch.no_grad():
            torch._foreach_copy_(saved[1], tensors)
        yield
        with torch.no_grad():
            for t, old in zip(tensors, saved[1]):
                torch.where(ok if ok.device == t.device else ok.to(t.device), t, old, out=t)

    @staticmethod
    @contextlib.contextmanager
    def _first_step(ok: torch.Tensor, opt: torch.optim.Optimizer) -> Iterator[None]:
        """The first step of ``opt`` (no state yet), undone after the block unless ``ok`` (read on the host)."""
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        with torch.no_grad():
            before = [p.detach().clone() for p in params]
        yield
        if not bool(ok):
            with torch.no_grad():
                torch._foreach_copy_(params, before)
            for p in params:
                opt.state.pop(p, None)


class StepStats:
    """The statistics of a run's steps since the last read, kept on the device until ``read()``.

    Per update ``mark(bad, value)`` (0-dim tensors: not finite?, the number checked), per step
    ``end_step(stats)`` (0-dim tensors), both without a host synchronisation. ``read`` costs one host
    synchronisation, and under DDP first one SUM all-reduce (every process must read at the same steps), so
    the statistics are the mean over processes.
    """

    def __init__(self, distributed: bool = False, world_size: int = 1) -> None:
        self.distributed = distributed
        self.world_size = world_size
        self._rows: list[torch.Tensor] = []
        self._marks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def mark(self, bad: torch.Tensor, value: torch.Tensor) -> None:
        self._marks.append((bad, value))

    def end_step(self, stats: list[torch.Tensor]) -> None:
        bad, value = zip(*self._marks)
        self._marks = []
        self._rows.append(torch.cat([torch.stack(stats).float(), torch.stack(bad).float(), torch.stack(value)]))

    def clear(self) -> None:
        self._rows = []
        self._marks = []

    def read(self, step: int, stop: bool) -> tuple[list[list[float]], list[tuple[int, str, float]]]:
        """``(rows, faults)`` of the steps since the last read, ``step`` being the last of them: ``rows`` the
        5 statistics of each step (float), ``faults`` one ``(step, "discriminator" or "generator", number)``
        per step with a non-finite update (its first; 1-based steps). With ``stop``: only the first fault, and
        ``rows`` only the steps before it."""
        if not self._rows:
            return [], []
        rows = torch.stack(self._rows)
        self._rows = []
        if self.distributed:
            dist.all_reduce(rows)
            rows /= self.world_size
        values, faults, first = [], [], step - len(rows) + 1
        for i, row in enumerate(rows.tolist()):
            n = (len(row) - 5) // 2  # updates per step: n - 1 of D, then G's
            bad = next((j for j in range(n) if row[5 + j]), None)
            if bad is not None:
                faults.append((first + i, "generator" if bad == n - 1 else "discriminator", row[5 + n + bad]))
                if stop:
                    break
            values.append(row[:5])
        return values, faults


class NonFiniteGuard:
    """The NaN guard of a training step, without host synchronisation.

    ``check(loss, params, scaled)`` returns the device flag (0-dim bool) that lets an update apply: loss and
    gradient finite (``finite_flag``), agreed by every process (``consensus``), and with ``policy="stop"``
    no fault before (a sticky mask: after the first bad update no later one applies). ``masked(ok, key, target)``
    keeps an update under that flag (``MaskedUpdate``); ``stats`` keeps the statistics and the flags of the steps
    until they are read (``StepStats``); ``reset()`` forgets both (after a stop, or a resume).
    """

    def __init__(self, policy: str, device: torch.device, distributed: bool = False, world_size: int = 1):
        self.policy = policy
        self.distributed = distributed
        self.masked = MaskedUpdate()
        self.stats = StepStats(distributed, world_size)
        self.alive = torch.ones((), dtype=torch.bool, device=device)

    def check(self, loss: torch.Tensor, params: Iterable[torch.Tensor], scaled: bool) -> torch.Tensor:
        ok, value = finite_flag(loss, params, scaled)
        ok = consensus(ok, self.distributed)
        self.stats.mark(~ok, value)
        if self.policy == "skip":
            return ok
        self.alive = self.alive & ok
        return self.alive

    def reset(self) -> None:
        self.alive = torch.ones_like(self.alive)
        self.stats.clear()


class NoGuard:
    """The guard of a step called without a trainer: checks nothing (``check`` returns None), keeps every update."""

    def check(self, loss: torch.Tensor, params: Iterable[torch.Tensor], scaled: bool) -> None:
        return None

    def masked(self, ok: None, key: Any, target: Any) -> contextlib.nullcontext:
        return contextlib.nullcontext()


NO_GUARD = NoGuard()


# ----------------------------------------------------------------------------- what the guard says

def skipped_message(step: int, what: str, skipped: int) -> str:
    """What ``nan_policy="skip"`` prints for a skipped step (``step`` 1-based)."""
    return (f"[course_lib] step {step}: non-finite {what} loss or gradient, update skipped ({skipped} skipped "
            f"so far)")


def kept_checkpoint_text(last: Path | None, out_dir: Path | None) -> str:
    """Where the last good checkpoint of this run is, for error messages."""
    path = last
    if path is None and out_dir is not None and (out_dir / "checkpoint.pt").is_file():
        path = out_dir / "checkpoint.pt"
    if path is not None:
        return f"the last good checkpoint is kept at {path}"
    if out_dir is not None:
        return f"no checkpoint has been written yet into {out_dir} (the first comes at step checkpoint_every)"
    return "no checkpoint was written (pass out_dir to keep one)"


def _causes(cfg: TrainConfig, amp_mode: str) -> str:
    """The likely causes of a non-finite GAN loss, with the values of this run and what to try."""
    return (f"a learning rate too high (lr_g={cfg.lr_g}, lr_d={cfg.lr_d}; try 10x lower), the loss choice "
            f"(loss={cfg.loss!r}; " + ("try spectral_norm=True or a smaller gp_weight / r1_gamma"
                                       if cfg.uses_double_backward() or cfg.spectral_norm else
                                       "a penalty on D (r1_gamma, gp_weight) or spectral_norm=True keeps its "
                                       "logits bounded")
            + f"), or float16 overflow under AMP (amp={amp_mode!r}; try amp='bf16' or 'off')")


def nonfinite_loss_message(what: str, step: int, value: float, cfg: TrainConfig, amp_mode: str, kept: str) -> str:
    """The message of a stop on a non-finite loss or gradient (``step`` is 1-based)."""
    return (f"training stopped at step {step}: the {what} loss or its gradient is {value} (not finite). Likely "
            f"causes: {_causes(cfg, amp_mode)}. The update was not applied; {kept}. nan_policy='skip' skips such "
            f"steps instead (and counts them).")


def nonfinite_weights_message(name: str, step: int, cfg: TrainConfig, amp_mode: str, kept: str) -> str:
    """The message of a refusal to save non-finite weights."""
    return (f"training stopped at step {step}: the {name}'s weights are not finite (NaN or inf), so they were "
            f"not saved; {kept}. Likely causes: {_causes(cfg, amp_mode)}.")


def check_weights_finite(models: dict[str, torch.nn.Module | None], step: int, cfg: TrainConfig, amp_mode: str,
                         kept: str) -> None:
    """Raise NonFiniteLossError naming the first of ``models`` (name -> module; None skipped) with a NaN or
    infinite weight: checked before saving, so a good checkpoint is never replaced by broken weights."""
    for name, model in models.items():
        params = [] if model is None else [p.detach() for p in model.parameters()]
        if params and not bool(torch.isfinite(torch.stack([p.float().abs().max() for p in params])).all()):
            raise NonFiniteLossError(nonfinite_weights_message(name, step, cfg, amp_mode, kept))
