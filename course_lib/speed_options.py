"""The speed options of a run, decided once for its device: mixed precision (AMP), channels-last memory format,
``torch.compile`` and cuDNN autotuning.

On CUDA each defaults on where it is safe (bfloat16 where the GPU has it natively, else float16 with a gradient
scaler); on CPU and MPS each defaults off, so runs there are exactly repeatable. ``GANTrainer`` calls
``resolve_speed_options`` once and prints the result in its first line.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # for annotations only
    from .config import TrainConfig

__all__ = ["SpeedOptions", "resolve_speed_options"]


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
