"""Metrics of sample quality.

2-D mixtures (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): a generated point is *high quality*
when it lies within 3 standard deviations of its nearest mode centre; a mode is *covered* when at least
``min_count`` high-quality points land on it (20 of 2,500 samples in the course's benchmarks).

Images, offline (no downloaded Inception weights): the course's own small classifier
(``course_lib.classifier``, trained on the dataset's training split) gives class probabilities and penultimate
features, from which

* ``frechet_distance``: the FID formula on the classifier's features (Heusel et al. 2017);
* ``kid``: the unbiased kernel distance of Binkowski et al. 2018, mean and sd over subsets;
* ``classifier_score``: the Inception-Score formula with this classifier (Salimans et al. 2016);
* ``class_coverage``: share of classes generated and distance of the class histogram from uniform;
* ``precision_recall``: k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019);
* ``density_coverage``: (Naeem et al. 2020);
* ``memorisation``: distances of samples to their nearest training image against held-out real images'.

``evaluate_images`` computes all of them against the *reference*, the held-out test split (at most 10,000
images), and beside each the *floor*: the same metric for real images of the same number and class mix, drawn
from training images the classifier never saw (``classifier.floor_pool``), as mean and sd over resamples. A
generated value inside the floor's noise is reported as "within noise of real data", never as better than
real. All pairwise distances are computed in chunks: memory stays bounded whatever the set sizes. Values are
comparable only between runs measured with the same classifier, data and sample size.

``summary_request`` and ``summarize`` are what a training run reports at its end (``metrics.json``).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from .utils import check_int, check_seed

__all__ = ["mode_metrics", "summary_request", "summarize", "frechet_distance", "frechet_distance_gaussians",
           "kid", "classifier_score", "class_coverage", "precision_recall", "density_coverage", "memorisation",
           "evaluate_images", "compare_sets", "real_reference", "floor_verdict", "IMAGE_EVAL_SAMPLES",
           "WITHIN_NOISE"]

WITHIN_NOISE = "within noise of real data"
CHUNK_BYTES = 64 * 2**20  # each block of pairwise distances holds at most this many bytes


def mode_metrics(samples: torch.Tensor, centres: torch.Tensor, std: float | torch.Tensor, n_std: float = 3.0,
                 min_count: int = 20) -> dict:
    """Modes covered and share of high-quality samples.

    Args:
        samples: (N, D) generated points (finite).
        centres: (K, D) mode centres, K >= 1. std: per-coordinate std of each mode (a float or a 1-element
            tensor), > 0.
        n_std: a sample is high quality within ``n_std * std`` (Euclidean) of its nearest centre.
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``{"modes": int in [0, K], "num_modes": K, "high_quality": float in [0, 1], "counts": list of K ints,
        "n": N}``.

    Raises:
        ValueError: wrong shapes, no samples or centres, a non-positive std, or NaN / infinite samples.
    """
    if not isinstance(samples, torch.Tensor) or samples.dim() != 2:
        raise ValueError(f"samples must be a (N, D) tensor, got {getattr(samples, 'shape', type(samples))}")
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


# ----------------------------------------------------------------------------- input checks

def _as_matrix(x, name: str, min_rows: int = 1) -> np.ndarray:
    """(N, F) float64 numpy array from a tensor / array, or a clear ValueError."""
    if (isinstance(x, torch.Tensor) and x.is_complex()) or (not isinstance(x, torch.Tensor) and np.iscomplexobj(x)):
        raise ValueError(f"{name} holds complex numbers; features must be real: pass x.real or x.abs() if that is "
                         f"what you mean")
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, F) (one feature row per sample), got shape "
                         f"{x.shape}; flatten images or pass classifier features")
    if len(x) < min_rows:
        raise ValueError(f"{name} has {len(x)} rows; this metric needs at least {min_rows} samples")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinite values ({bad} of {len(x)} rows); the generator or "
                         f"the features diverged: check the samples before measuring them")
    return x


def _check_k(k: int, n: int, name: str) -> None:
    check_int("k", k)
    if n <= k:
        raise ValueError(f"{name} has {n} samples, too few for k={k} nearest neighbours; pass at least {k + 1} "
                         f"samples or a smaller k")


# ----------------------------------------------------------------------------- Frechet distance

def _check_covariance(c: np.ndarray, name: str, tol: float = 1e-6) -> None:
    """Refuse a matrix that is not symmetric positive semi-definite within ``tol`` (relative to its scale)."""
    scale = max(1.0, float(np.abs(c).max()))
    if not np.allclose(c, c.T, rtol=0, atol=tol * scale):
        raise ValueError(f"{name} is not symmetric (largest |c - c.T| = {np.abs(c - c.T).max():.3g}); a covariance "
                         f"is symmetric: use np.cov, or (c + c.T) / 2")
    low = float(np.linalg.eigvalsh((c + c.T) / 2).min()) if len(c) else 0.0
    if low < -tol * scale:
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {low:.3g}); a covariance has no "
                         f"negative eigenvalues: compute it with np.cov from samples")


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_gaussians(mu1, cov1, mu2, cov2) -> float:
    r"""Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

    $$d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \mathrm{tr}(\Sigma_1) + \mathrm{tr}(\Sigma_2)
            - 2\,\mathrm{tr}\big((\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}\big).$$

    The trace term equals tr((S1 S2)^{1/2}) of the FID formula; it is computed from the eigenvalues of the
    symmetric positive semi-definite matrix S1^{1/2} S2 S1^{1/2}, so no complex parts arise and singular
    covariances (fewer samples than features) are fine.

    Args:
        mu1, mu2: (F,) means. cov1, cov2: (F, F) symmetric positive semi-definite covariances (checked, with a
            tolerance of 1e-6 relative to the largest entry).

    Returns:
        A float >= 0 (0 for identical Gaussians; tiny negative round-off is clipped to 0).

    Raises:
        ValueError: shapes that do not match, NaN / infinite / complex values, or a covariance that is not
            symmetric positive semi-definite.
    """
    for name, a in (("mu1", mu1), ("mu2", mu2), ("cov1", cov1), ("cov2", cov2)):
        if np.iscomplexobj(a) or (isinstance(a, torch.Tensor) and a.is_complex()):
            raise ValueError(f"{name} holds complex numbers; means and covariances must be real")
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length (F,), got {mu1.shape} and {mu2.shape}")
    f = len(mu1)
    if cov1.shape != (f, f) or cov2.shape != (f, f):
        raise ValueError(f"cov1 and cov2 must be ({f}, {f}) matrices, got {cov1.shape} and {cov2.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("cov1", cov1), ("cov2", cov2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    _check_covariance(cov1, "cov1")
    _check_covariance(cov2, "cov2")
    s1 = _sqrt_psd(cov1)
    inner = s1 @ ((cov2 + cov2.T) / 2) @ s1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)
    return max(d, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance (the FID formula) between two sets of features, each fitted with a Gaussian.

    Args:
        feats_a: (N, F) features of one set, feats_b: (M, F) of the other (N, M >= 2), real tensors or arrays.

    Returns:
        ``frechet_distance_gaussians(mean_a, cov_a, mean_b, cov_b)``, a float >= 0. The estimate is biased
        upwards for finite N and M (two samples of one distribution do not score 0), so compare sets of
        equal sizes, or against the floor of ``evaluate_images``.
    """
    a, b = _as_matrix(feats_a, "feats_a", 2), _as_matrix(feats_b, "feats_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: feats_a has {a.shape[1]} columns, feats_b {b.shape[1]}")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], -1),
                                      b.mean(0), np.cov(b, rowvar=False).reshape(b.shape[1], -1))


# ----------------------------------------------------------------------------- KID

def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    r"""Kernel inception distance (Binkowski et al. 2018) in the given features: the unbiased estimate of the
    squared MMD with the cubic polynomial kernel $k(x, y) = (x^\top y / F + 1)^3$,

    $$\widehat{\mathrm{MMD}}^2_u = \tfrac{1}{m(m-1)}\sum_{i\ne j} k(a_i, a_j) + \tfrac{1}{m(m-1)}\sum_{i\ne j}
      k(b_i, b_j) - \tfrac{2}{m^2}\sum_{i,j} k(a_i, b_j),$$

    averaged over ``subsets`` random subsets of m = min(subset_size, N, M) rows of each set (drawn without
    replacement, as torchmetrics does). Unlike the Frechet distance it is unbiased: its mean is 0 for two
    samples of one distribution at any m, so it can be negative.

    Args:
        feats_a: (N, F), feats_b: (M, F) features, N, M >= 2.
        subsets: number of subsets (100 in the paper's code), subset_size: rows per subset (1,000).
        seed: seed of the subset draws.

    Returns:
        ``{"kid": mean over subsets, "kid_sd": sd over subsets (0 for one subset), "subsets", "subset_size": m}``.
    """
    a, b = _as_matrix(feats_a, "feats_a", 2), _as_matrix(feats_b, "feats_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: feats_a has {a.shape[1]} columns, feats_b {b.shape[1]}")
    check_int("subsets", subsets)
    check_int("subset_size", subset_size, minimum=2)
    m = min(subset_size, len(a), len(b))
    f = a.shape[1]
    rng = np.random.default_rng(check_seed(seed))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def kernel_sum(x: torch.Tensor, y: torch.Tensor, off_diagonal: bool) -> float:
        k = torch.addmm(torch.ones((), dtype=x.dtype), x, y.T, alpha=1.0 / f)  # x.y / F + 1
        k = k * k * k
        return float(k.sum() - (k.diagonal().sum() if off_diagonal else 0.0))

    values = np.empty(subsets)
    for s in range(subsets):
        x = ta[torch.from_numpy(rng.choice(len(a), m, replace=False))]
        y = tb[torch.from_numpy(rng.choice(len(b), m, replace=False))]
        values[s] = ((kernel_sum(x, x, True) + kernel_sum(y, y, True)) / (m * (m - 1))
                     - 2 * kernel_sum(x, y, False) / (m * m))
    return {"kid": float(values.mean()), "kid_sd": float(values.std(ddof=1)) if subsets > 1 else 0.0,
            "subsets": subsets, "subset_size": m}


# ----------------------------------------------------------------------------- class statistics

def _as_probs(probs, name: str = "probs") -> np.ndarray:
    p = _as_matrix(probs, name)
    if (p < -1e-6).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError(f"{name} must hold probabilities (N, C): non-negative rows that sum to 1; apply "
                         f"softmax to logits first (Classifier.predict_proba does)")
    return np.clip(p, 0, None)


def classifier_score(probs) -> float:
    r"""The Inception-Score formula with the course's classifier:

    $$\mathrm{CS} = \exp\big(\mathbb{E}_x[\mathrm{KL}(p(y\mid x)\,\Vert\,p(y))]\big), \quad
      p(y) = \mathbb{E}_x[p(y\mid x)].$$

    Args:
        probs: (N, C) class probabilities of N samples (rows sum to 1).

    Returns:
        A float in [1, C]: high when each sample is classified confidently (sharp p(y|x)) *and* the classes
        are balanced (flat p(y)); C for confident, perfectly balanced samples, 1 for one class only.
    """
    p = _as_probs(probs)
    py = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + 1e-12) - np.log(py + 1e-12))).sum(1)
    return float(math.exp(kl.mean()))


def class_coverage(probs_or_labels, num_classes: int = 10) -> dict:
    r"""How evenly the samples spread over the classes.

    Args:
        probs_or_labels: (N, C) class probabilities (the arg-max class is used) or (N,) integer labels in
            [0, num_classes).
        num_classes: C.

    Returns:
        ``{"classes_present": share of the C classes with at least one sample, in [1/C, 1],
        "min_class_share", "max_class_share": smallest / largest share of samples in one class, in [0, 1]
        (1/C each when balanced), "tv_from_uniform": total variation $\tfrac12\sum_c |h_c - 1/C|$ in
        [0, 1 - 1/C], "kl_from_uniform": $\mathrm{KL}(h\,\Vert\,U) = \log C - H(h)$ in [0, log C],
        "histogram": the C shares h_c}``.
    """
    check_int("num_classes", num_classes, minimum=2)
    x = probs_or_labels
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 2:
        if x.shape[1] != num_classes:
            raise ValueError(f"probabilities have {x.shape[1]} columns but num_classes={num_classes}")
        labels = _as_probs(x).argmax(1)
    elif x.ndim == 1:
        if len(x) and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {x.dtype}; pass (N, C) probabilities or (N,) labels")
        labels = x.astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got values from {labels.min()} to {labels.max()}")
    else:
        raise ValueError(f"expected (N, C) probabilities or (N,) labels, got shape {x.shape}")
    if len(labels) == 0:
        raise ValueError("no samples given (N = 0)")
    h = np.bincount(labels, minlength=num_classes) / len(labels)
    nz = h[h > 0]
    return {"classes_present": float((h > 0).mean()), "min_class_share": float(h.min()),
            "max_class_share": float(h.max()), "tv_from_uniform": float(0.5 * np.abs(h - 1 / num_classes).sum()),
            "kl_from_uniform": float(math.log(num_classes) + (nz * np.log(nz)).sum()),
            "histogram": [float(v) for v in h]}


# ----------------------------------------------------------------------------- k-NN manifolds (chunked)

def _blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
    """Row blocks of the (N, M) Euclidean distances between a (N, F) and b (M, F), float64, each block at most
    ``CHUNK_BYTES``: (rows of a, (rows, M) distances)."""
    rows = max(1, CHUNK_BYTES // (8 * max(1, len(b))))
    for i in range(0, len(a), rows):
        yield slice(i, i + rows), torch.cdist(a[i:i + rows], b)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) distance of each row of x (N, F) to its k-th nearest other row, in bounded memory."""
    out = torch.empty(len(x), dtype=torch.float64)
    for sl, d in _blocks(x, x):
        idx = torch.arange(sl.start, sl.start + len(d))
        d[torch.arange(len(d)), idx] = float("inf")  # a point is not its own neighbour
        out[sl] = d.topk(k, dim=1, largest=False).values[:, k - 1]
    return out


def _pair(real_feats, fake_feats) -> tuple[torch.Tensor, torch.Tensor]:
    r, f = _as_matrix(real_feats, "real_feats"), _as_matrix(fake_feats, "fake_feats")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {r.shape[1]}, fake {f.shape[1]}")
    return torch.from_numpy(r), torch.from_numpy(f)


def _precision_recall(r: torch.Tensor, f: torch.Tensor, k: int, radii_r: torch.Tensor | None = None) -> dict:
    radii_r = _knn_radii(r, k) if radii_r is None else radii_r
    radii_f = _knn_radii(f, k)
    precise = torch.zeros(len(f), dtype=torch.bool)
    for sl, d in _blocks(f, r):
        precise[sl] = (d <= radii_r[None, :]).any(1)
    recalled = torch.zeros(len(r), dtype=torch.bool)
    for sl, d in _blocks(r, f):
        recalled[sl] = (d <= radii_f[None, :]).any(1)
    return {"precision": float(precise.double().mean()), "recall": float(recalled.double().mean()), "k": k}


def _density_coverage(r: torch.Tensor, f: torch.Tensor, k: int, radii_r: torch.Tensor | None = None) -> dict:
    radii_r = _knn_radii(r, k) if radii_r is None else radii_r
    inside = 0
    covered = torch.zeros(len(r), dtype=torch.bool)
    for sl, d in _blocks(r, f):  # (real rows, M)
        hit = d <= radii_r[sl, None]
        inside += int(hit.sum())
        covered[sl] = hit.any(1)
    return {"density": inside / (k * len(f)), "coverage": float(covered.double().mean()), "k": k}


def precision_recall(real_feats, fake_feats, k: int = 3) -> dict:
    r"""Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to the point's k-th
    nearest neighbour in the same set:

    $$\mathrm{precision} = \tfrac1M\sum_j 1[\phi_j^{fake} \in \mathrm{manifold}(\Phi^{real})], \quad
      \mathrm{recall} = \tfrac1N\sum_i 1[\phi_i^{real} \in \mathrm{manifold}(\Phi^{fake})].$$

    Distances are computed in blocks, so memory stays bounded (about 64 MB) whatever N and M.

    Args:
        real_feats: (N, F), fake_feats: (M, F) features (N, M > k).
        k: neighbourhood size (3 in the paper).

    Returns:
        ``{"precision": float in [0, 1] (how many samples look real), "recall": float in [0, 1] (how much of
        the real data the samples cover), "k": k}``. Both are 1 for identical sets; for two finite samples
        of one distribution they are below 1 and depend on N, M and k.
    """
    r, f = _pair(real_feats, fake_feats)
    _check_k(k, len(r), "real_feats")
    _check_k(k, len(f), "fake_feats")
    return _precision_recall(r, f, k)


def density_coverage(real_feats, fake_feats, k: int = 5) -> dict:
    r"""Density and coverage (Naeem et al. 2020), with balls B(x_i, r_i) of radius the k-th nearest-neighbour
    distance of each *real* point:

    $$\mathrm{density} = \tfrac{1}{kM}\sum_j\sum_i 1[\phi_j^{fake} \in B_i], \quad
      \mathrm{coverage} = \tfrac1N\sum_i 1[\exists j: \phi_j^{fake} \in B_i].$$

    Args:
        real_feats: (N, F), fake_feats: (M, F) features (N > k, M >= 1). k: 5 in the paper.

    Returns:
        ``{"density": float >= 0 (about 1 for samples distributed like the data, above 1 when they crowd
        into dense regions), "coverage": float in [0, 1], "k": k}``.
    """
    r, f = _pair(real_feats, fake_feats)
    _check_k(k, len(r), "real_feats")
    return _density_coverage(r, f, k)


# ----------------------------------------------------------------------------- memorisation

def _flat_rows(x, name: str, min_rows: int = 1) -> torch.Tensor:
    """(N, ...) tensor / array -> (N, P) float32 CPU tensor (uint8 images become [-1, 1]), checked."""
    if not isinstance(x, torch.Tensor):
        if np.iscomplexobj(x):
            raise ValueError(f"{name} holds complex numbers; pass real images or features")
        x = torch.as_tensor(np.asarray(x))
    if x.is_complex():
        raise ValueError(f"{name} holds complex numbers; pass real images or features")
    if x.dim() == 0 or len(x) < min_rows:
        raise ValueError(f"{name} has {0 if x.dim() == 0 else len(x)} rows; memorisation needs at least {min_rows} "
                         f"(pass a batch of images, shape (N, C, H, W), or of features, (N, F))")
    x = x.detach().cpu()
    x = x.reshape(len(x), -1) if x.dim() > 1 else x[:, None]
    if x.dtype == torch.uint8:  # always finite; converted in blocks to keep the peak memory down
        out = torch.empty(x.shape, dtype=torch.float32)
        for i in range(0, len(x), 8192):
            out[i:i + 8192] = x[i:i + 8192].float().div_(127.5).sub_(1.0)
        return out
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name} contains NaN or infinite values ({bad} of {len(x)} rows); the generator "
                         f"diverged: check the samples before measuring them")
    return x


def _nearest_distance(a: torch.Tensor, b: torch.Tensor, candidates: int = 4) -> torch.Tensor:
    """(N,) Euclidean distance of each row of a (N, P) to its nearest row of b (M, P), float64, bounded memory.

    Candidates come from float32 squared distances |a|^2 + |b|^2 - 2 a.b in blocks; the ``candidates`` nearest of
    each row are then measured exactly in float64, so exact copies give exactly 0.
    """
    b_sq = torch.cat([blk.double().pow(2).sum(1).float() for blk in b.split(8192)])
    rows = max(1, CHUNK_BYTES // (4 * max(1, len(b))))
    out = torch.empty(len(a), dtype=torch.float64)
    c = min(candidates, len(b))
    for i in range(0, len(a), rows):
        x = a[i:i + rows]
        d2 = torch.addmm(b_sq[None, :], x, b.T, alpha=-2).add_(x.double().pow(2).sum(1).float()[:, None])
        idx = d2.topk(c, dim=1, largest=False).indices  # (rows, c)
        exact = (x.double()[:, None, :] - b[idx].double()).pow(2).sum(-1).sqrt()
        out[i:i + rows] = exact.min(1).values
    return out


def memorisation(fake, train, heldout, quantile: float = 0.01) -> dict:
    r"""Do samples copy the training set? Compares each sample's distance to its nearest training image with
    the same distance for held-out real images (which the generator never saw).

    Args:
        fake: (M, ...) samples, train: (N, ...) training images, heldout: (H, ...) held-out real images, all
            with the same shape per sample (flattened; pixel space or features; uint8 images are read as
            [-1, 1]). M, N >= 1, H >= 2. Memory stays bounded (blocks of about 64 MB) for any N.
        quantile: the "suspiciously close" threshold is this quantile of the held-out distances.

    Returns:
        ``{"median_nn_fake": median over samples of min_i ||fake_j - train_i||,
        "median_nn_heldout": the same for held-out images, "median_ratio": their ratio (about 1 for a
        generator that does not copy, well below 1 when samples are copies, above 1 for poor samples),
        "share_closer": share of samples nearer to the training set than the ``quantile`` of held-out
        distances (about ``quantile`` without copying, 1 for copies), "share_exact": share of samples within
        1e-6 (relative) of a training image, "quantile": quantile}``.
    """
    f, t, h = _flat_rows(fake, "fake"), _flat_rows(train, "train"), _flat_rows(heldout, "heldout", 2)
    if not (f.shape[1] == t.shape[1] == h.shape[1]):
        raise ValueError(f"fake, train and heldout must have the same size per sample, got {f.shape[1]}, "
                         f"{t.shape[1]} and {h.shape[1]} values")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    nn_f = _nearest_distance(f, t).numpy()
    nn_h = _nearest_distance(h, t).numpy()
    thr = float(np.quantile(nn_h, quantile))
    med_h = float(np.median(nn_h))
    scale = float(t.abs().max()) or 1.0
    return {"median_nn_fake": float(np.median(nn_f)), "median_nn_heldout": med_h,
            "median_ratio": float(np.median(nn_f) / med_h) if med_h > 0 else float("nan"),
            "share_closer": float((nn_f < thr).mean()), "share_exact": float((nn_f <= 1e-6 * scale).mean()),
            "quantile": quantile}


# ----------------------------------------------------------------------------- reference, floor and verdicts

IMAGE_EVAL_SAMPLES = {"digits": 1434, "mnist": 5000, "fashion-mnist": 5000}
"""Samples a training summary generates per image dataset: a few chunks of the evaluation size (digits: 6 x 239)."""
_LOWER_IS_BETTER = ("frechet_distance", "kid")
_HIGHER_IS_BETTER = ("precision", "recall", "coverage")
_TWO_SIDED = ("density",)


def floor_verdict(value: float, floor_mean: float, floor_sd: float, higher_is_better: bool | None = False,
                  n_sd: float = 2.0) -> str:
    """How a generated value compares with the real-data floor (mean and sd over resamples).

    A value on the real side of the floor, or within ``n_sd`` floor sds of its mean, is ``WITHIN_NOISE`` ("within
    noise of real data"): a finite sample cannot be better than real data, only indistinguishable from it at
    this sample size. Otherwise "worse than real data" (``higher_is_better=None``, two-sided, for density:
    "differs from real data").
    """
    margin = n_sd * max(float(floor_sd), 0.0)
    if higher_is_better is None:
        return WITHIN_NOISE if abs(value - floor_mean) <= margin else "differs from real data"
    ok = value >= floor_mean - margin if higher_is_better else value <= floor_mean + margin
    return WITHIN_NOISE if ok else "worse than real data"


def _set_metrics(fake: torch.Tensor, ref: torch.Tensor, radii: dict, k: int, k_density: int,
                 kid_subsets: int, kid_subset_size: int, seed: int) -> dict:
    """The sample-size dependent metrics of one (n, F) set against the (R, F) reference (float64 tensors)."""
    out = {"frechet_distance": frechet_distance(fake, ref)}
    kd = kid(fake, ref, kid_subsets, kid_subset_size, seed)
    out.update(kid=kd["kid"], kid_sd=kd["kid_sd"])
    pr = _precision_recall(ref, fake, k, radii[k])
    dc = _density_coverage(ref, fake, k_density, radii[k_density])
    out.update(precision=pr["precision"], recall=pr["recall"], density=dc["density"], coverage=dc["coverage"])
    return out


def _floor_indices(n: int, pool_labels: torch.Tensor | None, fake_labels: torch.Tensor | None,
                   g: torch.Generator, pool_size: int) -> torch.Tensor:
    """n pool indices: the class counts of ``fake_labels`` when given (stratified), else a uniform subset."""
    if fake_labels is None or pool_labels is None:
        return torch.randperm(pool_size, generator=g)[:n]
    counts = torch.bincount(fake_labels[:n].cpu().long(), minlength=int(pool_labels.max()) + 1)
    picks = []
    for c, want in enumerate(counts.tolist()):
        members = torch.nonzero(pool_labels == c).flatten()
        if want > len(members):
            raise ValueError(f"the floor needs {want} real images of class {c} but the pool holds {len(members)}; "
                             f"evaluate fewer samples (n_eval) or draw the labels like the data (summary_request)")
        picks.append(members[torch.randperm(len(members), generator=g)[:want]])
    return torch.cat(picks)


def compare_sets(fake_feats, reference_feats, pool_feats, fake_labels: torch.Tensor | None = None,
                 pool_labels: torch.Tensor | None = None, n_eval: int | None = None, max_reference: int | None = 10_000,
                 floor_resamples: int = 5, k: int = 3, k_density: int = 5, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, max_chunks: int = 8, seed: int = 0) -> dict:
    """The set metrics of generated features against a reference, each beside its floor, in bounded memory.

    * Reference: ``reference_feats`` (R, F), subsampled (fixed seed) to ``max_reference`` rows (None: all).
    * Generated: chunks of ``n_eval`` rows of ``fake_feats`` (M, F), up to ``max_chunks``, metrics averaged.
    * Floor: ``floor_resamples`` real sets of ``n_eval`` rows drawn without replacement from ``pool_feats``
      (P, F), real data the feature extractor never trained on; with ``fake_labels`` and ``pool_labels``
      each floor set has exactly the class counts of the first generated chunk. Reported as mean and sd.

    Args:
        n_eval: rows per set; default min(M, P // 2, R) (half the pool, so that resamples differ).
        k, k_density: neighbourhood sizes of precision / recall and density / coverage.
        kid_subsets, kid_subset_size: KID's subsets (``kid``).

    Returns:
        For each of frechet_distance, kid, precision, recall, density, coverage: ``name`` (generated, mean over
        chunks), ``name_real`` (floor mean), ``name_real_sd`` (floor sd over resamples) and ``name_verdict``
        (``floor_verdict``); ``kid_sd`` is the sd over KID subsets of the generated set. Plus ``n_eval``,
        ``chunks``, ``n_reference`` (rows used), ``n_reference_available``, ``n_floor_pool``,
        ``floor_resamples``, ``k``, ``k_density``.
    """
    fake = torch.from_numpy(_as_matrix(fake_feats, "fake_feats", 2))
    ref_all = torch.from_numpy(_as_matrix(reference_feats, "reference_feats", 2))
    pool = torch.from_numpy(_as_matrix(pool_feats, "pool_feats", 2))
    if not fake.shape[1] == ref_all.shape[1] == pool.shape[1]:
        raise ValueError(f"feature sizes differ: fake {fake.shape[1]}, reference {ref_all.shape[1]}, pool "
                         f"{pool.shape[1]}")
    check_int("floor_resamples", floor_resamples, minimum=2)
    check_int("max_chunks", max_chunks)
    check_int("max_reference", max_reference, allow_none=True)
    g = torch.Generator().manual_seed(check_seed(seed))
    ref = ref_all
    if max_reference is not None and len(ref_all) > max_reference:
        ref = ref_all[torch.randperm(len(ref_all), generator=torch.Generator().manual_seed(0))[:max_reference]]
    n = check_int("n_eval", n_eval) if n_eval is not None else min(len(fake), len(pool) // 2, len(ref))
    if n > len(fake) or n > len(pool):
        raise ValueError(f"n_eval={n} needs as many generated samples ({len(fake)} given) and pool images "
                         f"({len(pool)}); generate more or pass a smaller n_eval")
    for kk in (k, k_density):
        _check_k(kk, min(n, len(ref)), "each compared set")
    radii = {kk: _knn_radii(ref, kk) for kk in {k, k_density}}
    chunks = max(1, min(max_chunks, len(fake) // n))
    run = lambda x, s: _set_metrics(x, ref, radii, k, k_density, kid_subsets, kid_subset_size, s)  # noqa: E731
    gen = [run(fake[i * n:(i + 1) * n], seed + i) for i in range(chunks)]
    fl = [run(pool[_floor_indices(n, pool_labels, fake_labels, g, len(pool))], seed + 1000 + r)
          for r in range(floor_resamples)]
    out: dict = {}
    for key in ("frechet_distance", "kid", "precision", "recall", "density", "coverage"):
        value = float(np.mean([c[key] for c in gen]))
        real = np.array([c[key] for c in fl])
        out[key] = value
        if key == "kid":
            out["kid_sd"] = float(np.mean([c["kid_sd"] for c in gen]))
        out[f"{key}_real"], out[f"{key}_real_sd"] = float(real.mean()), float(real.std(ddof=1))
        direction = None if key in _TWO_SIDED else key in _HIGHER_IS_BETTER
        out[f"{key}_verdict"] = floor_verdict(value, out[f"{key}_real"], out[f"{key}_real_sd"], direction)
    out.update(n_eval=n, chunks=chunks, n_reference=len(ref), n_reference_available=len(ref_all),
               n_floor_pool=len(pool), floor_resamples=floor_resamples, k=k, k_density=k_density,
               kid_subsets=kid_subsets, kid_subset_size=min(kid_subset_size, n, len(ref)))
    return out


# ----------------------------------------------------------------------------- everything for images

class _Reference(dict):
    """``real_reference``'s dict; ``train_feats`` / ``train_probs`` are computed on first use (60,000 images)."""

    def __missing__(self, key):
        if key in ("train_feats", "train_probs"):
            self["train_feats"], self["train_probs"] = self["classifier"].embed(self["train_x"])
            return self[key]
        raise KeyError(key)


_REFERENCE: dict[tuple, _Reference] = {}


def real_reference(data: str = "digits", image_size: int = 16, seed: int = 0) -> dict:
    """The classifier and the real data it measures with, cached per process.

    Returns a dict of (CPU, float32 images in [-1, 1]):

    * ``classifier``: ``get_classifier(data, image_size, seed)``, trained on the train split minus the pool;
    * ``train_x`` (N, C, S, S): the whole train split (what a GAN trains on; memorisation looks here);
    * ``test_x``, ``test_y``, ``test_feats`` (H, F), ``test_probs`` (H, K): the held-out test split, the
      reference of the set metrics;
    * ``pool_x``, ``pool_y``, ``pool_feats``, ``pool_probs``: the floor pool, training images the classifier
      never trained on (``classifier.floor_pool``);
    * ``train_feats``, ``train_probs``: features of the whole train split, computed when first asked for.
    """
    key = (data, image_size, seed)
    if key not in _REFERENCE:
        from . import data as data_mod
        from .classifier import floor_pool, get_classifier

        clf = get_classifier(data, image_size=image_size, seed=seed)
        train = data_mod.load(data, image_size=image_size, split="train")
        test = data_mod.load(data, image_size=image_size, split="test")
        _, pool_idx = floor_pool(data, len(train))
        train_x = train.get(torch.arange(len(train)))[0].cpu()
        test_x = test.get(torch.arange(len(test)))[0].cpu()
        test_f, test_p = clf.embed(test_x)
        pool_x = train_x[pool_idx]
        pool_f, pool_p = clf.embed(pool_x)
        _REFERENCE[key] = _Reference(classifier=clf, train_x=train_x, test_x=test_x, test_y=test.y.cpu(),
                                     test_feats=test_f, test_probs=test_p, pool_x=pool_x,
                                     pool_y=train.y.cpu()[pool_idx], pool_feats=pool_f, pool_probs=pool_p)
    return _REFERENCE[key]


def _class_metrics(probs: torch.Tensor, num_classes: int) -> dict:
    cov = class_coverage(probs, num_classes)
    return {"classifier_score": classifier_score(probs), "classes_present": cov["classes_present"],
            "min_class_share": cov["min_class_share"], "max_class_share": cov["max_class_share"],
            "tv_from_uniform": cov["tv_from_uniform"], "kl_from_uniform": cov["kl_from_uniform"]}


def _memorisation_metrics(x: torch.Tensor, train_x: torch.Tensor, heldout: torch.Tensor) -> dict:
    mem = memorisation(x, train_x, heldout)
    return {"memorisation_median_ratio": mem["median_ratio"], "memorisation_share_closer": mem["share_closer"],
            "memorisation_share_exact": mem["share_exact"]}


def evaluate_images(fake: torch.Tensor, data: str = "digits", image_size: int = 16, k: int = 3, seed: int = 0,
                    k_density: int = 5, max_chunks: int = 8, labels: torch.Tensor | None = None,
                    n_eval: int | None = None, floor_resamples: int = 5, max_reference: int | None = 10_000,
                    kid_subsets: int = 100, kid_subset_size: int = 1000, max_memorisation: int = 1000,
                    standard_fid: bool = True) -> dict:
    """Every image metric of a generated set, each beside the floor of real data.

    The classifier (``course_lib.classifier``) is trained on the train split only. The reference is the
    held-out test split (at most ``max_reference`` images). The floor is what real images score: sets of the
    same size (and, with ``labels``, the same class counts) drawn from the floor pool, training images the
    classifier never saw, measured against the same reference, ``floor_resamples`` times (mean and sd). A
    generated value within the floor's noise gets the verdict "within noise of real data"
    (``name_verdict``), never "better than real". Memory is bounded: chunked distances, a reference of at most
    10,000, memorisation on at most ``max_memorisation`` samples.

    Args:
        fake: (N, C, S, S) generated images in [-1, 1] (N > k; ``IMAGE_EVAL_SAMPLES`` is what the training
            summary uses).
        data, image_size, seed: the dataset and the classifier (``course_lib.classifier.get_classifier``).
        labels: (N,) labels a conditional generator was given (draw them with ``summary_request``); the
            floor then has the same class counts. None: uniform floor subsets.
        n_eval, max_chunks, floor_resamples, max_reference, kid_subsets, kid_subset_size, k, k_density: see
            ``compare_sets``.
        standard_fid: also report standard Inception FID / KID when ``COURSE_FID_WEIGHTS`` names the weights
            file (``course_lib.fid``); otherwise one line in ``standard_fid`` says why not.

    Returns:
        A flat dict: ``compare_sets``'s keys; for the per-sample metrics (classifier_score, classes_present,
        min/max_class_share, tv/kl_from_uniform, memorisation_*) ``name`` and ``name_real`` (a real set of the
        same size); ``classifier_accuracy``, ``n_generated``, ``reference`` (a sentence with its size) and
        ``class_labels``. Lower is better for ``frechet_distance``, ``kid``, ``tv_from_uniform``,
        ``kl_from_uniform``; higher for ``precision``, ``recall``, ``coverage``, ``classifier_score``;
        ``density`` is best near its floor; ``memorisation_median_ratio`` well below 1 or
        ``memorisation_share_closer`` well above 0.01 means copying.
    """
    if not isinstance(fake, torch.Tensor) or fake.dim() != 4:
        raise ValueError(f"fake must be a (N, C, S, S) image tensor, got {tuple(getattr(fake, 'shape', ()))}")
    if tuple(fake.shape[2:]) != (image_size, image_size):
        raise ValueError(f"fake images are {tuple(fake.shape[2:])} but image_size={image_size}; pass the size "
                         f"the generator was trained at")
    fake = fake.detach().to("cpu", torch.float32)
    if not torch.isfinite(fake).all():
        raise ValueError("fake images contain NaN or infinite values; the generator diverged")
    if len(fake) <= max(k, k_density, 1):
        raise ValueError(f"{len(fake)} generated images are too few for k={k}; generate at least a few hundred")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (len(fake),)):
        raise ValueError(f"labels must be a ({len(fake)},) tensor, one per generated image, got "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    ref = real_reference(data, image_size, seed)
    clf = ref["classifier"]
    if fake.shape[1] != clf.channels:
        raise ValueError(f"fake images have {fake.shape[1]} channels, {data} has {clf.channels}")
    feats, probs = clf.embed(fake)
    out: dict = {"data": data, "image_size": image_size, "classifier_accuracy": clf.accuracy,
                 "n_generated": len(fake)}
    out.update(compare_sets(feats, ref["test_feats"], ref["pool_feats"], labels, ref["pool_y"], n_eval,
                            max_reference, floor_resamples, k, k_density, kid_subsets, kid_subset_size, max_chunks,
                            seed))
    out["reference"] = (f"{out['n_reference']} of the {out['n_reference_available']} held-out test images; floor: "
                        f"{floor_resamples} sets of {out['n_eval']} real training images the classifier never saw")
    out["class_labels"] = "given (floor with the same class counts)" if labels is not None else "not given"
    m = min(len(fake), len(ref["pool_x"]))
    real_idx = torch.randperm(len(ref["pool_x"]), generator=torch.Generator().manual_seed(seed))[:m]
    gen_stats = _class_metrics(probs, clf.num_classes)
    real_stats = _class_metrics(ref["pool_probs"][real_idx], clf.num_classes)
    half = len(ref["test_x"]) // 2  # real memorisation: one half of the test split against the other
    q = min(max_memorisation, half)
    heldout = ref["test_x"][half:half + q]
    gen_stats.update(_memorisation_metrics(fake[:max_memorisation], ref["train_x"], heldout))
    real_stats.update(_memorisation_metrics(ref["test_x"][:q], ref["train_x"], heldout))
    for key, value in gen_stats.items():
        out[key], out[f"{key}_real"] = value, real_stats[key]
    if standard_fid:
        from . import fid

        out.update(fid.standard_metrics(fake, ref["test_x"]))
    return out


# ----------------------------------------------------------------------------- training summary

def _describe(dataset) -> tuple[str, str, object]:
    """(name, kind, Dataset or None) of a Dataset or a dataset name."""
    from . import data as data_mod

    if isinstance(dataset, data_mod.Dataset):
        return dataset.name, dataset.kind, dataset
    if isinstance(dataset, str) and dataset.lower() in data_mod.DATASETS:
        name = dataset.lower()
        return name, "points" if name in data_mod.POINT_DATASETS else "images", None
    raise ValueError(f"dataset must be a course_lib.data.Dataset or one of the names "
                     f"{', '.join(data_mod.DATASETS)}, got {dataset!r}")


def _class_frequencies(name: str, ds, num_classes: int) -> torch.Tensor:
    """(num_classes,) class frequencies of the test split (the reference), else of the dataset's labels."""
    from . import data as data_mod

    if name in IMAGE_EVAL_SAMPLES:
        y = data_mod.load(name, image_size=8, split="test").y
    elif ds is not None and ds.y is not None:
        y = ds.y
    else:
        return torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
    y = y.cpu().long()
    if len(y) and int(y.max()) >= num_classes:
        raise ValueError(f"num_classes={num_classes} but the data's labels go up to {int(y.max())}")
    counts = torch.bincount(y, minlength=num_classes).double()
    return counts / counts.sum()


def summary_request(dataset, num_classes: int | None = None, seed: int = 0, n: int | None = None
                    ) -> tuple[int, torch.Tensor | None]:
    """What to generate for a training run's final summary (``summarize``).

    Args:
        dataset: the ``Dataset`` trained on (or its name).
        num_classes: the conditional generator's number of classes, or None for an unconditional one.
        seed: seed of the label draw.
        n: how many samples to ask for instead of the default size (``evaluate --n``).

    Returns:
        ``(n, labels)``: how many samples to generate (2,500 points for a mixture; ``IMAGE_EVAL_SAMPLES`` images
        for digits / MNIST / Fashion-MNIST; 0 when no metric applies: generate nothing and pass ``None``) and,
        for a conditional generator, (n,) int64 labels drawn multinomially with the test split's class
        frequencies (like the real data, not a round-robin), else None.
    """
    name, kind, ds = _describe(dataset)
    check_seed(seed)
    check_int("num_classes", num_classes, minimum=2, allow_none=True)
    default = (2500 if (ds is None or ds.centres is not None) else 0) if kind == "points" \
        else IMAGE_EVAL_SAMPLES.get(name, 0)
    n = default if (n is None or default == 0) else check_int("n", n)
    if num_classes is None or n == 0:
        return n, None
    p = _class_frequencies(name, ds, num_classes)
    labels = torch.multinomial(p, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    return n, labels


def summarize(samples: torch.Tensor | None, dataset, labels: torch.Tensor | None = None) -> dict:
    """Final metrics of a training run for ``metrics.json``, from samples drawn per ``summary_request``.

    Mixtures: ``mode_metrics`` (modes, high_quality, counts). Digits / MNIST / Fashion-MNIST:
    ``evaluate_images`` with ``labels`` (the conditional generator's labels, or None); an error there is
    reported under ``image_metrics_error`` rather than raised, so a finished run never loses its summary.
    Anything else: ``{"metrics_note": why nothing was measured}``.

    Args:
        samples: (n, D) points or (n, C, S, S) images in [-1, 1], or None when ``summary_request`` said 0.
        dataset: the ``Dataset`` trained on (or its name).
    """
    from . import data as data_mod

    name, kind, ds = _describe(dataset)
    if samples is None or len(samples) == 0:
        return {"metrics_note": f"no course metric applies to the data {name!r}; nothing was measured"}
    if kind == "points":
        if ds is None:
            ds = data_mod.load(name, n=1000)
        if ds.centres is None:
            return {"metrics_note": f"the data {name!r} has no mode centres; nothing was measured"}
        out = mode_metrics(samples, ds.centres, ds.std)
        real = mode_metrics(data_mod.load(name, n=len(samples), seed=1).x, ds.centres, ds.std)  # the floor
        out.update({f"{k}_real": real[k] for k in ("modes", "high_quality")})
        return out
    if name not in IMAGE_EVAL_SAMPLES:
        return {"metrics_note": f"no course classifier for the data {name!r}; image metrics were not measured"}
    try:
        size = ds.sample_shape[-1] if ds is not None else samples.shape[-1]
        return evaluate_images(samples, data=name, image_size=size, labels=labels)
    except Exception as exc:  # metrics must never lose a finished run
        return {"image_metrics_error": f"{type(exc).__name__}: {exc}"}
