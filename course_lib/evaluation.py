"""Evaluating generated images: every image metric beside the *floor*, what real images of the same size score.

``evaluate_images`` computes the metrics of ``course_lib.image_metrics`` against the *reference*, the held-out
test split (at most 10,000 images), and beside each the *floor*: the same metric for real images of the same
number and class mix, drawn from training images the classifier never saw (``classifier.floor_pool``), as mean
and sd over resamples. A generated value inside the floor's noise is reported as "within noise of real data"
(``floor_verdict``), never as better than real. Values are comparable only between runs measured with the same
classifier, data and sample size.

    >>> from course_lib.evaluation import evaluate_images
    >>> r = evaluate_images(fake, data="fashion-mnist", image_size=32)
    >>> r["frechet_distance"], r["frechet_distance_real"], r["frechet_distance_verdict"]
"""
from __future__ import annotations

import numpy as np
import torch

from .image_metrics import class_coverage, classifier_score, frechet_distance, kid, memorisation
# the chunked k-nearest-neighbour core of precision_recall and density_coverage, run here on shared radii
from .image_metrics import _as_matrix, _check_k, _density_coverage, _knn_radii, _precision_recall
from .utils import check_int, check_seed

__all__ = ["evaluate_images", "compare_sets", "real_reference", "floor_verdict", "IMAGE_EVAL_SAMPLES",
           "WITHIN_NOISE"]

WITHIN_NOISE = "within noise of real data"

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
    g = torch.Generator().manual_seed(check_seed("seed", seed))
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

    Returns a dict of (CPU, float32 images in [-1, 1], except ``train_x``):

    * ``classifier``: ``get_classifier(data, image_size, seed)``, trained on the train split minus the pool;
    * ``train_x`` (N, C, S, S): the whole train split (what a GAN trains on; memorisation looks here), as the
      dataset stores it: uint8 in [0, 255] for image files (61 MB for Fashion-MNIST at 32x32, not 246 MB),
      float32 in [-1, 1] otherwise. ``memorisation`` and ``Classifier.embed`` read both;
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
        # the train split stays as stored (uint8 for image files: a quarter of float32's memory)
        train_x = train.x.cpu() if train.x.dtype == torch.uint8 else train.get(torch.arange(len(train)))[0].cpu()
        test_x = test.get(torch.arange(len(test)))[0].cpu()
        test_f, test_p = clf.embed(test_x)
        pool_x = train.get(pool_idx.to(train.x.device))[0].cpu()
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
        fake: (N, C, S, S) generated images in [-1, 1] (checked; N > k and N > k_density; ``IMAGE_EVAL_SAMPLES``
            is what the training summary uses).
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
    lo, hi = float(fake.min()), float(fake.max())
    if lo < -1 - 1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"fake images must lie in [-1, 1] (the generator's tanh output, as the real images are "
                         f"scaled), got values from {lo:.4g} to {hi:.4g}; rescale them (from [0, 1]: x * 2 - 1; from "
                         "[0, 255]: x / 127.5 - 1)")
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
