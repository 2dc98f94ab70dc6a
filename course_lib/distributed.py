"""Running on several processes (DistributedDataParallel under ``torchrun``): who this process is, joining and
leaving the process group, wrapping the networks, and batch norm over the processes.

    torchrun --nproc_per_node=2 -m course_lib train --data digits --out runs/ddp

``dist_info`` reads torchrun's environment (one process without it); ``setup_processes`` checks that the global
batch splits over the processes and joins the group (NCCL on GPUs, gloo on CPUs); ``wrap_for_forward`` puts a
network in DDP (gradients averaged over the processes during ``backward``) and, when asked, ``torch.compile``;
``convert_sync_batchnorm`` makes batch norm see the global batch; ``leave_process_group`` ends a run cleanly.
"""
from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import torch
import torch.distributed as dist

from .device import DeviceError, get_device

__all__ = ["ProcessInfo", "Processes", "dist_info", "setup_processes", "setup_distributed", "leave_process_group",
           "wrap_for_forward", "convert_sync_batchnorm"]


class ProcessInfo(NamedTuple):
    """This process in torchrun's launch: its global ``rank``, its ``local_rank`` on this machine, and the
    ``world_size`` (number of processes); 0, 0, 1 without torchrun."""

    rank: int
    local_rank: int
    world_size: int


class Processes(NamedTuple):
    """``ProcessInfo`` with the ``device`` this process trains on (joined to the process group if several)."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device


def dist_info() -> ProcessInfo:
    """(rank, local_rank, world_size) from torchrun's environment, 1 process otherwise."""
    return ProcessInfo(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                       world_size=int(os.environ.get("WORLD_SIZE", "1")))


def setup_processes(batch_size: int, device: str) -> Processes:
    """This process: one process, or under torchrun a member of its process group (``setup_distributed``), and
    its device. The global ``batch_size`` must split evenly over the processes; that is checked before any process
    group is set up (fail fast)."""
    info = dist_info()
    world = info.world_size
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}; choose a "
                         f"multiple of {world} (it is the global batch, split over processes)")
    dev = get_device(device)
    if world > 1:
        dev = setup_distributed(dev, info.local_rank)
    return Processes(info.rank, info.local_rank, world, dev)


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


def wrap_for_forward(model: torch.nn.Module, distributed: bool, compile: bool,
                     device: torch.device) -> torch.nn.Module:
    """``model`` as the training forward passes use it: in DistributedDataParallel under torchrun, then
    ``torch.compile``d when asked; the plain model itself otherwise (keep the plain one for saving)."""
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile else model


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
