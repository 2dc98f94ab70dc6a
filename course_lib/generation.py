"""Samples from any trained checkpoint, GAN or DDPM, and what they cost: the one entry of ``sample`` and
``evaluate`` on the command line.

    >>> model = load_model("runs/ddpm/checkpoint.pt", sampling_steps=50)   # or a GAN's checkpoint
    >>> x, cost = timed_sample(model, 1000)
    >>> cost["network_evaluations_per_image"], cost["images_per_second"]
    (50, ...)

A GAN makes an image with one network evaluation (its generator); a DDPM with T (ancestral sampling) or
``sampling_steps`` (DDIM, ``course_lib.diffusion``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .diffusion import NoiseSchedule, check_sampling_steps, network_evaluations
from .diffusion_train import load_denoiser, sample_images
from .families import family_of
from .sampling import generate, load_generator

__all__ = ["LoadedModel", "load_model", "timed_sample"]


@dataclass
class LoadedModel:
    """A trained generating network ready to sample: ``family`` (``"gan"`` or ``"ddpm"``), its ``network`` (a GAN's
    generator, a DDPM's U-Net; eval mode), ``config``, ``info`` (the checkpoint's ``data_info``), and for a DDPM its
    ``schedule`` and ``sampling_steps`` (None: ancestral over all T steps; else DDIM with that many)."""

    family: str
    network: torch.nn.Module
    config: TrainConfig
    info: dict[str, Any]
    schedule: NoiseSchedule | None = None
    sampling_steps: int | None = None

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def noise_numbers(self) -> int:
        """Noise numbers drawn per sample at once: z for a GAN, x_T (an image) for a DDPM."""
        if self.family == "gan":
            return self.config.latent_dim
        return math.prod(int(s) for s in self.info["sample_shape"])

    @property
    def network_evaluations(self) -> int:
        """Network evaluations per sample: 1 for a GAN, T or ``sampling_steps`` for a DDPM."""
        return 1 if self.family == "gan" else network_evaluations(self.schedule, self.sampling_steps)

    @property
    def sampler(self) -> str:
        """``"generator"``, ``"ancestral"`` (DDPM, all T steps) or ``"ddim"``."""
        return "generator" if self.family == "gan" else ("ancestral" if self.sampling_steps is None else "ddim")

    def sample(self, n: int, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """``n`` samples on the CPU, float32: (n, D) points or (n, C, S, S) images in [-1, 1]; ``labels`` (n,) int64
        for a conditional GAN (a DDPM here is unconditional)."""
        if self.family == "gan":
            return generate(self.network, n, self.config.latent_dim, self.device, labels=labels,
                            num_classes=self.info.get("num_classes"), seed=seed)
        if labels is not None:
            raise ValueError("labels were given but a DDPM here is unconditional (no classes)")
        return sample_images(self.network, self.schedule, n, tuple(self.info["sample_shape"]), self.sampling_steps,
                             self.device, seed=seed)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True,
               for_what: str = "sampling", sampling_steps: int | None = None,
               flag: str = "--sampling-steps") -> LoadedModel:
    """The generating network of the checkpoint ``path``, of either family (``families.family_of`` its config).

    Args:
        sampling_steps: for a DDPM, the DDIM steps (in [1, T]) or None for ancestral sampling over all T.
        flag: how messages name ``sampling_steps``.

    Raises:
        CheckpointError: the file is missing, damaged, foreign, or its weights are not finite.
        ValueError: ``sampling_steps`` is outside [1, T] of the DDPM's training schedule, or given for a GAN.
    """
    family = family_of(load_checkpoint(path).get("config") or {})
    if family == "gan":
        if sampling_steps is not None:
            raise ValueError(f"{flag} is for DDPM checkpoints; {str(path)!r} is a GAN's, which makes an image with "
                             "one network evaluation: drop the option")
        G, config, info = load_generator(path, device=device, use_ema=use_ema, for_what=for_what)
        return LoadedModel("gan", G, config, info)
    net, schedule, config, info = load_denoiser(path, device=device, use_ema=use_ema, for_what=for_what)
    steps = check_sampling_steps(flag, sampling_steps, schedule.T)
    return LoadedModel("ddpm", net, config, info, schedule, steps)


def timed_sample(model: LoadedModel, n: int, labels: torch.Tensor | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, dict[str, Any]]:
    """``model.sample(n, labels, seed)`` and its cost: ``network_evaluations_per_image``, ``sampler``,
    ``sampling_steps`` (None for a GAN and for ancestral sampling), ``sampling_seconds`` (wall time, including the
    first call's warm-up; the samples end on the CPU, so a GPU has finished) and ``images_per_second`` on
    ``sampling_device``."""
    t0 = time.perf_counter()
    x = model.sample(n, labels=labels, seed=seed)
    seconds = time.perf_counter() - t0
    return x, {"sampler": model.sampler, "sampling_steps": model.sampling_steps,
               "network_evaluations_per_image": model.network_evaluations, "sampling_seconds": round(seconds, 3),
               "images_per_second": round(n / max(seconds, 1e-9), 2), "sampling_device": str(model.device)}
