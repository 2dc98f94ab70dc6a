"""FLOPs and model FLOP utilisation (MFU): how much of the device's peak arithmetic a training step uses.

    >>> from course_lib.flops import count_flops, measure_mfu, peak_flops
    >>> count_flops(trainer.train_step)                  # matrix products and convolutions of one step
    >>> peak_flops("cuda", "bf16")["flops_per_s"]        # the vendor's dense figure (GPU_PEAKS), else measured
    >>> measure_mfu(trainer, steps=10)["mfu"]            # achieved FLOP/s / the device's peak

The peak depends on the precision the step runs in (``precision_of``): float32, TF32 (``tf32_enabled``),
bfloat16 or float16.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from typing import Any, Callable, Iterator

import torch

from . import data as data_mod
from .timing import measure_throughput, synchronize, trainer_for
from .utils import check_bool, check_int

__all__ = ["count_flops", "GPUPeak", "GPU_PEAKS", "PRECISIONS", "gpu_peak", "measure_matmul_peak", "peak_flops",
           "precision_of", "measure_mfu", "tf32_enabled"]


@contextlib.contextmanager
def tf32_enabled(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 for float32 matrix products and cuDNN convolutions in the block, then restore.

    TF32 keeps float32's range with a 10-bit mantissa on Ampere and newer GPUs. PyTorch allows it for
    convolutions by default (``torch.backends.cudnn.allow_tf32 = True``) and not for matmuls, so ``amp="off"``
    on such a GPU is *not* pure float32 for a DCGAN. No effect on a CPU."""
    check_bool("enabled", enabled)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before



def count_flops(fn: Callable[[], Any]) -> int:
    """The floating-point operations of one call of ``fn()`` (forward and backward passes alike), counted by
    ``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions (2 per multiply-add);
    element-wise work (activations, batch norm, the optimiser) is not counted, as is usual for MFU."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


@dataclasses.dataclass(frozen=True)
class GPUPeak:
    """Peak dense FLOP/s of a GPU per precision (None: no tensor-core path for it), at boost clock, without
    the 2:4 structured sparsity that spec sheets often quote (sparse figures are twice these)."""
    name: str
    pattern: str  # regular expression matched against torch.cuda.get_device_name()
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float
    source: str

    def get(self, precision: str) -> float | None:
        return getattr(self, precision)


T = 1e12
# Vendor figures: NVIDIA data sheets (T4, V100, A10, L4, A100, H100, H200) and architecture white papers
# (GA102 for the RTX 3090, AD102 for the RTX 4090: FP16/BF16 with FP32 accumulation, what PyTorch uses).
GPU_PEAKS: tuple[GPUPeak, ...] = (
    GPUPeak("H200 SXM", r"H200", 67 * T, 494.7 * T, 989.5 * T, 989.5 * T, "NVIDIA H200 data sheet"),
    GPUPeak("H100 PCIe", r"H100.*PCIe", 51 * T, 378 * T, 756 * T, 756 * T, "NVIDIA H100 data sheet"),
    GPUPeak("H100 SXM", r"H100", 67 * T, 494.7 * T, 989.5 * T, 989.5 * T, "NVIDIA H100 data sheet"),
    GPUPeak("A100", r"A100", 19.5 * T, 156 * T, 312 * T, 312 * T, "NVIDIA A100 data sheet"),
    GPUPeak("A10", r"\bA10\b", 31.2 * T, 62.5 * T, 125 * T, 125 * T, "NVIDIA A10 data sheet"),
    GPUPeak("L4", r"\bL4\b", 30.3 * T, 60 * T, 121 * T, 121 * T, "NVIDIA L4 data sheet"),
    GPUPeak("V100", r"V100", 15.7 * T, None, None, 125 * T, "NVIDIA V100 data sheet (SXM2)"),
    GPUPeak("T4", r"\bT4\b", 8.1 * T, None, None, 65 * T, "NVIDIA T4 data sheet"),
    GPUPeak("RTX 4090", r"RTX 4090", 82.6 * T, 82.6 * T, 165.2 * T, 165.2 * T, "NVIDIA Ada (AD102) white paper"),
    GPUPeak("RTX 3090", r"RTX 3090", 35.6 * T, 35.6 * T, 71 * T, 71 * T, "NVIDIA Ampere (GA102) white paper"),
)
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_peak(name: str) -> GPUPeak | None:
    """The ``GPU_PEAKS`` entry whose pattern matches a device name such as ``"NVIDIA H100 80GB HBM3"``."""
    for peak in GPU_PEAKS:
        if re.search(peak.pattern, name, flags=re.IGNORECASE):
            return peak
    return None


def measure_matmul_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        n: int | None = None, repeats: int = 3, max_seconds: float = 4.0) -> dict[str, Any]:
    """The FLOP/s of a large square matrix product on ``device``: the practical peak, for devices with no spec
    figure (CPUs, unknown GPUs). ``n`` defaults to 2048 on a CPU (smaller products run well below the peak) and
    8192 on a GPU; the best of ``repeats`` timed products counts (each ``2 n^3`` FLOPs) after one untimed one.
    On a CPU the default is halved (down to 256) while the ``repeats + 1`` products would take over
    ``max_seconds``, judged from a 256 x 256 product: a dtype the CPU has no instructions for would otherwise take
    minutes (bfloat16 without AVX-512 BF16 or AMX: under 1.5 GFLOP/s on an AVX2 EPYC, against about 85 in
    float32). On a busy machine the figure is low (a share of a core is measured), so an MFU against it can pass
    100 %.

    Returns:
        dict: ``flops_per_s``, ``n``, ``dtype``, ``seconds`` (best), ``threads`` (torch CPU threads), ``device``.
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    check_int("repeats", repeats)
    g = torch.Generator().manual_seed(0)
    if check_int("n", n, allow_none=True) is None:
        n = 8192 if device.type != "cpu" else _cpu_matmul_size(dtype, max_seconds / (repeats + 1))
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return {"flops_per_s": 2 * n**3 / best, "n": n, "dtype": str(dtype).replace("torch.", ""), "seconds": best,
            "threads": torch.get_num_threads(), "device": str(device)}


def _cpu_matmul_size(dtype: torch.dtype, max_seconds: float, largest: int = 2048) -> int:
    """The largest n in 256, 512, ..., ``largest`` whose n x n product in ``dtype`` should take at most
    ``max_seconds`` on this CPU, from the rate of one timed 256 x 256 product (``measure_matmul_peak``)."""
    rate = measure_matmul_peak("cpu", dtype, n=256, repeats=1)["flops_per_s"]  # a rough figure
    n = largest
    while n > 256 and 2 * n**3 / rate > max_seconds:
        n //= 2
    return n


def peak_flops(device: str | torch.device, precision: str = "fp32") -> dict[str, Any]:
    """The peak FLOP/s that MFU divides by: the vendor's dense figure for a known GPU (``GPU_PEAKS``), else a
    measured large matrix product (``measure_matmul_peak``; "tf32" then means float32 with TF32 allowed).

    Returns:
        dict: ``flops_per_s``, ``precision``, ``source`` (the data sheet, or "measured ...").
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name)
        if peak is not None and peak.get(precision) is not None:
            return {"flops_per_s": peak.get(precision), "precision": precision,
                    "source": f"{peak.source}: {peak.name} dense {precision}"}
    with tf32_enabled(precision == "tf32"):
        m = measure_matmul_peak(device, _DTYPES[precision])
    return {"flops_per_s": m["flops_per_s"], "precision": precision,
            "source": f"measured: {m['n']}x{m['n']} {m['dtype']} matmul on {device} ({m['threads']} threads)"}


def precision_of(trainer: Any) -> str:
    """The precision a trainer's convolutions run in: ``bf16`` / ``fp16`` under autocast; with autocast off,
    ``tf32`` on an Ampere or newer GPU while ``torch.backends.cudnn.allow_tf32`` is on (PyTorch's default for
    convolutions), else ``fp32``."""
    amp = getattr(trainer, "amp_mode", "off")
    if amp in ("bf16", "fp16"):
        return amp
    device = trainer.device
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def measure_mfu(trainer_or_config: Any, steps: int = 10, warmup: int = 3, peak: dict | float | None = None,
                dataset: data_mod.Dataset | None = None) -> dict[str, Any]:
    """Model FLOP utilisation of the course's training step: achieved FLOP/s over the device's peak.

    The FLOPs of one ``train_step`` are counted once (``count_flops``, an extra untimed step), the step rate is
    measured with ``measure_throughput``; achieved = FLOPs per step x steps per second.

    Args:
        trainer_or_config: a ``GANTrainer`` (it trains on) or a ``TrainConfig``.
        peak: FLOP/s to divide by, or a ``peak_flops`` dict; default ``peak_flops(device, precision_of(...))``.

    Returns:
        dict: ``mfu`` (0..1), ``achieved_flops_per_s``, ``flops_per_step``, ``peak_flops_per_s``,
        ``peak_source``, ``precision``, ``images_per_s``, ``device``.
    """
    trainer = trainer_for(trainer_or_config, dataset)
    if warmup:
        trainer.fit(steps=warmup, progress=False)
    flops = count_flops(trainer.train_step)
    r = measure_throughput(trainer, steps=steps, warmup=0)
    precision = precision_of(trainer)
    if peak is None:
        peak = peak_flops(trainer.device, precision)
    if isinstance(peak, dict):
        peak_value, source = float(peak["flops_per_s"]), peak.get("source", "given")
    else:
        peak_value, source = float(peak), "given"
    if not peak_value > 0:
        raise ValueError(f"peak must be a positive number of FLOP/s, got {peak_value!r}")
    achieved = flops * steps / r["seconds"]
    return {"mfu": achieved / peak_value, "achieved_flops_per_s": achieved, "flops_per_step": flops,
            "peak_flops_per_s": peak_value, "peak_source": source, "precision": precision,
            "images_per_s": r["images_per_s"], "device": str(trainer.device)}
