"""How a training run is executed, apart from what one step computes: the engineering around the GAN.

* ``resolve_speed_options``: mixed precision (AMP), channels-last and ``torch.compile``, decided once per run;
* ``dist_info`` / ``setup_distributed``: DistributedDataParallel under ``torchrun``;
* ``stream_seed``: the seeds of the run's random streams, derived from ``config.seed`` in one place;
* ``StopSignals``: Ctrl-C / SIGTERM as a request to stop after the current step;
* the non-finite guard without host syncs: ``finite_flag``, ``consensus`` (DDP), ``MaskedUpdate``, and the
  messages of ``NonFiniteLossError``.

``course_lib.train`` uses all of them; none of them knows about GANs.
"""
from __future__ import annotations

import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist

from . import data as data_mod
from . import losses
from .config import TrainConfig
from .device import DeviceError, get_device
from .utils import env_flag

__all__ = ["NonFiniteLossError", "SpeedOptions", "resolve_speed_options", "dist_info", "setup_processes",
           "setup_distributed", "leave_process_group", "interrupted_message", "stream_seed", "restore_rng",
           "epoch_permutation", "batches_per_epoch", "check_dataset", "progress_bar", "progress_postfix",
           "StopSignals", "finite_flag", "consensus", "optimizer_tensors", "MaskedUpdate", "ema_update",
           "load_optimizer", "StepStats", "NonFiniteGuard", "skipped_message", "nonfinite_loss_message",
           "nonfinite_weights_message", "kept_checkpoint_text", "check_weights_finite", "wrap_for_forward",
           "run_summary", "convert_sync_batchnorm"]


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN or infinite; the message names the step and the likely causes."""


# ----------------------------------------------------------------------------- random streams

def stream_seed(stream: str, seed: int, rank: int = 0, epoch: int = 0, step: int = 0) -> int:
    """The seed of one of a run's random streams, derived from the run's ``seed``.

    ============== ====================================== ==============================================
    ``stream``     formula                                what it drives
    ============== ====================================== ==============================================
    ``"noise"``    ``seed * 1000 + rank + 1``             z, labels and penalties in training (per process)
    ``"resumed"``  ``seed * 1000 + rank + 1 + 7 * step``  the same, resumed under another process layout
    ``"fixed"``    ``seed + 12345``                       ``fixed_noise``, the z of progress images
    ``"epoch"``    ``seed * 100_003 + epoch``             the permutation of the data in epoch ``epoch``
    ``"sample"``   ``seed * 7919 + step``                 ``trainer.sample``'s noise at step ``step``
    ============== ====================================== ==============================================

    The streams are separate, so that drawing from one (sampling a preview) never changes another (the course
    of training). The values are taken modulo 2**63, so that every one is a valid seed (``utils.check_seed``) however
    large ``seed`` is; for the seeds anyone uses, that changes nothing.
    """
    formulas = {"noise": seed * 1000 + rank + 1, "resumed": seed * 1000 + rank + 1 + 7 * step,
                "fixed": seed + 12345, "epoch": seed * 100_003 + epoch, "sample": seed * 7919 + step}
    if stream not in formulas:
        raise ValueError(f"unknown random stream {stream!r}; valid streams are {', '.join(formulas)}")
    return formulas[stream] % 2**63


def restore_rng(rng: torch.Generator, state: dict[str, Any], rank: int, world_size: int, seed: int) -> None:
    """Put a resumed run's random state back: the trainer's generator and torch's global one as saved (bit-exact
    resume), when the checkpoint comes from the same process layout and device kind; else (another world size,
    or CPU <-> CUDA) a fresh, still repeatable stream for each rank (``stream_seed("resumed", ...)``)."""
    saved = state.get("rng", {})
    same_kind = "trainer" in saved and saved["trainer"].numel() == rng.get_state().numel()  # CPU vs CUDA
    if rank == 0 and state.get("world_size", 1) == world_size and same_kind:
        rng.set_state(saved["trainer"].to(rng.get_state().device))
        torch.set_rng_state(saved["torch"])
    else:
        rng.manual_seed(stream_seed("resumed", seed, rank=rank, step=int(state["step"])))


def epoch_permutation(n: int, seed: int, epoch: int, rank: int, world_size: int, shard_size: int,
                      device: torch.device) -> torch.Tensor:
    """This process's shard of epoch ``epoch``'s fixed permutation of ``n`` sample indices: (shard_size,) int64
    on ``device``. Drawn on the CPU (the same order on every device); uploaded from pinned memory on CUDA, so
    that the copy does not synchronise."""
    g = torch.Generator().manual_seed(stream_seed("epoch", seed, epoch=epoch))
    perm = torch.randperm(n, generator=g)[rank::world_size][:shard_size]
    cuda = device.type == "cuda"
    return (perm.pin_memory() if cuda else perm).to(device, non_blocking=cuda)


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Real batches in one pass over ``n`` samples: each of ``world_size`` processes holds a shard of
    ``n // world_size`` samples and draws ``batch_size // world_size`` of them per batch (the rest of a shard
    waits for the next epoch's permutation). ``GANTrainer`` and ``train --epochs`` count epochs by it."""
    return (n // world_size) // max(1, batch_size // world_size)


def check_dataset(dataset: Any, conditional: bool, local_batch: int, world_size: int) -> tuple[int, int | None]:
    """``(shard_size, num_classes)`` of a training set (a ``course_lib.data.Dataset``) split over ``world_size``
    processes; raise TypeError / ValueError when it is no Dataset, smaller than a batch, or unlabelled for a
    conditional GAN."""
    if not isinstance(dataset, data_mod.Dataset):
        raise TypeError(f"dataset must be a course_lib.data.Dataset, got {type(dataset).__name__}")
    shard_size = len(dataset) // world_size
    if local_batch > shard_size:
        raise ValueError(f"batch size {local_batch} per process is larger than the dataset "
                         f"({len(dataset)} samples over {world_size} process(es)); lower batch_size")
    if conditional and (dataset.y is None or not dataset.num_classes):
        raise ValueError(f"conditional=True needs a labelled dataset; {dataset.name!r} has no labels")
    return shard_size, (dataset.num_classes if conditional else None)


def progress_postfix(history: dict[str, list[float]], loss: str | None = None) -> dict[str, str]:
    """The progress bar's summary of the last step read: D and G losses, mean D(x) and D(G(z)) (``Dx``, ``DGz``;
    for a ``loss`` whose D outputs a score, not a logit, ``s(Dx)`` and ``s(DGz)``: the sigmoid of the score)."""
    prob = losses.outputs_probabilities(loss)
    return {"d": f"{history['d_loss'][-1]:.3f}", "g": f"{history['g_loss'][-1]:.3f}",
            "Dx" if prob else "s(Dx)": f"{history['d_real'][-1]:.2f}",
            "DGz" if prob else "s(DGz)": f"{history['d_fake'][-1]:.2f}"}


def progress_bar(total: int, initial: int, desc: str, show: bool):
    """A ``tqdm.auto`` bar of training steps (off when not ``show`` or when ``TQDM_DISABLE`` is on)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not show or env_flag("TQDM_DISABLE"), desc=desc,
                unit="step", mininterval=0.5, dynamic_ncols=True)


# ----------------------------------------------------------------------------- speed options

def _cuda_bf16(native: bool) -> bool:
    """Whether the current CUDA device runs bfloat16: natively (compute capability 8.0+, or ROCm) when
    ``native``, else at all (older GPUs emulate it, slowly)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=not native)
    except TypeError:  # a torch without the argument
        return torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class SpeedOptions:
    """The speed options a run uses, after ``"auto"`` / None were decided for its device."""

    amp_mode: str                  # "off", "bf16" or "fp16"
    amp_dtype: torch.dtype | None  # the autocast dtype, None without AMP
    channels_last: bool
    compile_G: bool
    compile_D: bool


def resolve_speed_options(cfg: TrainConfig, device: torch.device) -> SpeedOptions:
    """Decide AMP, channels-last and compile for ``cfg`` on ``device`` (and set cuDNN autotuning on CUDA).

    On CUDA everything defaults on: bfloat16 where the GPU has it natively (no scaler needed), else float16 with
    a gradient scaler. On CPU and MPS everything defaults off, so runs are exactly repeatable. A discriminator
    with a gradient penalty (double backward) is never compiled.
    """
    dev = device.type
    cuda = dev == "cuda"
    amp = cfg.amp
    if amp == "auto":
        amp = ("bf16" if _cuda_bf16(native=True) else "fp16") if cuda else "off"
    if amp == "fp16" and dev == "cpu":
        warnings.warn("AMP float16 is not used on the CPU (many CPU kernels lack fast float16 paths, and "
                      "float16 needs a gradient scaler); using bfloat16 autocast instead (amp='off' for full "
                      "precision)", stacklevel=4)
        amp = "bf16"
    if amp == "bf16" and cuda and not _cuda_bf16(native=False):
        warnings.warn("this GPU does not support bfloat16; using float16 with gradient scaling", stacklevel=4)
        amp = "fp16"
    want_compile = cuda if cfg.compile is None else cfg.compile
    double_backward = cfg.uses_double_backward()
    if want_compile and double_backward and cfg.compile:
        warnings.warn("torch.compile does not support the double backward of gradient penalties; the "
                      "discriminator runs eagerly, the generator is compiled", stacklevel=4)
    if cuda:  # a global switch: set it both ways, so cudnn_benchmark=False undoes an earlier trainer's True
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark is not False
    return SpeedOptions(amp_mode=amp, amp_dtype={"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp],
                        channels_last=cfg.model == "dcgan" and (cuda if cfg.channels_last is None
                                                                else cfg.channels_last),
                        compile_G=bool(want_compile), compile_D=bool(want_compile) and not double_backward)


# ----------------------------------------------------------------------------- processes

def dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment, 1 process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def setup_processes(batch_size: int, device: str) -> tuple[int, int, int, torch.device]:
    """``(rank, local_rank, world_size, device)`` of this process: one process, or under torchrun a member of
    its process group (``setup_distributed``). The global ``batch_size`` must split evenly over the processes;
    that is checked before any process group is set up (fail fast)."""
    rank, local_rank, world = dist_info()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}; choose a "
                         f"multiple of {world} (it is the global batch, split over processes)")
    dev = get_device(device)
    return rank, local_rank, world, setup_distributed(dev, local_rank) if world > 1 else dev


def setup_distributed(device: torch.device, local_rank: int) -> torch.device:
    """Join torchrun's process group (NCCL on CUDA, gloo otherwise); return this process's device."""
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(f"process with LOCAL_RANK {local_rank} has no GPU: this machine has "
                              f"{torch.cuda.device_count()}; use --nproc_per_node {torch.cuda.device_count()} "
                              f"or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave_process_group() -> None:
    """Wait for every process, then destroy the process group: gloo or NCCL threads still running at
    interpreter exit can abort the process. A no-op without a process group."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def interrupted_message(step: int, checkpoint: Path | None) -> str:
    """What a run stopped by Ctrl-C / SIGTERM prints: where it stopped and how to go on."""
    where = f"; checkpoint saved to {checkpoint}" if checkpoint is not None else ""
    return (f"[course_lib] interrupted after step {step}{where}. Call fit() again, or run "
            f"`python -m course_lib train --resume <checkpoint>`, to continue the same run.")


class StopSignals:
    """``with StopSignals() as stop:`` turns SIGINT / SIGTERM (Ctrl-C, the notebook's stop button) into
    ``stop.requested = True``; a second signal stops at once (KeyboardInterrupt). The previous handlers are
    restored on exit. Outside the main thread (where handlers cannot be installed) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested:  # second press: give up immediately
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def _restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # not allowed here
                    pass
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()


# ----------------------------------------------------------------------------- the non-finite guard

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


def optimizer_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor] | None:
    """The tensors ``opt.step()`` may change: each parameter with a gradient and its state tensors (Adam:
    ``step``, ``exp_avg``, ``exp_avg_sq``). None while a parameter with a gradient has no state yet (before
    the optimiser's first step, which creates it)."""
    tensors: list[torch.Tensor] = []
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = opt.state.get(p)
            if not state:
                return None
            tensors.append(p)
            tensors.extend(v for v in state.values() if torch.is_tensor(v))
    return tensors


class MaskedUpdate:
    """``masked(key, tensors, ok, update)`` runs ``update()``, an in-place change of ``tensors``, and keeps it
    only where the 0-dim bool tensor ``ok`` is true, without reading ``ok`` on the host: the tensors are copied
    into buffers kept per ``key`` (allocated once per shape) before the update, and each one is set to
    ``torch.where(ok, new, old)`` after it (exact both ways, and NaN-safe, unlike a weighted mix).

    ``tensors`` None (an optimiser before its first step, ``optimizer_tensors``): ``ok`` is read on the host
    instead (one synchronisation, at the start of a run). A tensor on another device than ``ok`` (Adam's CPU
    step count on MPS) gets a copy of ``ok``, which synchronises; on CPU and CUDA (fused Adam) none does.
    """

    def __init__(self) -> None:
        self._saved: dict[Any, tuple[tuple, list[torch.Tensor]]] = {}

    @torch.no_grad()
    def __call__(self, key: Any, tensors: list[torch.Tensor] | None, ok: torch.Tensor, update) -> None:
        if tensors is None:
            if bool(ok):
                update()
            return
        shapes = tuple((t.shape, t.dtype, t.device) for t in tensors)
        saved = self._saved.get(key)
        if saved is None or saved[0] != shapes:
            saved = self._saved[key] = (shapes, [torch.empty_like(t) for t in tensors])
        torch._foreach_copy_(saved[1], tensors)
        update()
        for t, old in zip(tensors, saved[1]):
            torch.where(ok if ok.device == t.device else ok.to(t.device), t, old, out=t)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema``'s weights <- ``decay`` * themselves + (1 - ``decay``) * ``model``'s; its buffers (batch-norm
    statistics) copied from ``model``. In place, without a host synchronisation."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def load_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)``, keeping ``opt``'s own ``fused`` setting (a checkpoint of a CUDA run, with
    fused Adam, resumes on a CPU and the other way round; Adam then puts its step counts where they belong)."""
    fused = opt.param_groups[0].get("fused")
    opt.load_state_dict({**state, "param_groups": [{**g, "fused": fused} for g in state["param_groups"]]})


class StepStats:
    """The statistics of a run's steps since the last read, kept on the device until ``read()``.

    Per update ``mark(bad, value)`` (0-dim tensors: not finite?, the number checked), per step
    ``end_step(stats)`` (0-dim tensors), both without a host synchronisation. ``read`` costs one host
    synchronisation, and under DDP first one SUM all-reduce (every process must read at the same steps), so
    the statistics are the mean over processes.
    """

    def __init__(self, distributed: bool = False, world_size: int = 1) -> None:
        self.distributed, self.world_size = distributed, world_size
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
        self._rows, self._marks = [], []

    def read(self, step: int, stop: bool) -> tuple[list[list[float]], list[tuple[int, str, float]]]:
        """``(rows, faults)`` of the steps since the last read, ``step`` being the last of them: ``rows`` the
        5 statistics of each step (float), ``faults`` one ``(step, "discriminator" or "generator", number)``
        per step with a non-finite update (its first; 1-based steps). With ``stop``: only the first fault, and
        ``rows`` only the steps before it."""
        if not self._rows:
            return [], []
        rows, self._rows = torch.stack(self._rows), []
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
    no fault before (a sticky mask: after the first bad update no later one applies). ``masked`` applies an
    update under that flag (``MaskedUpdate``); ``stats`` keeps the statistics and the flags of the steps
    until they are read (``StepStats``); ``reset()`` forgets both (after a stop, or a resume).
    """

    def __init__(self, policy: str, device: torch.device, distributed: bool = False, world_size: int = 1):
        self.policy, self.distributed, self.masked = policy, distributed, MaskedUpdate()
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


def convert_sync_batchnorm(model: torch.nn.Module, device: torch.device | str | None = None) -> torch.nn.Module:
    """Replace ``model``'s batch norm layers by ``nn.SyncBatchNorm`` when it runs under DistributedDataParallel
    on GPUs (call it before wrapping in DDP; the layers are replaced in place, and their parameters and running
    statistics are kept, so optimisers and checkpoints are unaffected); otherwise an announced no-op that returns
    ``model`` unchanged. ``TrainConfig(sync_bn=True)`` / ``--sync-bn`` calls it for G and D together.

    SyncBatchNorm all-reduces each layer's batch mean and variance over the processes, so batch norm sees the
    global batch (at the cost of two collectives per layer per forward pass). It does nothing useful in one
    process (the batch is already whole), and PyTorch supports it for GPU tensors only: on CPU processes (gloo)
    batch norm stays per process, and a warning says so.
    """
    if device is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    device = torch.device(device)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        warnings.warn("sync_bn / --sync-bn: these networks have no batch norm layers (spectral norm or no "
                      "normalisation), so there is nothing to synchronise", UserWarning, stacklevel=2)
        return model
    if world == 1:
        warnings.warn("sync_bn / --sync-bn has no effect in a single process: batch norm already sees the whole "
                      "batch. Launch with torchrun --nproc_per_node=N (DistributedDataParallel) to use it",
                      UserWarning, stacklevel=2)
        return model
    if device.type != "cuda":
        warnings.warn(f"sync_bn / --sync-bn: SyncBatchNorm needs GPU tensors, and these {world} processes run on "
                      f"{device.type}; batch norm stays per process (each normalises its own share of the batch)",
                      UserWarning, stacklevel=2)
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_for_forward(model: torch.nn.Module, distributed: bool, compile: bool,
                     device: torch.device) -> torch.nn.Module:
    """``model`` as the training forward passes use it: in DistributedDataParallel under torchrun, then
    ``torch.compile``d when asked; the plain model itself otherwise (keep the plain one for saving)."""
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile else model


def run_summary(cfg: TrainConfig, n_samples: int, world_size: int, local_batch: int, device: torch.device,
                speed: SpeedOptions) -> str:
    """The line a trainer prints when it starts: data, model, loss, batch, learning rates, device, speed."""
    eff, lr = f"batch {cfg.batch_size}", f"lr G {cfg.lr_g:g} D {cfg.lr_d:g}"
    lr += " (linear decay to 0)" if cfg.lr_schedule == "linear" else ""
    if world_size > 1:
        eff = f"effective batch {cfg.batch_size} = {world_size} processes x {local_batch}"
        lr = f"effective {lr} (gradients are averaged over processes; the lr is not scaled)"
    return (f"[course_lib] {cfg.data} ({n_samples} samples) | {cfg.model} | loss {cfg.loss} | {eff} | {lr} | "
            f"device {device} | amp {speed.amp_mode} | channels_last {speed.channels_last} | "
            f"compile {speed.compile_G or speed.compile_D}")
