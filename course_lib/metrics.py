"""Metrics of sample quality.

2-D mixtures (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): a generated point is *high quality*
when it lies within 3 standard deviations of its nearest mode centre; a mode is *covered* when at least
``min_count`` high-quality points land on it (20 of 2,500 samples in the course's benchmarks).

Images, offline (no downloaded Inception weights): the course's own small classifier
(``course_lib.classifier``, trained on the dataset in seconds) gives class probabilities and penultimate
features, from which

* ``frechet_distance``: the FID formula on the classifier's features (Heusel et al. 2017);
* ``classifier_score``: the Inception-Score formula with this classifier (Salimans et al. 2016);
* ``class_coverage``: share of classes generated and distance of the class histogram from uniform;
* ``precision_recall``: k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019);
* ``density_coverage``: (Naeem et al. 2020);
* ``memorisation``: distances of samples to their nearest training image against held-out real images'.

``evaluate_images`` computes all of them and, beside each, the *real-versus-real floor*: the same metric for
the held-out test split measured against the train split, what a perfect generator would score with the same
number of samples. Values are comparable only between runs measured with the same classifier, data and size.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["mode_metrics", "summarize", "frechet_distance", "frechet_distance_gaussians", "classifier_score",
           "class_coverage", "precision_recall", "density_coverage", "memorisation", "evaluate_images",
           "real_reference"]


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


# ----------------------------------------------------------------------------- input checks

def _as_matrix(x, name: str, min_rows: int = 1) -> np.ndarray:
    """(N, F) float64 numpy array from a tensor / array, or a clear ValueError."""
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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n <= k:
        raise ValueError(f"{name} has {n} samples, too few for k={k} nearest neighbours; pass at least {k + 1} "
                         f"samples or a smaller k")


# ----------------------------------------------------------------------------- Frechet distance

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
        mu1, mu2: (F,) means. cov1, cov2: (F, F) symmetric positive semi-definite covariances.

    Returns:
        A float >= 0 (0 for identical Gaussians; tiny negative round-off is clipped to 0).
    """
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
    s1 = _sqrt_psd(cov1)
    inner = s1 @ ((cov2 + cov2.T) / 2) @ s1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)
    return max(d, 0.0)


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance (the FID formula) between two sets of features, each fitted with a Gaussian.

    Args:
        feats_a: (N, F) features of one set, feats_b: (M, F) of the other (N, M >= 2), tensors or arrays.

    Returns:
        ``frechet_distance_gaussians(mean_a, cov_a, mean_b, cov_b)``, a float >= 0. The estimate is biased
        upwards for finite N and M (two samples of one distribution do not score 0), so compare sets of
        equal sizes, or against the real-versus-real floor of ``evaluate_images``.
    """
    a, b = _as_matrix(feats_a, "feats_a", 2), _as_matrix(feats_b, "feats_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: feats_a has {a.shape[1]} columns, feats_b {b.shape[1]}")
    return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], -1),
                                      b.mean(0), np.cov(b, rowvar=False).reshape(b.shape[1], -1))


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
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
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


# ----------------------------------------------------------------------------- k-NN manifolds

def _cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances, in float64."""
    return torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """(N,) distance of each row of x to its k-th nearest other row."""
    d = _cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(real_feats, fake_feats, k: int = 3) -> dict:
    r"""Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to the point's k-th
    nearest neighbour in the same set:

    $$\mathrm{precision} = \tfrac1M\sum_j 1[\phi_j^{fake} \in \mathrm{manifold}(\Phi^{real})], \quad
      \mathrm{recall} = \tfrac1N\sum_i 1[\phi_i^{real} \in \mathrm{manifold}(\Phi^{fake})].$$

    Args:
        real_feats: (N, F), fake_feats: (M, F) features (N, M > k).
        k: neighbourhood size (3 in the paper).

    Returns:
        ``{"precision": float in [0, 1] (how many samples look real), "recall": float in [0, 1] (how much of
        the real data the samples cover), "k": k}``. Both are 1 for identical sets; for two finite samples
        of one distribution they are below 1 and depend on N, M and k.
    """
    r, f = _as_matrix(real_feats, "real_feats"), _as_matrix(fake_feats, "fake_feats")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {r.shape[1]}, fake {f.shape[1]}")
    _check_k(k, len(r), "real_feats")
    _check_k(k, len(f), "fake_feats")
    d = _cdist(f, r)  # (M, N)
    precision = (d <= _knn_radii(r, k)[None, :]).any(1).mean()
    recall = (d <= _knn_radii(f, k)[:, None]).any(0).mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}


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
    r, f = _as_matrix(real_feats, "real_feats"), _as_matrix(fake_feats, "fake_feats")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {r.shape[1]}, fake {f.shape[1]}")
    _check_k(k, len(r), "real_feats")
    inside = _cdist(f, r) <= _knn_radii(r, k)[None, :]  # (M, N)
    return {"density": float(inside.sum() / (k * len(f))), "coverage": float(inside.any(0).mean()), "k": k}


# ----------------------------------------------------------------------------- memorisation

def memorisation(fake, train, heldout, quantile: float = 0.01) -> dict:
    r"""Do samples copy the training set? Compares each sample's distance to its nearest training image with
    the same distance for held-out real images (which the generator never saw).

    Args:
        fake: (M, ...) samples, train: (N, ...) training images, heldout: (H, ...) held-out real images, all
            with the same shape per sample (flattened; pixel space or features). H >= 2.
        quantile: the "suspiciously close" threshold is this quantile of the held-out distances.

    Returns:
        ``{"median_nn_fake": median over samples of min_i ||fake_j - train_i||,
        "median_nn_heldout": the same for held-out images, "median_ratio": their ratio (about 1 for a
        generator that does not copy, well below 1 when samples are copies, above 1 for poor samples),
        "share_closer": share of samples nearer to the training set than the ``quantile`` of held-out
        distances (about ``quantile`` without copying, 1 for copies), "share_exact": share of samples within
        1e-6 (relative) of a training image, "quantile": quantile}``.
    """
    def flat(x, name, min_rows=1):
        if isinstance(x, torch.Tensor):
            x = x.detach().reshape(len(x), -1) if x.dim() > 1 else x
        else:
            x = np.asarray(x)
            x = x.reshape(len(x), -1) if x.ndim > 1 else x
        return _as_matrix(x, name, min_rows)

    f, t, h = flat(fake, "fake"), flat(train, "train"), flat(heldout, "heldout", 2)
    if not (f.shape[1] == t.shape[1] == h.shape[1]):
        raise ValueError(f"fake, train and heldout must have the same size per sample, got {f.shape[1]}, "
                         f"{t.shape[1]} and {h.shape[1]} values")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    nn_f = _cdist(f, t).min(1)
    nn_h = _cdist(h, t).min(1)
    thr = float(np.quantile(nn_h, quantile))
    med_h = float(np.median(nn_h))
    scale = float(np.abs(t).max()) or 1.0
    return {"median_nn_fake": float(np.median(nn_f)), "median_nn_heldout": med_h,
            "median_ratio": float(np.median(nn_f) / med_h) if med_h > 0 else float("nan"),
            "share_closer": float((nn_f < thr).mean()), "share_exact": float((nn_f <= 1e-6 * scale).mean()),
            "quantile": quantile}


# ----------------------------------------------------------------------------- everything for images

_REFERENCE: dict[tuple, dict] = {}


def real_reference(data: str = "digits", image_size: int = 16, seed: int = 0) -> dict:
    """The classifier and the real data it measures against, cached per process.

    Returns ``{"classifier", "train_x" (N, C, S, S), "test_x" (H, C, S, S), "train_feats" (N, F),
    "test_feats" (H, F), "test_probs" (H, C)}`` (the train / test splits of ``data.load``).
    """
    key = (data, image_size, seed)
    if key not in _REFERENCE:
        from . import data as data_mod
        from .classifier import get_classifier

        clf = get_classifier(data, image_size=image_size, seed=seed)
        train = data_mod.load(data, image_size=image_size, split="train")
        test = data_mod.load(data, image_size=image_size, split="test")
        train_x = train.get(torch.arange(len(train)))[0].cpu()
        test_x = test.get(torch.arange(len(test)))[0].cpu()
        train_f, _ = clf.embed(train_x)
        test_f, test_p = clf.embed(test_x)
        _REFERENCE[key] = {"classifier": clf, "train_x": train_x, "test_x": test_x, "train_feats": train_f,
                           "test_feats": test_f, "test_probs": test_p}
    return _REFERENCE[key]


def _set_metrics(feats: torch.Tensor, ref: dict, k: int, k_dc: int) -> dict:
    out = {"frechet_distance": frechet_distance(feats, ref["train_feats"])}
    out.update({k_: v for k_, v in precision_recall(ref["train_feats"], feats, k).items() if k_ != "k"})
    out.update({k_: v for k_, v in density_coverage(ref["train_feats"], feats, k_dc).items() if k_ != "k"})
    return out


def _sample_metrics(x: torch.Tensor, probs: torch.Tensor, ref: dict, num_classes: int) -> dict:
    cov = class_coverage(probs, num_classes)
    mem = memorisation(x, ref["train_x"], ref["test_x"])
    return {"classifier_score": classifier_score(probs), "classes_present": cov["classes_present"],
            "min_class_share": cov["min_class_share"], "max_class_share": cov["max_class_share"],
            "tv_from_uniform": cov["tv_from_uniform"], "kl_from_uniform": cov["kl_from_uniform"],
            "memorisation_median_ratio": mem["median_ratio"], "memorisation_share_closer": mem["share_closer"],
            "memorisation_share_exact": mem["share_exact"]}


def evaluate_images(fake: torch.Tensor, data: str = "digits", image_size: int = 16, k: int = 3, seed: int = 0,
                    k_density: int = 5, max_chunks: int = 8) -> dict:
    """Every image metric of a generated set, each beside its real-versus-real floor.

    Reference: the train split of ``data`` (what the GAN trained on). Floor: the held-out test split (H
    images) measured against the train split in the same way, the score of a perfect generator. The
    set-based metrics (Frechet distance, precision/recall, density/coverage) depend on the number of
    samples, so the generated set is measured in chunks of H samples (the floor's size) and averaged over up
    to ``max_chunks`` chunks; the per-sample metrics (classifier score, class coverage, memorisation) use
    all N samples.

    Args:
        fake: (N, C, S, S) generated images in [-1, 1] (N >= k + 1; at least H = 360 for digits gives
            metrics exactly comparable to the floor).
        data, image_size, seed: the dataset and the classifier (``course_lib.classifier.get_classifier``).
        k: neighbourhood size of precision / recall; k_density: of density / coverage.

    Returns:
        A flat dict: for each metric ``name`` both ``name`` (generated) and ``name_real`` (floor), plus
        ``classifier_accuracy``, ``k``, ``k_density``, ``n_generated``, ``n_eval`` (samples per chunk) and
        ``chunks``. Lower is better for ``frechet_distance``, ``tv_from_uniform`` and ``kl_from_uniform``;
        higher for ``precision``, ``recall``, ``coverage``, ``classifier_score``; ``density`` is best near its
        floor; ``memorisation_median_ratio`` well below 1 or ``memorisation_share_closer`` well above 0.01
        means copying.
    """
    if not isinstance(fake, torch.Tensor) or fake.dim() != 4:
        raise ValueError(f"fake must be a (N, C, S, S) image tensor, got {tuple(getattr(fake, 'shape', ()))}")
    if tuple(fake.shape[2:]) != (image_size, image_size):
        raise ValueError(f"fake images are {tuple(fake.shape[2:])} but image_size={image_size}; pass the size "
                         f"the generator was trained at")
    fake = fake.detach().to("cpu", torch.float32)
    if not torch.isfinite(fake).all():
        raise ValueError("fake images contain NaN or infinite values; the generator diverged")
    if len(fake) <= max(k, 1):
        raise ValueError(f"{len(fake)} generated images are too few for k={k}; generate at least a few hundred")
    ref = real_reference(data, image_size, seed)
    clf = ref["classifier"]
    if fake.shape[1] != clf.channels:
        raise ValueError(f"fake images have {fake.shape[1]} channels, {data} has {clf.channels}")
    feats, probs = clf.embed(fake)
    n_test = len(ref["test_feats"])
    m = min(len(fake), n_test)
    chunks = max(1, min(max_chunks, len(fake) // m))
    per_chunk = [_set_metrics(feats[i * m:(i + 1) * m], ref, k, k_density) for i in range(chunks)]
    gen = {key: float(np.mean([c[key] for c in per_chunk])) for key in per_chunk[0]}
    real = _set_metrics(ref["test_feats"][:m], ref, k, k_density)
    gen.update(_sample_metrics(fake, probs, ref, clf.num_classes))
    real.update(_sample_metrics(ref["test_x"], ref["test_probs"], ref, clf.num_classes))
    out: dict = {"data": data, "image_size": image_size, "classifier_accuracy": clf.accuracy, "k": k,
                 "k_density": k_density, "n_generated": len(fake), "n_eval": m, "chunks": chunks}
    for key, value in gen.items():
        out[key] = value
        out[f"{key}_real"] = real[key]
    return out


def summarize(trainer, n: int = 2500, n_images: int = 1440) -> dict:
    """Final metrics of a trained ``GANTrainer`` for ``metrics.json``.

    2-D mixtures: ``mode_metrics`` of ``n`` samples. Image datasets with a course classifier (digits, MNIST,
    Fashion-MNIST): ``evaluate_images`` of ``n_images`` samples (a few seconds; the first call in a process
    may train the classifier). Always: the last losses.
    """
    out: dict = {}
    ds = trainer.dataset
    if ds.centres is not None and ds.sample_shape == (2,):
        out.update(mode_metrics(trainer.sample(n), ds.centres, ds.std))
    elif ds.kind == "images" and ds.name in ("digits", "mnist", "fashion-mnist") and ds.num_classes:
        try:
            out.update(evaluate_images(trainer.sample(n_images), data=ds.name, image_size=ds.sample_shape[-1],
                                       seed=0))
        except Exception as exc:  # metrics must never lose a finished run
            out["image_metrics_error"] = f"{type(exc).__name__}: {exc}"
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        if trainer.history.get(k):
            out[f"final_{k}"] = trainer.history[k][-1]
    return out
