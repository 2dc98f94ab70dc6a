"""How a training run is executed, apart from what one step computes: the engineering around the GAN.

* ``resolve_speed_options``: mixed precision (AMP), channels-last and ``torch.compile``, decided once per run;
* ``dist_info`` / ``setup_distributed``: DistributedDataParallel under ``torchrun``;
* ``stream_seed``: the seeds of the run's random streams, derived from ``config.seed`` in one place;
* ``StopSignals``: Ctrl-C / SIGTERM as a request to stop after the current step;
* the non-finite guard: ``finite_update`` and the messages of ``NonFiniteLossError``.

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

from .config import TrainConfig
from .device import DeviceError, get_device
from .utils import env_flag

__all__ = ["NonFiniteLossError", "SpeedOptions", "resolve_speed_options", "dist_info", "setup_processes", "setup_distributed", "leave_process_group", "interrupted_message",
           "stream_seed", "restore_rng", "progress_bar", "StopSignals", "finite_update", "nonfinite_loss_message", "nonfinite_weights_message",
           "kept_checkpoint_text", "check_weights_finite", "wrap_for_forward", "run_summary"]


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

def finite_update(loss: torch.Tensor, params: Iterable[torch.Tensor], scaled: bool) -> tuple[bool, float | None]:
    """Whether the loss (and, without gradient scaling, the total gradient norm) is finite: ``(ok, value)``,
    with ``value`` the offending number when not ok. With a float16 gradient scaler the scaler itself skips
    updates with non-finite gradients, so only the loss is checked. One host synchronisation."""
    value = loss.detach().float()
    if not scaled:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            value = value + torch.nn.utils.get_total_norm(grads).float()
    if bool(torch.isfinite(value)):
        return True, None
    return False, value.item()


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
