"""The two families of generative models the course trains, and the one check that a checkpoint is of the family
the code reading it expects.

A GAN's checkpoint and a DDPM's share the checkpoint format (``course_lib.checkpoint``): the generating network's
weights are its ``G`` entry (a DDPM's noise predictor; its ``D`` entry is empty), and ``config["model"]`` says
which family it is (``"ddpm"``: a diffusion model; ``"mlp"`` or ``"dcgan"``: a GAN).

    >>> check_family(state, "gan", "checkpoint 'runs/x/checkpoint.pt'", "sampling with load_generator")
    CheckpointError: checkpoint 'runs/x/checkpoint.pt' is a DDPM (diffusion model) checkpoint, not a GAN's: ...
"""
from __future__ import annotations

from typing import Any

from .checkpoint import CheckpointError

__all__ = ["FAMILIES", "DIFFUSION_MODELS", "family_of", "check_family"]

FAMILIES = ("gan", "ddpm")
DIFFUSION_MODELS = ("ddpm",)  # TrainConfig.model values of the diffusion family; every other model is a GAN
_NAMES = {"gan": "a GAN", "ddpm": "a DDPM (diffusion model)"}
_OWNERS = {"gan": "a GAN's", "ddpm": "a DDPM's"}
_READERS = {"gan": "course_lib.train.GANTrainer / sampling.load_generator",
            "ddpm": "course_lib.diffusion.DDPMTrainer / diffusion.load_denoiser"}


def family_of(config: Any) -> str:
    """``"ddpm"`` or ``"gan"``: the family of a ``TrainConfig`` or of a config dict (a checkpoint's ``config``)."""
    model = config.get("model") if isinstance(config, dict) else getattr(config, "model", None)
    return "ddpm" if model in DIFFUSION_MODELS else "gan"


def check_family(state: dict[str, Any], expected: str, source: str = "checkpoint", use: str = "this") -> None:
    """Refuse a checkpoint ``state`` (from ``load_checkpoint``) of the other family than ``expected``.

    Args:
        expected: ``"gan"`` or ``"ddpm"``. source: how the message names the checkpoint. use: what it was given
            to, for the message (e.g. ``"resuming a GAN"``).

    Raises:
        CheckpointError: "<source> is a DDPM (diffusion model) checkpoint, not a GAN's: ..." (or the reverse),
            naming the code that reads it.
    """
    if expected not in FAMILIES:
        raise ValueError(f"unknown model family {expected!r}; valid families are {', '.join(FAMILIES)}")
    found = family_of(state.get("config") or {})
    if found != expected:
        raise CheckpointError(f"{source} is {_NAMES[found]} checkpoint, not {_OWNERS[expected]}, so it cannot be "
                              f"used for {use}; read it with {_READERS[found]} (python -m course_lib sample / "
                              "evaluate take both)")
