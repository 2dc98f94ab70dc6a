"""The GAN-versus-diffusion benchmark: budgets become step counts, and a seconds-long run of both families writes
every column of its page (the real rows take tens of CPU minutes: ``benchmarks/gan_vs_diffusion.py``)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from course_lib import data, pretrained

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("gan_vs_diffusion", ROOT / "benchmarks" / "gan_vs_diffusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_images(n: int = 32) -> data.Dataset:
    import torch

    g = torch.Generator().manual_seed(0)
    return data.Dataset("fashion-mnist", torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, torch.arange(n) % 10,
                        "images", 10)


@pytest.mark.parametrize("family", ["gan", "ddpm"])
def test_a_larger_cpu_budget_buys_proportionally_more_steps(family):
    bench = _bench()
    config = dataclasses.replace(pretrained.get(bench.FAMILIES[family]).config(), batch_size=8, steps=10**6)
    steps, per_step = bench.steps_for_budget(config, _tiny_images(), 60.0, warmup=1, probe=2)
    assert per_step > 0 and steps == max(1, int(60.0 / per_step))
    assert bench.steps_for_budget(config, _tiny_images(), 1e-9, warmup=1, probe=2)[0] == 1, "at least one step"


def test_a_smoke_run_of_both_families_fills_every_column_of_the_page(tmp_path):
    bench = _bench()
    out_json, page = tmp_path / "rows.json", tmp_path / "page.md"
    code = bench.main(["--smoke", "--budgets", "0.01", "--seeds", "0", "--jobs", "2", "--json", str(out_json),
                       "--page", str(page), "--runs", str(tmp_path / "runs")])
    assert code == 0
    rows = json.loads(out_json.read_text())
    assert set(rows) == {"gan/0.01/0", "ddpm/0.01/0"}
    gan, ddpm = rows["gan/0.01/0"], rows["ddpm/0.01/0"]
    assert set(gan["images_per_second"]) == {"1"} and set(ddpm["images_per_second"]) == {"10", "50", "1000"}
    assert ddpm["network_evaluations_per_image"] == 50 and gan["network_evaluations_per_image"] == 1
    assert "frechet_distance" in ddpm["ddim10"]
    for row in rows.values():
        assert row["steps"] >= 1 and row["train_cpu_seconds"] >= 0 and row["cpu_model"]
        assert abs(sum(row["class_shares"]) - 1) < 1e-3 and 0 <= row["min_class_share"] <= 0.1 + 1e-9
    text = page.read_text()
    assert "| 0.01 | GAN | 0 |" in text and "| 0.01 | DDPM | 0 |" in text and "## Sampling cost" in text
    assert bench.main(["--report-only", "--json", str(out_json), "--page", str(page)]) == 0
    assert page.read_text() == text, "the page is a function of the JSON"
