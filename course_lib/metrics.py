"""Metrics of sample quality.

2-D mixtures (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): a generated point is *high quality*
when it lies within 3 standard deviations of its nearest mode centre; a mode is *covered* when at least
``min_count`` high-quality points land on it (20 of 2,500 samples in the course's benchmarks).
"""
from __future__ import annotations

import torch

__all__ = ["mode_metrics", "summarize"]


def mode_metrics(samples: torch.Tensor, centres: torch.Tensor, std: float, n_std: float = 3.0,
                 min_count: int = 20) -> dict:
    """Modes covered and share of high-quality samples.

    Args:
        samples: (N, D) generated points.
        centres: (K, D) mode centres. std: per-coordinate std of each mode.
        n_std: a sample is high quality within ``n_std * std`` (Euclidean) of its nearest centre.
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``{"modes": int in [0, K], "num_modes": K, "high_quality": float in [0, 1], "counts": list of K ints,
        "n": N}``.
    """
    if not isinstance(samples, torch.Tensor) or samples.dim() != 2:
        raise ValueError(f"samples must be a (N, D) tensor, got {getattr(samples, 'shape', type(samples))}")
    centres = torch.as_tensor(centres, dtype=torch.float64)
    if centres.dim() != 2 or centres.shape[1] != samples.shape[1]:
        raise ValueError(f"centres must be (K, {samples.shape[1]}), got {tuple(centres.shape)}")
    if len(samples) == 0:
        raise ValueError("samples is empty; generate at least one sample")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    x = samples.detach().to("cpu", torch.float64)
    dist = torch.cdist(x, centres)
    nearest_d, nearest = dist.min(dim=1)
    good = torch.isfinite(nearest_d) & (nearest_d <= n_std * std)
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return {"modes": int((counts >= min_count).sum()), "num_modes": len(centres),
            "high_quality": float(good.double().mean()), "counts": counts.tolist(), "n": len(x)}


def summarize(trainer, n: int = 2500) -> dict:
    """Final metrics of a trained ``GANTrainer`` for ``metrics.json``: mode metrics on 2-D mixtures
    (``n`` samples), the last losses otherwise."""
    out: dict = {}
    ds = trainer.dataset
    if ds.centres is not None and ds.sample_shape == (2,):
        out.update(mode_metrics(trainer.sample(n), ds.centres, ds.std))
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        if trainer.history.get(k):
            out[f"final_{k}"] = trainer.history[k][-1]
    return out
