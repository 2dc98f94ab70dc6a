"""What a GAN's training run prints: its first line (``run_summary``: data, model, loss, batch, learning rates,
device, speed options), and the progress bar of its steps with the statistics of the last one read (``progress_bar``,
``progress_postfix``: the losses of D and G, and D's mean output on real and on generated data)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import losses, threads
from .utils import env_flag

if TYPE_CHECKING:  # for annotations only
    from .config import TrainConfig
    from .speed_options import SpeedOptions

__all__ = ["run_summary", "progress_bar", "progress_postfix"]


def run_summary(cfg: TrainConfig, n_samples: int, world_size: int, local_batch: int, device: torch.device,
                speed: SpeedOptions) -> str:
    """The line a trainer prints when it starts: data, model, loss, batch, learning rates, device (on a CPU with
    its thread count and where it came from: ``course_lib.threads``), speed."""
    eff, lr = f"batch {cfg.batch_size}", f"lr G {cfg.lr_g:g} D {cfg.lr_d:g}"
    lr += " (linear decay to 0)" if cfg.lr_schedule == "linear" else ""
    if world_size > 1:
        eff = f"effective batch {cfg.batch_size} = {world_size} processes x {local_batch}"
        lr = f"effective {lr} (gradients are averaged over processes; the lr is not scaled)"
    where = f"device {device}"
    if device.type == "cpu":
        where += f", {threads.applied().short(torch.get_num_threads())}"
    return (f"[course_lib] {cfg.data} ({n_samples} samples) | {cfg.model} | loss {cfg.loss} | {eff} | {lr} | "
            f"{where} | amp {speed.amp_mode} | channels_last {speed.channels_last} | "
            f"compile {speed.compile_G or speed.compile_D}")


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
