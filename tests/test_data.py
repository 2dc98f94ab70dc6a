"""Datasets: shapes, ranges, mode centres, splits, offline behaviour."""
import math

import pytest
import torch

from course_lib import data


def test_ring8_geometry():
    ds = data.load("ring8")
    assert ds.x.shape == (50_000, 2) and ds.x.dtype == torch.float32 and ds.kind == "points"
    assert ds.centres.shape == (8, 2) and ds.std == 0.02
    radii = ds.centres.norm(dim=1)
    assert torch.allclose(radii, torch.full((8,), 2.0, dtype=radii.dtype), atol=1e-6)
    # 8 distinct centres: no linspace(0, 2*pi, 8) end point repeating the first one
    assert torch.cdist(ds.centres, ds.centres).add(torch.eye(8) * 10).min() > 1.5
    d = torch.cdist(ds.x.double(), ds.centres.double()).min(1).values
    assert d.max() < 0.02 * 6 and abs(d.pow(2).mean().div(2).sqrt().item() - 0.02) < 0.002


def test_grid25_geometry():
    ds = data.load("grid25", n=10_000, seed=3)
    assert ds.x.shape == (10_000, 2) and ds.centres.shape == (25, 2) and ds.std == 0.05
    assert sorted(set(ds.centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    counts = torch.bincount(ds.y, minlength=25)
    assert counts.min() > 300  # every mode is sampled


def test_mixture1d_density_integrates_to_one():
    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    assert abs(torch.trapezoid(data.mixture1d_pdf(x), x).item() - 1) < 1e-6
    ds = data.load("mixture1d", n=1000)
    assert ds.x.shape == (1000, 1) and ds.centres.shape == (2, 1)


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_digits_sizes_and_range(size):
    ds = data.load("digits", image_size=size)
    assert ds.x.shape == (1797, 1, size, size) and ds.kind == "images" and ds.num_classes == 10
    assert ds.x.min() >= -1 and ds.x.max() <= 1 and ds.x.min() == -1
    assert ds.y.dtype == torch.int64 and set(ds.y.tolist()) == set(range(10))


def test_splits_are_disjoint_and_deterministic():
    ds = data.load("digits")
    tr, te = ds.split("train"), ds.split("test")
    assert len(tr) + len(te) == len(ds) and len(te) == round(0.2 * len(ds))
    assert torch.equal(tr.x, data.load("digits", split="train").x)
    flat_tr = {tuple(r.tolist()) for r in tr.x.flatten(1)[:, ::7]}
    overlap = sum(tuple(r.tolist()) in flat_tr for r in te.x.flatten(1)[:, ::7])
    assert overlap < 5  # the bundled digits hold a handful of exact duplicates at most


def test_get_converts_uint8_to_unit_range():
    x = torch.tensor([[[[0, 255]]], [[[128, 64]]]], dtype=torch.uint8)
    ds = data.Dataset("u8", x, torch.tensor([0, 1]), "images", 2)
    out, y = ds.get(torch.tensor([0, 1]))
    assert out.dtype == torch.float32 and out.min() == -1 and out.max() == 1 and y.tolist() == [0, 1]


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="valid names are .*ring8.*digits"):
        data.load("cifar")


@pytest.mark.parametrize("size", [0, 12, 28, 128, 16.0])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="power of two"):
        data.load("digits", image_size=size)


def test_empty_dataset_refused():
    with pytest.raises(ValueError, match="empty"):
        data.Dataset("nothing", torch.zeros(0, 2))


def test_mnist_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailableError, match="COURSE_OFFLINE.*digits"):
        data.load("mnist", root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was downloaded


def test_mnist_fallback_is_announced(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.warns(UserWarning, match="falling back"):
        ds = data.load("fashion-mnist", root=tmp_path, fallback=True)
    assert ds.name == "digits" and ds.x.shape[-1] == 32 and "falling back" in ds.note
    assert "falling back" in capsys.readouterr().out


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert data.data_dir().name == "gan-course"


def test_mixture_reproducible_by_seed():
    a, b, c = data.ring8(n=100, seed=1), data.ring8(n=100, seed=1), data.ring8(n=100, seed=2)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert math.isclose(a.std, 0.02)
