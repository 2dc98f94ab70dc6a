"""Controllable generation with a trained, unconditional generator (notebook 08).

* **The truncation trick** (Brock, Donahue & Simonyan 2019, BigGAN): draw z from a standard normal truncated at
  ``psi`` (``truncated_noise``); a small ``psi`` keeps G near the centre of its latent space, where samples look
  most typical (precision up) and least varied (recall down). ``truncation_curve`` measures precision, recall
  (``image_metrics.precision_recall``) and the Frechet distance in the course classifier's features for several
  ``psi``; ``truncation_figure`` plots them.
* **A latent direction** (InterFaceGAN, Shen et al. 2020): label generated samples with the classifier, fit a
  linear boundary in z between two classes (``fit_direction``, a linear SVM), and walk along its unit normal
  (``walk``, ``walk_figure``, ``direction_explorer`` with a slider).

    >>> rows = truncation_curve(G, clf, real_feats, psis=(0.25, 0.5, 1.0, 2.0), n=1000)
    >>> truncation_figure(rows)
    >>> z, probs = labelled_latents(G, clf, 2000)
    >>> keep, y = two_class_labels(probs, 7, 9)
    >>> d = fit_direction(z[keep], y)          # d.normal: (latent_dim,) unit vector from class 7 towards class 9
    >>> images, probs = walk_readings(G, clf, onto_boundary(z[0], d), d.normal, [-2, 0, 2])
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .image_metrics import frechet_distance, precision_recall
from .sampling import generate
from .utils import check_int

__all__ = ["truncated_noise", "truncation_curve", "truncation_figure", "labelled_latents", "two_class_labels",
           "LatentDirection", "fit_direction", "onto_boundary", "walk", "walk_readings", "walk_figure",
           "direction_explorer"]


def _check_psi(psi: float) -> float:
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi) or psi <= 0:
        raise ValueError(f"psi must be a finite number > 0 (the truncation threshold in standard deviations), got "
                         f"{psi!r}; psi = 2 or more is almost no truncation, 0.5 a strong one")
    return float(psi)


# ----------------------------------------------------------------------------- the truncation trick

def truncated_noise(n: int, dim: int, psi: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, dim) float32 noise from N(0, 1) truncated to [-psi, psi]: values beyond |psi| are drawn again.

    ``generator`` (a CPU ``torch.Generator``) makes it reproducible. A large ``psi`` (4 or more) is a standard
    normal in practice; a small one concentrates z near 0 (for psi < 0.1 the resampling is slow: use psi >= 0.1).
    """
    check_int("n", n)
    check_int("dim", dim)
    psi = _check_psi(psi)
    z = torch.randn(n, dim, generator=generator)
    bad = z.abs() > psi
    while bad.any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
        bad = z.abs() > psi
    return z


def _device(G: torch.nn.Module) -> torch.device:
    return next(G.parameters()).device


def truncation_curve(G: torch.nn.Module, classifier, real_feats: torch.Tensor, psis: Sequence[float], n: int,
                     k: int = 3, seed: int = 0, batch_size: int = 256) -> list[dict]:
    """Precision, recall and Frechet distance of ``n`` samples of the unconditional ``G`` for each ``psi``.

    Args:
        G: an unconditional generator (``G.latent_dim``), images in [-1, 1].
        classifier: a ``course_lib.classifier.Classifier`` whose ``embed`` gives the features.
        real_feats: (N, F) features of real images (N > k), e.g. the test split's.
        psis: truncation thresholds (> 0); each uses the same seed, so the curves differ only by psi.
        n: samples per psi (> k).

    Returns:
        one dict per psi: ``{"psi", "precision" in [0, 1], "recall" in [0, 1], "fd" >= 0}``.
    """
    if not len(psis):
        raise ValueError("psis is empty: give the truncation thresholds to compare, e.g. (0.5, 1.0, 2.0)")
    if getattr(G, "num_classes", None):
        raise ValueError("truncation_curve takes an unconditional generator (no labels); this one is conditional")
    rows = []
    for psi in psis:
        z = truncated_noise(n, G.latent_dim, psi, torch.Generator().manual_seed(seed))
        images = generate(G, n, G.latent_dim, _device(G), noise=z, batch_size=batch_size)
        feats, _ = classifier.embed(images, batch_size=batch_size)
        pr = precision_recall(real_feats, feats, k=k)
        rows.append({"psi": float(psi), "precision": pr["precision"], "recall": pr["recall"],
                     "fd": frechet_distance(real_feats, feats)})
    return rows


def truncation_figure(rows: list[dict]):
    """Figure: precision against recall, one point per psi (labelled), and the Frechet distance against psi."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    rec, prec = [r["recall"] for r in rows], [r["precision"] for r in rows]
    ax1.plot(rec, prec, "o-")
    for r in rows:
        ax1.annotate(f"psi={r['psi']:g}", (r["recall"], r["precision"]), textcoords="offset points", xytext=(4, 4),
                     fontsize=8)
    ax1.set_xlabel("recall (diversity)")
    ax1.set_ylabel("precision (fidelity)")
    ax1.set_xlim(-0.02, 1.02)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title("truncation: fidelity against diversity")
    ax2.plot([r["psi"] for r in rows], [r["fd"] for r in rows], "o-")
    ax2.set_xlabel("psi")
    ax2.set_ylabel("Frechet distance (classifier features)")
    ax2.set_title("lower is closer to the real images")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- a latent direction

def labelled_latents(G: torch.nn.Module, classifier, n: int, seed: int = 0, batch_size: int = 256
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` standard-normal noise vectors (n, latent_dim) and the classifier's probabilities (n, K) for G(z)."""
    check_int("n", n)
    z = torch.randn(n, G.latent_dim, generator=torch.Generator().manual_seed(seed))
    images = generate(G, n, G.latent_dim, _device(G), noise=z, batch_size=batch_size)
    return z, classifier.predict_proba(images, batch_size=batch_size)


def two_class_labels(probs: torch.Tensor, class_a: int, class_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples whose most likely class is ``class_a`` or ``class_b``: a (N,) bool mask, and their (M,) labels
    (0 for ``class_a``, 1 for ``class_b``)."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2:
        raise ValueError(f"probs must be (N, K) class probabilities, got shape {tuple(getattr(probs, 'shape', ()))}")
    for name, c in (("class_a", class_a), ("class_b", class_b)):
        if not isinstance(c, int) or not 0 <= c < probs.shape[1]:
            raise ValueError(f"{name}={c!r} is not a class index in [0, {probs.shape[1]})")
    if class_a == class_b:
        raise ValueError(f"class_a and class_b are both {class_a}: a boundary needs two different classes")
    top = probs.argmax(1)
    keep = (top == class_a) | (top == class_b)
    return keep, (top[keep] == class_b).long()


class LatentDirection(NamedTuple):
    """A linear boundary w.z + b = 0 in z-space: ``normal`` = w / |w| (D,), unit, pointing towards label 1;
    ``offset`` = b / |w| (signed distance of the origin from the boundary); ``accuracy`` on the fitted set."""

    normal: torch.Tensor
    offset: float
    accuracy: float


def fit_direction(z: torch.Tensor, y: torch.Tensor, C: float = 1.0) -> LatentDirection:
    """Fit a linear SVM (scikit-learn's ``LinearSVC``) separating z (N, D) with labels y (N,) in {0, 1}.

    Raises:
        ValueError: shapes that do not match, labels other than 0/1, or a single class (nothing to separate).
    """
    from sklearn.svm import LinearSVC

    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"z must be (N, latent_dim) noise vectors, got shape {tuple(getattr(z, 'shape', ()))}")
    if not isinstance(y, torch.Tensor) or y.shape != (len(z),):
        raise ValueError(f"y must be (N,) = ({len(z)},) labels in {{0, 1}}, got shape "
                         f"{tuple(getattr(y, 'shape', ()))}")
    values = set(torch.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"y must hold labels 0 and 1, got {sorted(values)}; use two_class_labels to make them")
    if len(values) < 2:
        raise ValueError(f"y holds only label {values.pop()}: both classes need samples; draw more samples or pick "
                         f"two classes the generator draws")
    x, t = z.detach().cpu().double().numpy(), y.cpu().numpy()
    svm = LinearSVC(C=C, max_iter=20_000).fit(x, t)
    w, b = svm.coef_[0], float(svm.intercept_[0])
    norm = float(np.linalg.norm(w))
    return LatentDirection(torch.as_tensor(w / norm, dtype=torch.float32), b / norm, float(svm.score(x, t)))


def onto_boundary(z: torch.Tensor, direction: LatentDirection) -> torch.Tensor:
    """The point of the boundary nearest to z: (D,) or (N, D) -> same shape, z - (z.n + offset) n."""
    if not isinstance(z, torch.Tensor) or z.shape[-1:] != direction.normal.shape:
        raise ValueError(f"z must end with the direction's size {tuple(direction.normal.shape)}, got "
                         f"{tuple(getattr(z, 'shape', ()))}")
    n = direction.normal.to(z.dtype)
    return z - ((z @ n) + direction.offset)[..., None] * n


def walk(z0: torch.Tensor, normal: torch.Tensor, steps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Points z0 + s * normal for each step s: (D,) start, (D,) direction, (T,) steps -> (T, D)."""
    if not isinstance(z0, torch.Tensor) or z0.dim() != 1:
        raise ValueError(f"z0 must be one noise vector of shape (D,), got {tuple(getattr(z0, 'shape', ()))}")
    if not isinstance(normal, torch.Tensor) or normal.shape != z0.shape:
        raise ValueError(f"normal must have the shape of z0 {tuple(z0.shape)}, got "
                         f"{tuple(getattr(normal, 'shape', ()))}")
    s = torch.as_tensor(steps, dtype=z0.dtype)
    if s.dim() != 1 or not len(s):
        raise ValueError(f"steps must be a non-empty 1-D sequence of distances along the direction, got {steps!r}")
    return z0[None] + s[:, None] * normal.to(z0.dtype)[None]


def walk_readings(G: torch.nn.Module, classifier, z0: torch.Tensor, normal: torch.Tensor,
                  steps: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (T, C, S, S) in [-1, 1] of G along ``walk(z0, normal, steps)`` and their class probabilities (T, K)."""
    z = walk(z0, normal, steps)
    images = generate(G, len(z), z.shape[1], _device(G), noise=z)
    return images, classifier.predict_proba(images)


def walk_figure(images: torch.Tensor, probs: torch.Tensor, steps: Sequence[float], classes: tuple[int, int],
                class_names: Sequence[str]):
    """A row of images, one per step, each with the probabilities of the two classes under it."""
    a, b = classes
    fig, axes = plt.subplots(1, len(images), figsize=(1.25 * len(images), 1.9), squeeze=False)
    for ax, img, p, s in zip(axes[0], images, probs, steps):
        ax.imshow(img[0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"step {float(s):+.1f}", fontsize=8)
        ax.text(0.5, -0.08, f"{class_names[a]} {p[a]:.2f}\n{class_names[b]} {p[b]:.2f}", fontsize=7,
                ha="center", va="top", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def direction_explorer(G: torch.nn.Module, classifier, direction: LatentDirection, starts: torch.Tensor,
                       classes: tuple[int, int], class_names: Sequence[str], limit: float = 4.0):
    """Slider widget (``course_lib.widgets.interactive``; a static figure without a widget front end): pick one of
    the (N, D) ``starts`` (moved onto the boundary) and a step along ``direction.normal``; shows
    G(z0 + step * normal) with the classifier's probabilities of the two ``classes``."""
    from .widgets import interactive

    if not isinstance(starts, torch.Tensor) or starts.dim() != 2 or not len(starts):
        raise ValueError(f"starts must be (N, latent_dim) noise vectors, N >= 1, got shape "
                         f"{tuple(getattr(starts, 'shape', ()))}")
    a, b = classes
    points = onto_boundary(starts, direction)

    def render(start: int, step: float):
        images, probs = walk_readings(G, classifier, points[int(start)], direction.normal, [float(step)])
        fig, ax = plt.subplots(figsize=(2.6, 2.9))
        ax.imshow(images[0, 0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{class_names[a]} {probs[0, a]:.2f} | {class_names[b]} {probs[0, b]:.2f}", fontsize=9)
        fig.tight_layout()
        return fig

    return interactive(render, start=("int", 0, 0, len(points) - 1), step=("float", 0.0, -limit, limit, 0.25))
