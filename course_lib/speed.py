"""Measuring training speed on any device, in one namespace for notebook 05 (``from course_lib import speed``).

Each concept lives in its own module; this one gathers their names:

* ``timing``: warm up, synchronise, time; images per second of the training loop and of a data loader.
* ``host_syncs``: the tensor reads that make the host wait for the GPU, counted on any device.
* ``flops``: FLOPs of a step, the device's peak FLOP/s per precision, model FLOP utilisation (MFU).
* ``ladder``: the speed options (TF32, channels-last, AMP, torch.compile, CUDA graphs) measured cumulatively.
* ``memory``: activation memory of a step and the largest batch that fits.
* ``scaling``: the ``torchrun`` command and the measured speed-up over processes.

    >>> from course_lib import speed
    >>> cfg = TrainConfig.for_data("mnist", image_size=32, batch_size=64, ema_decay=None, amp="off")
    >>> r = speed.measure_throughput(cfg, steps=20, dataset=speed.random_images(1024, 1, 32))
    >>> r["images_per_s"], r["peak_mem_bytes"]
    >>> speed.count_host_syncs(trainer.train_step, steps=3)["per_step"]     # device-to-host reads per step
    >>> speed.measure_mfu(trainer, steps=10)["mfu"]                         # achieved FLOP/s / the device's peak
    >>> speed.option_ladder(lambda opts: TrainConfig.for_data(..., **opts), dataset, steps=10)   # fp32 ... graphs
    >>> speed.memory_sweep(lambda b: TrainConfig.for_data(..., batch_size=b), [64, 128, 256], dataset)
    >>> speed.scaling_efficiency(nprocs=(1, 2))                             # torchrun, gloo on a CPU, NCCL on GPUs
"""
from __future__ import annotations

from .flops import (GPU_PEAKS, PRECISIONS, GPUPeak, count_flops, gpu_peak, measure_matmul_peak, measure_mfu,
                    peak_flops, precision_of, tf32_enabled)
from .host_syncs import SYNC_READS, HostSyncError, assert_no_cuda_syncs, count_host_syncs
from .ladder import LADDER, Rung, compile_for_device, format_ladder, option_ladder
from .memory import is_out_of_memory, memory_sweep, saved_tensor_bytes
from .scaling import convert_sync_batchnorm, scaling_efficiency, torchrun_command
from .timing import measure_loader, measure_throughput, random_images, synchronize, time_steps

__all__ = ["measure_throughput", "random_images", "synchronize", "time_steps", "measure_loader",
           "count_host_syncs", "assert_no_cuda_syncs", "HostSyncError", "SYNC_READS",
           "count_flops", "GPUPeak", "GPU_PEAKS", "PRECISIONS", "gpu_peak", "measure_matmul_peak", "peak_flops",
           "precision_of", "measure_mfu",
           "tf32_enabled", "compile_for_device", "Rung", "LADDER", "option_ladder", "format_ladder",
           "is_out_of_memory", "memory_sweep", "saved_tensor_bytes",
           "convert_sync_batchnorm", "torchrun_command", "scaling_efficiency"]
