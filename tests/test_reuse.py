"""``course_lib.reuse.trained_generator``: quick budget trains, else the run folder, else the shipped model, else a
short run, with one printed line and never a traceback; tiny networks on random 16x16 images."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from course_lib import data, models, reuse, train
from course_lib.recipes import DCGAN

TINY = dict(image_size=16, latent_dim=8, g_width=4, d_width=4, batch_size=16)


@pytest.fixture
def images() -> data.Dataset:
    x = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return data.Dataset("fashion-mnist", x, None, "images", None, meta={"image_size": 16})


@pytest.fixture
def saved_run(tmp_path, images):
    """A run folder as notebook 04 leaves it: ``checkpoint.pt`` of a 3-step DCGAN."""
    cfg = train.TrainConfig.for_data("fashion-mnist", **{**DCGAN["fashion-mnist"], **TINY, "steps": 3, "device": "cpu"})
    train.GANTrainer(cfg, dataset=images, out_dir=tmp_path / "run", verbose=False).fit(progress=False)
    return tmp_path / "run"


@pytest.fixture
def budget_mode(monkeypatch):
    def set_mode(mode: str) -> None:
        monkeypatch.setenv("COURSE_BUDGET", mode)
    return set_mode


@pytest.fixture
def no_pretrained(monkeypatch):
    """A ``course_lib.pretrained`` that knows no model (as when nothing is shipped)."""
    def load_pretrained(name, device):
        raise ValueError(f"unknown shipped model {name!r}; known: (none)")
    monkeypatch.setitem(sys.modules, "course_lib.pretrained", types.SimpleNamespace(load_pretrained=load_pretrained))


def _check_generator(G: torch.nn.Module, size: int = 16) -> None:
    assert not G.training
    with torch.no_grad():
        x = G(torch.randn(5, G.latent_dim))
    assert x.shape == (5, 1, size, size) and x.abs().max() <= 1


def test_the_run_folder_is_loaded_outside_the_quick_budget(saved_run, budget_mode, capsys):
    budget_mode("cpu")
    G, source = reuse.trained_generator(run_dir=saved_run, pretrained=None, device="cpu")
    _check_generator(G)
    assert "loaded notebook 04's generator" in source and "3 steps" in source
    assert capsys.readouterr().out.strip() == source


def test_the_quick_budget_trains_even_when_a_run_is_saved(saved_run, budget_mode, images, capsys):
    budget_mode("quick")
    G, source = reuse.trained_generator(run_dir=saved_run, device="cpu", steps=2, dataset=images, **TINY)
    _check_generator(G)
    assert "short DCGAN trained here (quick budget)" in source
    assert "training a short DCGAN here instead (quick budget)" in capsys.readouterr().out


def test_the_shipped_model_stands_in_for_a_missing_run(tmp_path, budget_mode, monkeypatch, capsys):
    budget_mode("cpu")
    shipped = models.build_models("dcgan", (1, 16, 16), 8, 4, 4)[0].eval()
    asked = []
    monkeypatch.setitem(sys.modules, "course_lib.pretrained", types.SimpleNamespace(
        load_pretrained=lambda name, device: asked.append(name) or shipped))
    G, source = reuse.trained_generator(run_dir=tmp_path / "none", pretrained="fashion-dcgan", device="cpu")
    assert G is shipped and asked == ["fashion-dcgan"]
    assert "shipped with the course, 'fashion-dcgan'" in capsys.readouterr().out


def test_with_neither_a_short_run_is_trained_and_announced(tmp_path, budget_mode, no_pretrained, images, capsys):
    budget_mode("cpu")
    G, source = reuse.trained_generator(run_dir=tmp_path / "none", device="cpu", steps=2, dataset=images, **TINY)
    _check_generator(G)
    out = capsys.readouterr().out
    assert f"no run in {tmp_path / 'none'}" in out and "unknown shipped model" in out
    assert out.count("\n") == 1, f"one line expected, got {out!r}"


def test_a_damaged_checkpoint_is_named_then_passed_over(saved_run, budget_mode, no_pretrained, images, capsys):
    budget_mode("cpu")
    path = saved_run / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    G, source = reuse.trained_generator(run_dir=saved_run, device="cpu", steps=2, dataset=images, **TINY)
    _check_generator(G)
    assert f"{path} cannot be read" in capsys.readouterr().out


def test_a_quick_run_saves_beside_the_real_one(budget_mode):
    budget_mode("quick")
    assert str(reuse.run_dir_for_budget("runs/04_dcgan")) == "runs/04_dcgan-quick"
    budget_mode("cpu")
    assert str(reuse.run_dir_for_budget("runs/04_dcgan")) == "runs/04_dcgan"


def test_a_run_of_other_data_is_passed_over(tmp_path, budget_mode, no_pretrained, images, capsys):
    budget_mode("cpu")
    cfg = train.TrainConfig.for_data("mnist", **{**DCGAN["fashion-mnist"], **TINY, "steps": 1, "device": "cpu"})
    as_mnist = data.Dataset("mnist", images.x, images.y, "images", images.num_classes)  # a run of other data
    train.GANTrainer(cfg, dataset=as_mnist, out_dir=tmp_path / "mnist", verbose=False).fit(progress=False)
    reuse.trained_generator(run_dir=tmp_path / "mnist", device="cpu", steps=2, dataset=images, **TINY)
    assert "holds a 'mnist' run, not 'fashion-mnist'" in capsys.readouterr().out


def test_data_without_dcgan_settings_is_named():
    with pytest.raises(ValueError, match="no DCGAN settings for 'ring8'"):
        reuse.short_run("ring8", steps=1)
