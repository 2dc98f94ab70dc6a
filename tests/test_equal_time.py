"""Equal-time comparisons of image recipes: step counts from timed steps, cumulative recipes, one row each."""
from __future__ import annotations

import pytest
import torch

from course_lib import data, equal_time
from course_lib.recipes import DCGAN
from course_lib.train import GANTrainer, TrainConfig

TINY = dict(g_width=4, d_width=4, batch_size=8, image_size=32)


def _images(n: int = 64) -> data.Dataset:
    g = torch.Generator().manual_seed(0)
    return data.Dataset("fashion-mnist", torch.rand(n, 1, 32, 32, generator=g) * 2 - 1,
                        torch.arange(n) % 10, "images", 10)


def _judge(x: torch.Tensor) -> dict:
    return {"fd": float(x.mean()), "kid": 0.0, "min_class_share": 0.1}


def test_steps_in_seconds_counts_the_probe_steps_and_scales_with_the_budget():
    cfg = TrainConfig.for_data("fashion-mnist", **{**DCGAN["fashion-mnist"], **TINY, "steps": 10**6, "compile": False})
    trainer = GANTrainer(cfg, dataset=_images(), verbose=False)
    short = equal_time.steps_in_seconds(trainer, 1e-6, probe_steps=2, warmup=1)
    assert trainer.step == 3 and short == 3, "a tiny budget keeps the probe's steps, never fewer"
    long = equal_time.steps_in_seconds(trainer, 3600.0, probe_steps=2, warmup=1)
    assert long > 100 * trainer.step


def test_compare_adds_recipes_cumulatively_and_measures_each_run():
    recipes = {"DCGAN": {**DCGAN["fashion-mnist"], **TINY}, "+ hinge": {"loss": "hinge"},
               "+ spectral norm": {"spectral_norm": True}}
    rows = equal_time.compare(recipes, _images(), steps=2, judge=_judge, n_samples=16, cumulative=True,
                              verbose=False)
    assert [r["name"] for r in rows] == list(recipes)
    assert [r["config"].loss for r in rows] == ["nonsaturating", "hinge", "hinge"]
    assert [r["config"].spectral_norm for r in rows] == [False, False, True]
    assert all(r["steps"] == 2 and r["samples"].shape == (16, 1, 32, 32) for r in rows)
    assert set(equal_time.COLUMNS) <= set(rows[0])


def test_compare_wants_exactly_one_of_seconds_and_steps():
    with pytest.raises(ValueError, match="either seconds"):
        equal_time.compare({"a": {}}, _images(), judge=_judge)
    with pytest.raises(ValueError, match="positive training time"):
        equal_time.steps_in_seconds(None, 0.0)
