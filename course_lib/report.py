"""The run report: what a training run measures at its end, written to ``metrics.json`` by the command line.

    >>> from course_lib.report import summary_request, summarize
    >>> n, labels = summary_request(dataset, num_classes=None)   # how many samples to generate (and labels)
    >>> summarize(samples, dataset, labels)                      # mode metrics, or the image metrics with floors

``python -m course_lib train`` and ``evaluate`` call these two; ``course_lib.metrics`` re-exports them.
"""
from __future__ import annotations

import torch

from . import data as data_mod
from .evaluation import IMAGE_EVAL_SAMPLES, evaluate_images
from .mixture_metrics import mode_metrics
from .utils import check_int, check_seed

__all__ = ["summary_request", "summarize"]


def _describe(dataset) -> tuple[str, str, object]:
    """(name, kind, Dataset or None) of a Dataset or a dataset name."""
    if isinstance(dataset, data_mod.Dataset):
        return dataset.name, dataset.kind, dataset
    if isinstance(dataset, str) and dataset.lower() in data_mod.DATASETS:
        name = dataset.lower()
        return name, "points" if name in data_mod.POINT_DATASETS else "images", None
    raise ValueError(f"dataset must be a course_lib.data.Dataset or one of the names "
                     f"{', '.join(data_mod.DATASETS)}, got {dataset!r}")


def _class_frequencies(name: str, ds, num_classes: int) -> torch.Tensor:
    """(num_classes,) class frequencies of the test split (the reference), else of the dataset's labels."""
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


MIN_PER_MODE = 20  # mode_metrics' min_count: the high-quality samples a mode needs to count as covered
MIN_IMAGES = 6  # the image metrics' nearest neighbours (k_density = 5) need more samples than neighbours


def _check_enough(name: str, kind: str, ds, n: int) -> None:
    """Refuse ``n`` samples too few for the metrics of the data (before any is generated)."""
    if kind == "points":
        modes = len((ds if ds is not None else data_mod.load(name, n=100)).centres)
        need, why = MIN_PER_MODE * modes, (f"a mode counts as covered with {MIN_PER_MODE} high-quality samples, so "
                                           f"{modes} modes need at least {MIN_PER_MODE * modes}")
    else:
        need, why = MIN_IMAGES, "the nearest-neighbour metrics need more than 5 samples"
    if n < need:
        raise ValueError(f"n={n} samples are too few to measure {name!r}: {why}; ask for n >= {need} (evaluate "
                         f"--n; the course measures {2500 if kind == 'points' else IMAGE_EVAL_SAMPLES.get(name)})")


def summary_request(dataset, num_classes: int | None = None, seed: int = 0, n: int | None = None
                    ) -> tuple[int, torch.Tensor | None]:
    """What to generate for a training run's final summary (``summarize``).

    Args:
        dataset: the ``Dataset`` trained on (or its name).
        num_classes: the conditional generator's number of classes, or None for an unconditional one.
        seed: seed of the label draw.
        n: how many samples to ask for instead of the default size (``evaluate --n``): at least 20 per mode
            of a mixture, at least 6 images.

    Returns:
        ``(n, labels)``: how many samples to generate (2,500 points for a mixture; ``IMAGE_EVAL_SAMPLES`` images
        for digits / MNIST / Fashion-MNIST; 0 when no metric applies: generate nothing and pass ``None``) and,
        for a conditional generator, (n,) int64 labels drawn multinomially with the test split's class
        frequencies (like the real data, not a round-robin), else None.

    Raises:
        ValueError: ``n`` is too few for the metrics (the message says how many are needed).
    """
    name, kind, ds = _describe(dataset)
    check_seed("seed", seed)
    check_int("num_classes", num_classes, minimum=2, allow_none=True)
    default = (2500 if (ds is None or ds.centres is not None) else 0) if kind == "points" \
        else IMAGE_EVAL_SAMPLES.get(name, 0)
    n = default if (n is None or default == 0) else check_int("n", n)
    if n:
        _check_enough(name, kind, ds, n)
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

    Raises:
        ValueError: no samples (None or empty) for data that a course metric measures.
    """
    name, kind, ds = _describe(dataset)
    applies = name in IMAGE_EVAL_SAMPLES if kind == "images" else (ds is None or ds.centres is not None)
    if (samples is None or len(samples) == 0) and applies:
        raise ValueError(f"no samples to measure ({'None' if samples is None else '0 samples'}) for the data "
                         f"{name!r}; generate the n that summary_request returns and pass them")
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
