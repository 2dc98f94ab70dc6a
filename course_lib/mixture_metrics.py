"""Metrics of samples from a Gaussian mixture (the 2-D rings and grids, the 1-D mixture): modes and quality.

A generated point is *high quality* when it lies within 3 standard deviations of its nearest mode centre; a mode
is *covered* when at least ``min_count`` high-quality points land on it (20 of 2,500 samples in the course's
benchmarks). As in Metz et al. 2017 (Unrolled GAN), Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN).

    >>> from course_lib.mixture_metrics import mode_metrics
    >>> ds = data.ring8()
    >>> mode_metrics(G(z), ds.centres, ds.std)          # {"modes": 8, "high_quality": 0.93, "counts": [...], ...}
"""
from __future__ import annotations

import numbers

import torch

from .checks import is_int

__all__ = ["mode_metrics"]


def mode_metrics(samples: torch.Tensor, centres: torch.Tensor, std: float | torch.Tensor, n_std: float = 3.0,
                 min_count: int = 20) -> dict:
    """Modes covered and share of high-quality samples.

    Args:
        samples: (N, D) generated points (finite): a tensor, or a NumPy array / nested list (converted).
        centres: (K, D) mode centres, K >= 1. std: per-coordinate std of each mode (a float or a 1-element
            tensor), > 0.
        n_std: a sample is high quality within ``n_std * std`` (Euclidean) of its nearest centre.
        min_count: high-quality samples a mode needs to count as covered (a positive integer).

    Returns:
        ``{"modes": int in [0, K], "num_modes": K, "high_quality": float in [0, 1], "counts": list of K ints,
        "n": N}``.

    Raises:
        ValueError: wrong shapes, no samples or centres, a non-positive std, n_std or min_count, or NaN /
            infinite samples.
    """
    if not isinstance(samples, torch.Tensor):
        try:  # a NumPy array or a nested list of numbers: measured the same way
            samples = torch.as_tensor(samples)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"samples must be a (N, D) tensor or array of numbers, got {type(samples).__name__}") \
                from None
    if samples.dim() != 2:
        raise ValueError(f"samples must be (N, D), one row per point, got shape {tuple(samples.shape)}")
    if isinstance(n_std, bool) or not isinstance(n_std, numbers.Real) or not 0 < n_std < float("inf"):
        raise ValueError(f"n_std must be a positive number (3 in the course: within 3 std of a centre), got {n_std!r}")
    if not is_int(min_count) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer (the high-quality samples a mode needs to count as "
                         f"covered; 20 of 2,500 in the course), got {min_count!r}")
    centres = torch.as_tensor(centres, dtype=torch.float64)
    if centres.dim() != 2 or centres.shape[1] != samples.shape[1]:
        raise ValueError(f"centres must be (K, {samples.shape[1]}), got {tuple(centres.shape)}")
    if len(centres) == 0:
        raise ValueError("centres is empty (K = 0); pass the (K, D) mode centres of the mixture (Dataset.centres)")
    if len(samples) == 0:
        raise ValueError("samples is empty; generate at least one sample")
    std_t = torch.as_tensor(std, dtype=torch.float64)
    if std_t.numel() != 1:
        raise ValueError(f"std must be one number (the per-coordinate std of every mode), got shape "
                         f"{tuple(std_t.shape)}")
    std = float(std_t)
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    x = samples.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"samples contain NaN or infinite values ({bad} of {len(x)} rows); the generator "
                         f"diverged: check the samples before measuring them")
    dist = torch.cdist(x, centres)
    nearest_d, nearest = dist.min(dim=1)
    good = nearest_d <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return {"modes": int((counts >= min_count).sum()), "num_modes": len(centres),
            "high_quality": float(good.double().mean()), "counts": counts.tolist(), "n": len(x)}
