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


def test_mnist_fallback_is_announced(tmp_path, monkeypatch, capsys, no_system_fashion):
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


# ----------------------------------------------------------------------------- idx files (MNIST, Fashion-MNIST)

import gzip  # noqa: E402
import struct  # noqa: E402


def _idx_bytes(array: torch.Tensor) -> bytes:
    """The idx encoding of a uint8 tensor: 0x00 0x00 0x08 ndim, big-endian uint32 dims, the bytes."""
    return bytes([0, 0, 8, array.dim()]) + struct.pack(f">{array.dim()}I", *array.shape) + array.numpy().tobytes()


def write_idx_set(folder, n_train=30, n_test=10, compress=True, seed=0):
    """A small valid MNIST-format file set (28x28 images, labels 0..9) in ``folder``; returns the tensors."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        y = (torch.arange(n) % 10).to(torch.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            raw = _idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if compress:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        out[split] = (x, y)
    return out


@pytest.fixture
def no_system_fashion(monkeypatch):
    """Hide the Debian package's folder, so that only the test's data folder is searched."""
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", ())


def test_read_idx_round_trip_gz_and_raw(tmp_path):
    arr = torch.randint(0, 256, (4, 5, 6), dtype=torch.uint8)
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    assert torch.equal(data.read_idx(tmp_path / "a", ndim=3), arr)
    assert torch.equal(data.read_idx(tmp_path / "a.gz", ndim=3), arr)


@pytest.mark.parametrize("damage, words", [
    (lambda raw: raw[:len(raw) // 2], "truncated"),           # cut short
    (lambda raw: b"", "empty"),                               # empty file
    (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], "idx header"),  # wrong magic (float type)
    (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "1-dimensional"),  # labels where images are expected
])
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_refuses_damaged_files_naming_them(tmp_path, damage, words, compress):
    raw = damage(_idx_bytes(torch.zeros(3, 28, 28, dtype=torch.uint8)))
    path = tmp_path / ("bad.gz" if compress else "bad")
    path.write_bytes(gzip.compress(raw) if compress and raw else raw)
    with pytest.raises(data.DatasetCorruptError, match=words) as info:
        data.read_idx(path, ndim=3)
    assert str(path) in str(info.value) and "download it again" in str(info.value)


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(torch.zeros(50, 28, 28, dtype=torch.uint8)))[:-30])
    with pytest.raises(data.DatasetCorruptError, match="decompressed") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("layout, compress", [(".", True), ("MNIST/raw", False), ("mnist", True)])
def test_mnist_loads_from_a_small_idx_set_in_the_data_folder(tmp_path, monkeypatch, layout, compress):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    written = write_idx_set(tmp_path / layout, compress=compress)
    train = data.load("mnist", root=tmp_path, split="train")
    test = data.load("mnist", root=tmp_path, split="test", image_size=16)
    assert train.x.shape == (30, 1, 32, 32) and train.x.dtype == torch.uint8 and train.num_classes == 10
    assert test.x.shape == (10, 1, 16, 16) and torch.equal(test.y, written["t10k"][1].long())
    assert train.meta["split"] == "train" and train.meta["source"] == str(tmp_path / layout)
    both = data.load("mnist", root=tmp_path)  # split="all": train then test
    assert len(both) == 40 and torch.equal(both.y[:30], written["train"][1].long())
    # 28 -> 28 is not a course size, but the values survive the resize: a constant image stays constant
    x, _ = train.get(torch.arange(3))
    assert x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1


def test_corrupt_mnist_names_the_file_and_falls_back_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    write_idx_set(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(data.DatasetCorruptError, match="train-images-idx3-ubyte.gz"):
        data.load("mnist", root=tmp_path, split="train")
    with pytest.warns(UserWarning, match="falling back"):
        ds = data.load("mnist", root=tmp_path, split="train", fallback=True)
    assert ds.name == "digits" and "train-images-idx3-ubyte.gz" in ds.note
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")  # empty file
    with pytest.raises(data.DatasetCorruptError, match="t10k-labels-idx1-ubyte.gz"):
        data.load("mnist", root=tmp_path, split="test")


def test_mismatched_image_and_label_counts_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(torch.zeros(7, dtype=torch.uint8))))
    with pytest.raises(data.DatasetCorruptError, match="10 images but .* 7 labels"):
        data.load("mnist", root=tmp_path, split="test")


def test_fashion_missing_offline_is_one_line_naming_the_apt_package(tmp_path, monkeypatch, no_system_fashion):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("fashion-mnist", root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "online" in msg and "COURSE_OFFLINE" in msg and "digits" in msg
    assert not any(tmp_path.iterdir())  # nothing was downloaded


def test_fashion_reads_the_data_folder_when_the_package_is_absent(tmp_path, monkeypatch, no_system_fashion):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    write_idx_set(tmp_path / "FashionMNIST" / "raw", compress=False)  # torchvision's unpacked layout
    ds = data.load("fashion-mnist", root=tmp_path, split="train")
    assert ds.x.shape == (30, 1, 32, 32) and ds.meta["source"].endswith("raw")
    assert data.CLASS_NAMES["fashion-mnist"][9] == "Ankle boot" == data.FASHION_CLASSES[9]


def test_system_package_folder_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    write_idx_set(tmp_path / "system", n_train=12, seed=1)
    write_idx_set(tmp_path / "folder", n_train=20, seed=2)
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "system",))
    assert len(data.load("fashion-mnist", root=tmp_path / "folder", split="train")) == 12
    assert data.idx_sources("fashion-mnist", tmp_path / "folder")[0] == tmp_path / "system"


@pytest.mark.parametrize("bad", [-1, 15])
def test_labels_outside_num_classes_are_refused_when_the_dataset_is_built(bad):
    y = torch.tensor([0, 1, bad])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\).*num_classes"):
        data.Dataset("d", torch.zeros(3, 1, 8, 8), y, "images", 10)


def test_offline_uses_the_one_switch(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "no")
    assert data.offline() is False
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="COURSE_OFFLINE"):
        data.offline()


def test_subset_is_a_fixed_draw_without_replacement_that_keeps_classes_and_refuses_too_many():
    full = data.load("digits", split="train")
    a, b = full.subset(300), full.subset(300)
    assert len(a) == 300 and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)      # the same draw every time
    assert not torch.equal(full.subset(300, seed=1).y, a.y)                      # another seed, another draw
    # without replacement, and each sample is one of the full set's: number the samples and look at the numbers
    numbered = data.Dataset("numbered", torch.arange(1000.0)[:, None])
    picked = numbered.subset(300).x[:, 0].long()
    assert len(set(picked.tolist())) == 300 and int(picked.min()) >= 0 and int(picked.max()) < 1000
    assert a.num_classes == 10 and set(a.y.tolist()) == set(range(10)) and a.meta["subset"] == 300
    assert a.sample_shape == full.sample_shape
    with pytest.raises(ValueError, match="fewer than the subset"):
        full.subset(len(full) + 1)
    with pytest.raises(ValueError, match="positive integer"):
        full.subset(0)
