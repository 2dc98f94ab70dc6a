"""What a run draws, and in which order: the seeds of its random streams, the permutation of the data in each
epoch and each process's shard of it, and the random state put back on resume.

Everything random in a run comes from ``config.seed`` through ``stream_seed``, so a run is repeatable, and a
resumed run continues exactly (``restore_rng``). The data is held on the device and drawn by index
(``epoch_permutation``); ``batches_per_epoch`` counts an epoch the same way for ``GANTrainer`` and
``train --epochs``; ``check_dataset`` checks that a training set can be split into those batches.
"""
from __future__ import annotations

from typing import Any

import torch

from . import data as data_mod

__all__ = ["stream_seed", "restore_rng", "epoch_permutation", "batches_per_epoch", "check_dataset"]


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
    of training). The values are taken modulo 2**63, so that every one is a valid seed (``checks.check_seed``) however
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
