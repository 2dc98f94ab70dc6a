"""Image GAN recipes compared at equal training time, each measured the same way.

Two recipes given the same number of generator steps are not given the same compute: a spectrally normalised
discriminator, an R1 penalty or a smaller batch changes the cost of a step. Here every recipe gets the same
seconds: a fresh trainer times a few of its own steps, the step count that fits in the budget follows, and the
run goes on to that count. Then its samples are measured with the course's classifier against held-out real images
(Frechet distance and KID in the classifier's features, and the share of each class).

    >>> from course_lib import equal_time
    >>> recipes = {"DCGAN": DCGAN["fashion-mnist"], "+ hinge loss": {"loss": "hinge"}}
    >>> rows = equal_time.compare(recipes, dataset, seconds=60, cumulative=True)   # doctest: +SKIP
    >>> print(experiments.format_table(rows, columns=equal_time.COLUMNS))             # doctest: +SKIP

Every run is an ordinary ``GANTrainer`` run (the course's one training loop).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import torch

from . import data as data_mod
from .image_metrics import class_coverage, frechet_distance, kid
from .timing import measure_throughput
from .train import GANTrainer, TrainConfig

__all__ = ["COLUMNS", "steps_in_seconds", "classifier_judge", "compare"]

COLUMNS = ("name", "steps", "seconds", "fd", "kid", "min_class_share")


def steps_in_seconds(trainer: GANTrainer, seconds: float, probe_steps: int = 10, warmup: int = 3) -> int:
    """How many generator steps of ``trainer`` fit in ``seconds`` of training, from ``warmup`` untimed and
    ``probe_steps`` timed steps of its own (these train it: ``trainer.step`` grows by their sum). At least the
    steps already done, so that the result is a total count for ``trainer.fit``'s target."""
    if not seconds > 0:
        raise ValueError(f"seconds must be a positive training time, got {seconds!r}")
    timed = measure_throughput(trainer, steps=probe_steps, warmup=warmup)
    per_step = timed["seconds"] / probe_steps
    return max(trainer.step, int(seconds / per_step))


def classifier_judge(data: str = "fashion-mnist", image_size: int = 32, n_reference: int = 2000,
                     seed: int = 0) -> Callable[[torch.Tensor], dict[str, float]]:
    """A function that measures generated images (N, 1, S, S) in [-1, 1] with the course's classifier:
    ``{"fd": Frechet distance, "kid": KID (unbiased: about 0, or below, for real images), "min_class_share":
    smallest class share in [0, 1], "classes_present": share of the classes seen, in [0, 1]}`` against
    ``n_reference`` held-out test images. Lower FD / KID is better; 1 / num_classes is the best smallest share.
    The returned function's ``reference`` attribute is ``evaluation.real_reference(data, image_size, seed)``."""
    from .evaluation import real_reference

    ref = real_reference(data, image_size, seed)
    clf, ref_feats = ref["classifier"], ref["test_feats"][:n_reference]

    def judge(x: torch.Tensor) -> dict[str, float]:
        feats, probs = clf.embed(x, batch_size=500)
        cov = class_coverage(probs, clf.num_classes)
        return {"fd": frechet_distance(feats, ref_feats),
                "kid": kid(feats, ref_feats, subsets=10, subset_size=min(500, len(feats)))["kid"],
                "min_class_share": cov["min_class_share"], "classes_present": cov["classes_present"]}

    judge.reference = ref  # the real images and features it measures against, for floors
    return judge


def compare(recipes: Mapping[str, Mapping[str, Any]], dataset: data_mod.Dataset, seconds: float | None = None,
            steps: int | None = None, judge: Callable[[torch.Tensor], dict] | None = None, n_samples: int = 1000,
            data: str = "fashion-mnist", cumulative: bool = False, seed: int = 0,
            verbose: bool = True) -> list[dict[str, Any]]:
    """Train every recipe for the same ``seconds`` (or, with ``steps``, the same generator steps) and measure it.

    Args:
        recipes: ``{name: TrainConfig changes}`` applied to ``TrainConfig.for_data(data)``; with ``cumulative``
            each recipe's changes add to the ones before (a ladder: DCGAN, + hinge, + spectral norm, ...).
        dataset: the training images. seconds: training time per recipe (its step count from timed steps,
            ``steps_in_seconds``); steps: a fixed step count instead (the automatic tests). One of the two.
        judge: maps (n_samples, C, S, S) images in [-1, 1] to a dict of metrics (default ``classifier_judge``).
        n_samples: images drawn from each trained generator (its EMA copy when the recipe keeps one).
        seed: the seed of every run.

    Returns:
        One dict per recipe: ``name``, ``steps``, ``seconds`` (measured training time), the judge's metrics,
        ``config`` and ``samples`` (the first 64 images, for a figure).
    """
    if (seconds is None) == (steps is None):
        raise ValueError("give either seconds (equal training time) or steps (equal step count), not both")
    judge = judge or classifier_judge(data, dataset.sample_shape[-1], seed=seed)
    rows, changes = [], {}
    for name, recipe in recipes.items():
        changes = {**changes, **recipe} if cumulative else dict(recipe)
        cfg = TrainConfig.for_data(data, **{**changes, "seed": seed, "steps": steps or 10**9, "compile": False})
        trainer = GANTrainer(cfg, dataset=dataset, verbose=False)
        t0 = time.perf_counter()
        target = steps if steps is not None else steps_in_seconds(trainer, seconds)
        trainer.fit(steps=target - trainer.step, progress=verbose)
        took = time.perf_counter() - t0
        x = trainer.sample(n_samples)
        row = {"name": name, "steps": trainer.step, "seconds": round(took, 1), **judge(x), "config": trainer.config,
               "samples": x[:64]}
        rows.append(row)
        if verbose:
            print(f"{name}: {trainer.step} steps in {took:.0f} s, FD {row['fd']:.2f}")
    return rows
