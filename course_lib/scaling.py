"""Training on several processes: the ``torchrun`` command, and the measured scaling over processes.

    >>> from course_lib.scaling import scaling_efficiency, torchrun_command
    >>> torchrun_command(8, ["-m", "course_lib", "train", ...], nnodes=2, node_rank=0, endpoint="10.0.0.1:29500")
    >>> scaling_efficiency(nprocs=(1, 2))["rows"]       # torchrun, gloo on a CPU, NCCL on GPUs

``convert_sync_batchnorm`` (batch statistics over all processes) is re-exported here from ``distributed``: the
options of data-parallel training in one place.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import torch

from .distributed import convert_sync_batchnorm, dist_info
from .timing import random_images, synchronize
from .utils import check_int

__all__ = ["torchrun_command", "scaling_efficiency", "convert_sync_batchnorm"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(nproc_per_node: int, args: Sequence[str], nnodes: int = 1, node_rank: int = 0,
                     endpoint: str = "HOST:29500", rdzv_id: str = "gan-course", python: str | None = None
                     ) -> list[str]:
    """The ``torchrun`` command (as ``python -m torch.distributed.run``) for ``nnodes`` machines with
    ``nproc_per_node`` processes each, meeting through the c10d rendezvous at ``endpoint`` (``host:port`` of
    node 0; every node runs the same command, with its own ``--node-rank``). ``args`` follow, e.g.
    ``["-m", "course_lib", "train", ...]``. With ``nnodes=1`` and ``endpoint="localhost:PORT"`` it runs on one
    machine through the same rendezvous, which is how it is tested."""
    check_int("nproc_per_node", nproc_per_node)
    check_int("nnodes", nnodes)
    check_int("node_rank", node_rank, minimum=0, maximum=nnodes - 1)
    if not re.fullmatch(r"[^:\s]+:\d+", endpoint):
        raise ValueError(f"endpoint must be host:port of node 0 (e.g. 10.0.0.1:29500), got {endpoint!r}")
    return [python or sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
            f"--node-rank={node_rank}", f"--nproc-per-node={nproc_per_node}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}", *args]


_DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "TORCHELASTIC_RUN_ID", "GROUP_RANK", "ROLE_RANK")


def scaling_efficiency(nprocs: Sequence[int] = (1, 2), per_process_batch: int = 64, steps: int = 20,
                       warmup: int = 3, image_size: int = 16, width: int = 32, device: str = "cpu",
                       threads_per_process: int = 1, timeout: float = 600) -> dict[str, Any]:
    """Measured speed-up of data-parallel training over ideal, for each number of processes in ``nprocs``.

    Each count runs in its own ``torchrun`` (the c10d rendezvous on localhost, as the multi-node command does):
    a DCGAN on ``image_size`` noise images, ``per_process_batch`` images per process (weak scaling: the global
    batch grows with the processes), gloo on a CPU and NCCL on GPUs (``device="cuda"``, one GPU per process).
    Images per second are timed on rank 0 between two barriers after ``warmup`` steps.

    Returns:
        dict: ``rows`` (``processes``, ``images_per_s``, ``speedup`` over the first count, ``ideal``
        (processes / first), ``efficiency`` = speedup / ideal), ``device``, ``cpu_count``.

    Raises:
        RuntimeError: a run failed or timed out; the message holds the end of its output.
    """
    counts = [check_int("number of processes", n) for n in nprocs]
    for name, v in (("per_process_batch", per_process_batch), ("steps", steps), ("width", width),
                    ("threads_per_process", threads_per_process)):
        check_int(name, v)
    check_int("warmup", warmup, minimum=0)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and max(counts) > torch.cuda.device_count():
        raise ValueError(f"{max(counts)} processes need {max(counts)} GPUs, and {torch.cuda.device_count()} are "
                         f"present; lower nprocs or use device='cpu'")
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.update(OMP_NUM_THREADS=str(threads_per_process), TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p))
    rows = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for n in counts:
            out = Path(tmp) / f"{n}.json"
            worker = ["-m", "course_lib.scaling", "--scaling-worker", json.dumps(
                {"per_process_batch": per_process_batch, "steps": steps, "warmup": warmup, "image_size": image_size,
                 "width": width, "device": device, "threads": threads_per_process, "out": str(out)})]
            cmd = torchrun_command(n, worker, endpoint=f"localhost:{_free_port()}", rdzv_id=uuid.uuid4().hex[:8])
            try:
                proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"the {n}-process run did not finish in {timeout:.0f} s (processes waiting "
                                   f"on each other?): {' '.join(cmd)}") from exc
            if proc.returncode != 0 or not out.is_file():
                raise RuntimeError(f"the {n}-process run failed (exit code {proc.returncode}): "
                                   f"{(proc.stdout + proc.stderr)[-2000:]}")
            rows.append({"processes": n, **json.loads(out.read_text())})
    base_n, base_ips = rows[0]["processes"], rows[0]["images_per_s"]
    for r in rows:
        r["speedup"] = r["images_per_s"] / base_ips
        r["ideal"] = r["processes"] / base_n
        r["efficiency"] = r["speedup"] / r["ideal"]
    return {"rows": rows, "device": device, "cpu_count": os.cpu_count(), "per_process_batch": per_process_batch,
            "threads_per_process": threads_per_process}


def _scaling_worker(spec: dict[str, Any]) -> None:
    """One process of ``scaling_efficiency`` (run under torchrun): time ``fit`` between barriers."""
    import torch.distributed as dist

    from .train import GANTrainer, TrainConfig

    torch.set_num_threads(spec["threads"])
    world = dist_info()[2]
    cfg = TrainConfig.for_data("mnist", image_size=spec["image_size"], batch_size=spec["per_process_batch"] * world,
                               g_width=spec["width"], d_width=spec["width"], ema_decay=None, device=spec["device"],
                               amp="off", compile=False, steps=10**9)
    n_images = max(4 * spec["per_process_batch"] * world, 256)
    trainer = GANTrainer(cfg, dataset=random_images(n_images, 1, spec["image_size"]), verbose=False)
    if spec["warmup"]:
        trainer.fit(steps=spec["warmup"], progress=False)
    barrier = dist.barrier if dist.is_initialized() else (lambda: None)
    synchronize(trainer.device)
    barrier()
    t0 = time.perf_counter()
    trainer.fit(steps=spec["steps"], progress=False)
    synchronize(trainer.device)
    barrier()
    seconds = time.perf_counter() - t0
    if trainer.rank == 0:
        Path(spec["out"]).write_text(json.dumps({
            "images_per_s": spec["steps"] * cfg.batch_size * cfg.n_critic / seconds, "seconds": seconds,
            "global_batch": cfg.batch_size, "world_size": world}))
    trainer.close()


if __name__ == "__main__":  # python -m course_lib.scaling --scaling-worker '{...}' (used by scaling_efficiency)
    if len(sys.argv) == 3 and sys.argv[1] == "--scaling-worker":
        _scaling_worker(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m course_lib.scaling --scaling-worker SPEC_JSON (run by scaling_efficiency)")
