"""The image metrics, as formulas on features and class probabilities (and on pixels, for memorisation).

Offline (no downloaded Inception weights): the course's own small classifier (``course_lib.classifier``) gives
the features and probabilities these take.

* ``frechet_distance``: the FID formula on the classifier's features (Heusel et al. 2017);
* ``kid``: the unbiased kernel distance of Binkowski et al. 2018, mean and sd over subsets;
* ``classifier_score``: the Inception-Score formula with this classifier (Salimans et al. 2016);
* ``class_coverage``: share of classes generated and distance of the class histogram from uniform;
* ``precision_recall``: k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019);
* ``density_coverage``: (Naeem et al. 2020);
* ``memorisation``: distances of samples to their nearest training image against held-out real images'.

All pairwise distances are computed in chunks (``CHUNK_BYTES`` per block): memory stays bounded whatever the set
sizes. ``course_lib.evaluation`` measures a generated set with all of them, each beside the floor of real data.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from .utils import check_int, check_seed

__all__ = ["frechet_distance", "frechet_distance_gaussians", "kid", "classifier_score", "class_coverage",
           "precision_recall", "density_coverage", "memorisation", "CHUNK_BYTES"]

CHUNK_BYTES = 64 * 2**20  # each block of pairwise distances holds at most this many bytes


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
    rng = np.random.default_rng(check_seed("seed", seed))
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

def _flat_rows(x, name: str, min_rows: int = 1, keep_uint8: bool = False) -> torch.Tensor:
    """(N, ...) tensor / array -> (N, P) CPU tensor, checked: float32, or uint8 kept as it is with ``keep_uint8``
    (``_as_float`` reads it as [-1, 1] block by block, so a 60,000-image training set is never copied to float)."""
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
    if x.dtype == torch.uint8:  # always finite
        return x if keep_uint8 else torch.cat([_as_float(blk) for blk in x.split(_BLOCK_ROWS)])
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name} contains NaN or infinite values ({bad} of {len(x)} rows); the generator "
                         f"diverged: check the samples before measuring them")
    return x


_BLOCK_ROWS = 4096  # rows of the training set converted and compared at a time


def _as_float(rows: torch.Tensor) -> torch.Tensor:
    """A block of rows as float32; uint8 images become [-1, 1]."""
    return rows.float().div_(127.5).sub_(1.0) if rows.dtype == torch.uint8 else rows.float()


def _nearest_distance(a: torch.Tensor, b: torch.Tensor, candidates: int = 4) -> torch.Tensor:
    """(N,) Euclidean distance of each row of a (N, P) float32 to its nearest row of b (M, P), float64.

    ``b`` may be float32 or uint8 (read as [-1, 1]); it is read in blocks of ``_BLOCK_ROWS`` rows and every
    temporary holds at most a quarter of ``CHUNK_BYTES``, so memory stays bounded for any M. Candidates come from
    float32 squared distances |a|^2 + |b|^2 - 2 a.b; the ``candidates`` nearest of each row are then measured
    exactly in float64, so exact copies give exactly 0.
    """
    budget = CHUNK_BYTES // 4
    c = min(candidates, len(b))
    rows = max(1, budget // (4 * min(len(b), _BLOCK_ROWS)))
    a_sq = a.double().pow(2).sum(1).float()[:, None]
    best_d, best_i = [], []
    for start in range(0, len(b), _BLOCK_ROWS):
        blk = _as_float(b[start:start + _BLOCK_ROWS])
        blk_sq = blk.pow(2).sum(1, dtype=torch.float64).float()[None, :]
        cb = min(c, len(blk))
        top = [torch.addmm(blk_sq, a[i:i + rows], blk.T, alpha=-2).add_(a_sq[i:i + rows])
               .topk(cb, dim=1, largest=False) for i in range(0, len(a), rows)]
        best_d.append(torch.cat([t.values for t in top]))
        best_i.append(torch.cat([t.indices for t in top]) + start)
    cand_d, cand_i = torch.cat(best_d, 1), torch.cat(best_i, 1)
    idx = cand_i.gather(1, cand_d.topk(c, dim=1, largest=False).indices)  # (N, c) nearest candidates
    out = torch.empty(len(a), dtype=torch.float64)
    rows = max(1, budget // (8 * c * a.shape[1]))
    for i in range(0, len(a), rows):
        near = _as_float(b[idx[i:i + rows].reshape(-1)]).double().reshape(len(idx[i:i + rows]), c, -1)
        out[i:i + rows] = (a[i:i + rows].double()[:, None, :] - near).pow_(2).sum(-1).sqrt().min(1).values
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
    f, h = _flat_rows(fake, "fake"), _flat_rows(heldout, "heldout", 2)
    t = _flat_rows(train, "train", keep_uint8=True)
    if not (f.shape[1] == t.shape[1] == h.shape[1]):
        raise ValueError(f"fake, train and heldout must have the same size per sample, got {f.shape[1]}, "
                         f"{t.shape[1]} and {h.shape[1]} values")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    nn_f = _nearest_distance(f, t).numpy()
    nn_h = _nearest_distance(h, t).numpy()
    thr = float(np.quantile(nn_h, quantile))
    med_h = float(np.median(nn_h))
    scale = max(float(_as_float(blk).abs().max()) for blk in t.split(_BLOCK_ROWS)) or 1.0
    return {"median_nn_fake": float(np.median(nn_f)), "median_nn_heldout": med_h,
            "median_ratio": float(np.median(nn_f) / med_h) if med_h > 0 else float("nan"),
            "share_closer": float((nn_f < thr).mean()), "share_exact": float((nn_f <= 1e-6 * scale).mean()),
            "quantile": quantile}
