"""Samples from a trained generator: ``generate`` (any G), ``load_generator`` (from a checkpoint file) and
``check_compatible`` (does a checkpoint fit a config's models?).

    >>> G, config, info = load_generator("runs/ring8/checkpoint.pt")
    >>> x = generate(G, 2500, config.latent_dim, torch.device("cpu"))   # (2500, 2) points
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, check_finite_weights, load_checkpoint
from .config import MODEL_FIELDS, TrainConfig
from .data import DATASETS
from .device import get_device
from .families import check_family
from .models import build_models
from .utils import check_int, check_seed, env_flag, eval_mode, is_int

__all__ = ["generate", "load_generator", "load_for_sampling", "check_compatible", "check_same_data", "first_lines"]


def first_lines(exc: BaseException, n: int = 2) -> str:
    """The first ``n`` non-empty lines of an error (load_state_dict's headline and first mismatch)."""
    return " ".join([ln.strip() for ln in str(exc).splitlines() if ln.strip()][:n])


def check_compatible(config: TrainConfig, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Raise CheckpointError listing every model-defining field where ``state['config']`` and ``config`` differ."""
    saved = state.get("config", {})
    diffs = [f"{k}: {source} has {saved.get(k)!r}, the model asked for has {getattr(config, k)!r}"
             for k in MODEL_FIELDS if k in saved and saved.get(k) != getattr(config, k)]
    if diffs:
        raise CheckpointError(f"{source} does not match the requested model:\n  " + "\n  ".join(diffs))


def check_same_data(info: dict[str, Any], dataset: Any, source: str = "checkpoint") -> None:
    """Raise CheckpointError if ``dataset`` (a ``data.Dataset``) is not the data of the checkpoint's
    ``data_info`` ``info``: another sample shape or another name (a fallback run on digits is not MNIST). A run
    on a custom dataset (a name outside ``data.DATASETS``) is told to pass that dataset again."""
    saved_shape, shape = tuple(info.get("sample_shape") or ()), tuple(dataset.sample_shape)
    custom = info.get("name") and info["name"] not in DATASETS
    if custom and (info["name"] != dataset.name or (saved_shape and saved_shape != shape)):
        raise CheckpointError(f"{source} was trained on the custom dataset {info['name']!r} (samples of shape "
                              f"{saved_shape}), not on {dataset.name!r} of shape {shape}; pass it again: "
                              "GANTrainer.from_checkpoint(path, dataset=...) (the command line resumes only the "
                              "course's datasets)")
    if saved_shape and saved_shape != shape:
        raise CheckpointError(f"{source} was trained on samples of shape {saved_shape} (points: (dim,); images: "
                              f"(channels, height, width)), but this dataset's samples have shape {shape}; "
                              f"resume with the same data")
    if info.get("name") and info["name"] != dataset.name:
        raise CheckpointError(f"{source} was trained on the data {info['name']!r}, but this dataset is "
                              f"{dataset.name!r}; resume with the same data (start a new run for other data)")


def _check_labels(labels: Any, n: int, num_classes: int) -> torch.Tensor:
    """``labels`` as an (n,) int64 CPU tensor of classes in [0, num_classes), or a clear error."""
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor (class indices), got dtype {labels.dtype}")
    labels = labels.long().cpu()
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one class per sample, got {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be class indices in [0, {num_classes}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return labels


PROGRESS_FROM = 200_000  # generate shows a progress bar from this many samples on (progress=None)


@torch.no_grad()
def generate(G: nn.Module, n: int, latent_dim: int, device: torch.device, labels: torch.Tensor | None = None,
             noise: torch.Tensor | None = None, num_classes: int | None = None, seed: int = 0,
             batch_size: int = 256, progress: bool | None = None) -> torch.Tensor:
    """``n`` samples of generator ``G`` in eval mode (then G's mode is restored), on the CPU, float32,
    produced ``batch_size`` at a time (256: a 32x32 DCGAN's activations stay near 50 MB): (n, D) points or
    (n, C, S, S) images.

    ``labels`` (n,) int64 picks the classes of a conditional G (default: 0, 1, 2, ... cycling); ``noise``
    (n, latent_dim) fixes z (default: drawn from a CPU generator seeded with ``seed``, in [0, 2**63 - 1]).

    Memory: the output is allocated once, after the first batch (which gives the sample shape) and after
    ``rundir.check_sample_memory`` found room for it, then filled batch by batch: the samples plus their noise
    (``4 * (sample size + latent_dim)`` bytes a sample), nothing more per sample. ``progress`` shows a progress bar
    (tqdm.auto; off when ``TQDM_DISABLE`` is on); None shows it from ``PROGRESS_FROM`` samples on.

    Raises:
        ValueError: ``latent_dim`` is not the size ``G`` takes (``G.latent_dim``), or bad labels / noise.
        rundir.SampleTooLargeError: ``n`` samples would not fit in the memory available (before any is made).
    """
    from tqdm.auto import tqdm

    from .rundir import check_sample_memory

    check_int("n", n)
    check_int("batch_size", batch_size)
    check_int("latent_dim", latent_dim)
    taken = getattr(G, "latent_dim", None)
    if is_int(taken) and taken != latent_dim:
        raise ValueError(f"latent_dim={latent_dim}, but this generator takes noise of size {taken}: pass "
                         f"latent_dim={taken} (the config's latent_dim)")
    if noise is None:
        check_sample_memory(n, (), copies=0, flag="n", latent_dim=latent_dim)  # the noise alone must fit
        noise = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    if not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor of shape ({n}, {latent_dim}), got "
                        f"{getattr(noise, 'dtype', type(noise).__name__)}")
    if noise.shape != (n, latent_dim):
        raise ValueError(f"noise must have shape ({n}, {latent_dim}), got {tuple(noise.shape)}")
    noise = noise.float()
    if num_classes:
        labels = torch.arange(n) % num_classes if labels is None else _check_labels(labels, n, num_classes)
    elif labels is not None:
        raise ValueError("labels were given but this generator is unconditional (no classes); train with "
                         "conditional=True to choose classes")
    out: torch.Tensor | None = None
    show = (n >= PROGRESS_FROM if progress is None else bool(progress)) and not env_flag("TQDM_DISABLE")
    with eval_mode(G), tqdm(total=n, unit="sample", desc="sampling", disable=not show, leave=False) as bar:
        for i in range(0, n, batch_size):
            z = noise[i:i + batch_size].to(device)
            y = None if not num_classes else labels[i:i + batch_size].to(device)
            x = (G(z) if y is None else G(z, y)).float()
            if out is None:  # the first batch gives the sample shape: check the room, then allocate once
                check_sample_memory(n, tuple(x.shape[1:]), copies=1, flag="n")
                out = torch.empty((n, *x.shape[1:]), dtype=torch.float32)
            out[i:i + len(x)] = x.cpu()
            bar.update(len(x))
    return out


def load_for_sampling(path: str | os.PathLike, family: str, for_what: str, use_ema: bool = True
                      ) -> tuple[dict[str, Any], TrainConfig, dict[str, Any], tuple[int, ...]]:
    """Read a checkpoint that is to sample: of ``family`` (``"gan"`` or ``"ddpm"``), with finite weights (the EMA
    ones when ``use_ema`` and present), a valid config and a recorded sample shape; each refusal names ``for_what``.

    Returns ``(state, config, data_info, sample_shape)``."""
    source = f"checkpoint {str(path)!r}"
    state = load_checkpoint(path)
    what = "a GAN's generator" if family == "gan" else "a DDPM"
    check_family(state, family, source, f"{for_what} with {what}")
    check_finite_weights(state, for_what, use_ema=use_ema, source=source)
    try:
        config = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from None
    info = state.get("data_info") or {}
    shape = tuple(info.get("sample_shape") or ())
    if not shape:
        raise CheckpointError(f"checkpoint {path} does not record the data's sample shape")
    return state, config, info, shape


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True,
                   for_what: str = "sampling") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Load the generator of a checkpoint (the EMA one when present) for sampling.

    Returns ``(G, config, data_info)``; G is in eval mode on ``device``. A checkpoint whose generator weights are
    NaN or infinite is refused (``for_what`` names the use in the message: ``"sampling"``, ``"evaluation"``).
    """
    state, config, info, shape = load_for_sampling(path, "gan", for_what, use_ema)
    with torch.device("meta"):  # sizes only, no memory: the saved tensors are checked against them, then used
        G, _ = build_models(config.model, shape, config.latent_dim, config.g_width, config.d_width, config.depth,
                            info.get("num_classes"), config.spectral_norm, config.latent_codes)
    weights = state["G_ema"] if (use_ema and state.get("G_ema") is not None) else state["G"]
    try:
        G.load_state_dict(weights, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: generator weights do not fit its config: "
                              f"{first_lines(exc)}") from None
    return G.to(get_device(device)).eval(), config, info
