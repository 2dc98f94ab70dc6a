"""course_lib.detector: real-versus-generated detector and its split."""
import pytest
import torch

from course_lib import detector


def _images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=g) * 2 - 1 + shift).clamp(-1, 1)


def test_detector_shapes():
    d = detector.Detector(channels=3)
    assert d(torch.zeros(5, 3, 16, 16)).shape == (5,)
    with pytest.raises(ValueError, match="expects"):
        d(torch.zeros(5, 1, 16, 16))


def test_split_is_balanced_stratified_and_disjoint():
    real = torch.arange(100.0).view(100, 1, 1, 1).expand(100, 1, 4, 4).contiguous() / 1000
    fake = -torch.arange(1.0, 61.0).view(60, 1, 1, 1).expand(60, 1, 4, 4).contiguous() / 1000
    s = detector.split_real_fake(real, fake, test_fraction=0.25, seed=3)
    assert len(s["test_x"]) == 2 * 15 and len(s["train_x"]) == 2 * 45
    for part in ("train", "test"):
        y = s[f"{part}_y"]
        assert y.sum() * 2 == len(y)  # half generated
        ids = s[f"{part}_x"][:, 0, 0, 0]
        assert torch.equal(ids < 0, y == 1)  # labels follow the images
    train_ids = set(s["train_x"][:, 0, 0, 0].tolist())
    test_ids = set(s["test_x"][:, 0, 0, 0].tolist())
    assert not train_ids & test_ids
    again = detector.split_real_fake(real, fake, test_fraction=0.25, seed=3)
    assert torch.equal(again["test_x"], s["test_x"])


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match="data's size"):
        detector.split_real_fake(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 4, 4))
    with pytest.raises(ValueError, match="test_fraction"):
        detector.split_real_fake(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8), test_fraction=1.5)
    with pytest.raises(ValueError, match="image tensor"):
        detector.split_real_fake(torch.zeros(4, 64), torch.zeros(4, 64))
    with pytest.raises(TypeError, match="float"):
        detector.split_real_fake(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, 1, 8, 8))


def test_detector_finds_an_obvious_difference_and_not_a_missing_one():
    real = _images(300, 0)
    easy = detector.detect(real, _images(300, 1, shift=0.8), epochs=5)
    assert easy["accuracy"] > 0.95 and easy["n_test"] == 180 and easy["n_train"] == 420
    same = detector.detect(real, _images(300, 2), epochs=5)
    assert 0.35 < same["accuracy"] < 0.65  # two samples of one distribution: chance


def test_train_detector_checks_labels():
    x = _images(10, 0)
    with pytest.raises(ValueError, match="0 \\(real\\) and 1"):
        detector.train_detector(x, torch.full((10,), 2.0))
    with pytest.raises(ValueError, match="shape"):
        detector.train_detector(x, torch.zeros(9))
