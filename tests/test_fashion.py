"""Fashion-MNIST from Debian's dataset-fashion-mnist package: the official split, read straight from the idx .gz
files, and what the metrics build on it. Runs where /usr/share/datasets/fashion-mnist exists (CI installs it in
.ci/run), skips elsewhere."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from course_lib import classifier, data, metrics

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(
    not (SYSTEM / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed in {SYSTEM} (sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def fashion():
    return data.load("fashion-mnist", split="train"), data.load("fashion-mnist", split="test")


def test_official_split_as_uint8_tensors(fashion):
    train, test = fashion
    assert train.x.shape == (60_000, 1, 32, 32) and test.x.shape == (10_000, 1, 32, 32)
    assert train.x.dtype == torch.uint8 and train.num_classes == 10 and train.kind == "images"
    assert torch.equal(torch.bincount(train.y), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(test.y), torch.full((10,), 1000))
    assert train.meta == {"image_size": 32, "split": "train", "source": str(SYSTEM)}
    x, y = train.get(torch.arange(64))
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() <= 1 and x.mean() < -0.2  # dark backgrounds
    assert len(data.load("fashion-mnist", image_size=16, split="all")) == 70_000


def test_read_without_torchvision(monkeypatch):
    monkeypatch.setattr(data, "_IDX_CACHE", {})
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any import of torchvision would fail
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert len(data.load("fashion-mnist", image_size=8, split="test")) == 10_000


def test_a_truncated_copy_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", ())
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SYSTEM / name, tmp_path / name)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(data.DatasetCorruptError, match="t10k-images-idx3-ubyte.gz") as info:
        data.load("fashion-mnist", root=tmp_path, split="test")
    assert "\n" not in str(info.value)


def test_classifier_never_trains_on_the_floor_pool_or_the_test_split(fashion, monkeypatch, tmp_path):
    train, test = fashion
    fit, pool = classifier.floor_pool("fashion-mnist", len(train))
    assert len(pool) == 10_000 and len(fit) == 50_000
    assert not set(fit.tolist()) & set(pool.tolist())
    assert torch.equal(classifier.floor_pool("fashion-mnist", len(train))[1], pool)  # fixed
    # a small training budget keeps CI short; the course's budget (3 epochs of 50,000) reaches about 0.90
    monkeypatch.setitem(classifier._BUDGET, "fashion-mnist", (1, 4000))
    clf = classifier.train_classifier("fashion-mnist", image_size=32)
    assert 0.6 < clf.accuracy < 1 and clf.data == "fashion-mnist"


def test_conditional_labels_follow_the_test_split():
    n, labels = metrics.summary_request("fashion-mnist", num_classes=10, seed=0)
    assert n == metrics.IMAGE_EVAL_SAMPLES["fashion-mnist"] == 5000
    share = torch.bincount(labels, minlength=10).double() / n
    assert (share - 0.1).abs().max() < 0.02 and len(set(torch.bincount(labels).tolist())) > 1  # multinomial


def test_ci_and_binder_install_the_package():
    assert "dataset-fashion-mnist" in (ROOT / ".ci" / "run").read_text()
    assert "dataset-fashion-mnist" in (ROOT / "apt.txt").read_text().split()
