"""The option ladder: the speed options of a training step, measured cumulatively on one workload.

    >>> from course_lib.ladder import option_ladder, format_ladder
    >>> rows = option_ladder(lambda opts: TrainConfig.for_data(..., **opts), dataset, steps=10)
    >>> print(format_ladder(rows))      # fp32 eager, + TF32, + channels-last, + AMP bf16, + torch.compile, ...

Each rung adds one option to the one before, and is measured with a fresh trainer (``timing.time_steps``).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import data as data_mod
from .device import get_device
from .flops import tf32_enabled
from .memory import free_cached_memory
from .timing import images_per_step, time_steps
from .utils import check_int

__all__ = ["compile_for_device", "Rung", "LADDER", "option_ladder", "format_ladder"]


def compile_for_device(model: nn.Module, mode: str = "default", device: torch.device | str | None = None
                       ) -> nn.Module:
    """``torch.compile(model, mode=mode)``; ``mode="reduce-overhead"`` (CUDA graphs: one launch replays the
    whole recorded step) needs CUDA, so on a CPU or MPS it falls back to the default mode with a warning."""
    modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    if mode not in modes:
        raise ValueError(f"mode must be one of {', '.join(modes)}, got {mode!r}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    if mode in ("reduce-overhead", "max-autotune") and device.type != "cuda":
        warnings.warn(f"torch.compile mode={mode!r} uses CUDA graphs, which need a CUDA device; on {device.type} "
                      f"compiling with mode='default' instead", UserWarning, stacklevel=2)
        mode = "default"
    return torch.compile(model, mode=mode)


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung of the option ladder: the TrainConfig options, TF32, and whether CUDA graphs are used."""
    name: str
    options: dict
    tf32: bool = False
    cuda_graphs: bool = False
    gpu_only: bool = False     # reported as "n/a on cpu" elsewhere
    slow_off_gpu: bool = False  # compiling takes minutes on a CPU: skipped there unless asked for


_FP32 = {"amp": "off", "channels_last": False, "compile": False}
LADDER: tuple[Rung, ...] = (
    Rung("fp32 eager", dict(_FP32)),
    Rung("+ TF32", dict(_FP32), tf32=True, gpu_only=True),
    Rung("+ channels-last", {**_FP32, "channels_last": True}, tf32=True),
    Rung("+ AMP bf16", {**_FP32, "channels_last": True, "amp": "bf16"}, tf32=True),
    Rung("+ torch.compile", {"channels_last": True, "amp": "bf16", "compile": True}, tf32=True, slow_off_gpu=True),
    Rung("+ CUDA graphs", {"channels_last": True, "amp": "bf16", "compile": False}, tf32=True, cuda_graphs=True,
         gpu_only=True),
)


def _amp_for(device: torch.device, amp: str) -> str:
    """bf16 where the device does it natively, else fp16 with gradient scaling (T4, V100)."""
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "fp16"
    return amp


def option_ladder(make_config: Callable[[dict], Any], dataset: data_mod.Dataset, steps: int = 10,
                  warmup: int = 3, rungs: Sequence[Rung] = LADDER, compile_off_gpu: bool = False,
                  progress: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """Measure the cumulative speed options on one workload, each rung with a fresh trainer.

    Args:
        make_config: ``options -> TrainConfig``; it receives the rung's TrainConfig fields (``amp``,
            ``channels_last``, ``compile``) and should fix everything else (data, sizes, batch, device).
        dataset: the images to train on (e.g. ``random_images`` or Fashion-MNIST).
        steps, warmup: timed and untimed steps per rung (compilation and CUDA-graph capture fall in warm-up).
        rungs: default ``LADDER``: fp32 eager; + TF32; + channels-last; + AMP bf16 (float16 with gradient
            scaling where bf16 is not native); + torch.compile; + CUDA graphs (``mode="reduce-overhead"``).
        compile_off_gpu: also measure the torch.compile rung on a CPU (compiling a DCGAN there takes minutes).
        progress: called with each row as it is measured (to print it).

    Returns:
        one dict per rung: ``rung``, ``status`` ("measured", "n/a on cpu", "skipped", "failed"), ``note``,
        ``images_per_s``, ``peak_mem_bytes`` (CUDA), ``speedup`` (over the first measured rung),
        ``options``. A rung that fails (e.g. out of memory, a compiler error) is reported, not raised.
    """
    check_int("steps", steps)
    check_int("warmup", warmup, minimum=0)
    rows: list[dict[str, Any]] = []
    base = None
    device = None
    for rung in rungs:
        cfg = make_config(dict(rung.options))
        device = get_device(cfg.device) if device is None else device
        opts = dict(rung.options, amp=_amp_for(device, rung.options.get("amp", "off")))
        row = {"rung": rung.name, "status": "measured", "note": "", "images_per_s": None, "peak_mem_bytes": None,
               "speedup": None, "options": {**opts, "tf32": rung.tf32, "cuda_graphs": rung.cuda_graphs}}
        on_gpu = device.type == "cuda"
        if rung.gpu_only and not on_gpu:
            row["status"] = f"n/a on {device.type}"
            row["note"] = ("TF32 is a tensor-core format of NVIDIA GPUs (Ampere and newer)" if rung.tf32 and not
                           rung.cuda_graphs else "CUDA graphs (torch.compile mode='reduce-overhead') need CUDA")
        elif rung.slow_off_gpu and not on_gpu and not compile_off_gpu:
            row["status"] = "skipped"
            row["note"] = f"compiling a DCGAN on {device.type} takes minutes; pass compile_off_gpu=True to measure"
        else:
            try:
                with tf32_enabled(rung.tf32):
                    r = _measure_rung(make_config, opts, rung, dataset, steps, warmup)
                row.update(images_per_s=r["images_per_s"], peak_mem_bytes=r["peak_mem_bytes"])
                if opts["amp"] != rung.options.get("amp", "off"):
                    row["note"] = f"{opts['amp']} with gradient scaling: bf16 is not native on this GPU"
            except Exception as exc:  # noqa: BLE001 - a failing rung is reported, the ladder goes on
                row["status"], row["note"] = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            finally:
                free_cached_memory(device)
        if row["images_per_s"] is not None:
            base = base or row["images_per_s"]
            row["speedup"] = row["images_per_s"] / base
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _measure_rung(make_config, opts: dict, rung: Rung, dataset, steps: int, warmup: int) -> dict[str, Any]:
    from .train import GANTrainer

    cfg_opts = {k: opts[k] for k in ("amp", "channels_last", "compile")}
    trainer = GANTrainer(make_config(cfg_opts), dataset=dataset, verbose=False)
    trainer.G.train()
    trainer.D.train()
    if rung.cuda_graphs:
        trainer.G_wrapped = compile_for_device(trainer.G, "reduce-overhead", trainer.device)
        if not trainer.config.uses_double_backward():
            trainer.D_wrapped = compile_for_device(trainer.D, "reduce-overhead", trainer.device)

    def step() -> None:
        if rung.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: earlier graph outputs may be reused
        trainer.train_step()

    return time_steps(step, steps, warmup, trainer.device, images_per_step(trainer))


def format_ladder(rows: Sequence[dict[str, Any]]) -> str:
    """The ladder as a markdown table: rung, images/s, speed-up, peak memory, MFU (when the rows have it),
    status and note."""
    mfu = any(r.get("mfu") is not None for r in rows)
    lines = ["| rung | images/s | speed-up | peak memory |" + (" MFU |" if mfu else "") + " status |",
             "|---|---|---|---|" + ("---|" if mfu else "") + "---|"]
    for r in rows:
        ips = f"{r['images_per_s']:,.0f}" if r["images_per_s"] is not None else "-"
        up = f"{r['speedup']:.2f}x" if r["speedup"] is not None else "-"
        mem = f"{r['peak_mem_bytes'] / 2**20:,.0f} MiB" if r["peak_mem_bytes"] else "n/a (not CUDA)"
        share = (f" {100 * r['mfu']:.2f} % |" if r.get("mfu") is not None else " - |") if mfu else ""
        status = r["status"] + (f": {r['note']}" if r["note"] else "")
        lines.append(f"| {r['rung']} | {ips} | {up} | {mem} |{share} {status} |")
    return "\n".join(lines)
