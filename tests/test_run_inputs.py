"""The trainer checks what it is given when it starts: the config again (it may have been changed after it was
built), the dataset's name, kind and image size against the config, labels in range, and the data finite and in
range; each refusal names the mismatch and the fix. A run on a custom dataset says on resume what it needs, a
resume whose history is out of step is refused, and a run that fell back to digits resumes on digits."""
from __future__ import annotations

import gzip
import struct

import pytest
import torch

from course_lib import data
from course_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from course_lib.config import TrainConfig
from course_lib.data import Dataset
from course_lib.train import GANTrainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = dict(steps=2, batch_size=32, g_width=16, d_width=16)
DIGITS_SMALL = dict(steps=1, batch_size=16, g_width=8, d_width=8, latent_dim=8)


def ring_config(**changes) -> TrainConfig:
    return TrainConfig.for_data("ring8", **{**SMALL, **changes})


def labelled_digits() -> Dataset:
    return data.load("digits", image_size=8)


def start(config, dataset):
    return GANTrainer(config, dataset=dataset, verbose=False)


# ----------------------------------------------------------------------------- the dataset against the config
def test_digits_at_another_size_than_the_config_are_refused():
    cfg = TrainConfig.for_data("digits", **DIGITS_SMALL)  # the recipe's 16x16
    with pytest.raises(ValueError, match=r"the dataset 'digits' holds 8x8 images but config\.image_size=16; load "
                                         r"the data at the config's size \(data\.load\('digits', image_size=16\)\) or "
                                         r"set image_size=8 in the config"):
        start(cfg, labelled_digits())


def test_a_ring8_config_given_grid25_data_is_refused(ring):
    with pytest.raises(ValueError, match=r"the dataset is 'grid25' but the config is for 'ring8' \(config\.data\); "
                                         r"build the config for this data, TrainConfig\.for_data\('grid25', \.\.\.\)"):
        start(ring_config(), data.load("grid25", n=500))


def test_images_for_the_mlp_model_are_refused():
    images = Dataset("mine", torch.zeros(64, 1, 8, 8), kind="images")
    with pytest.raises(ValueError, match=r"config\.model='mlp' trains on points, but the dataset 'mine' holds images "
                                         r"of shape \(1, 8, 8\); use model='dcgan'"):
        start(ring_config(), images)


def test_a_custom_point_dataset_trains_and_its_resume_says_what_it_needs(ring, tmp_path):
    mine = Dataset("my-points", ring.x[:500].clone())
    trainer = GANTrainer(ring_config(), dataset=mine, out_dir=tmp_path, verbose=False)
    trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["data_info"]["name"] == "my-points"
    with pytest.raises(CheckpointError, match=r"was trained on the custom dataset 'my-points' .*pass it again: "
                                              r"GANTrainer\.from_checkpoint\(path, dataset=\.\.\.\)"):
        GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", verbose=False, steps=3)
    assert GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", dataset=mine, verbose=False, steps=3).step == 2


# ----------------------------------------------------------------------------- the data, changed after loading
@pytest.mark.parametrize("damage, pattern", [
    (lambda ds: ds.y.__setitem__(0, 99), r"labels must lie in \[0, 10\) for num_classes=10, got values from 0 to 99"),
    (lambda ds: setattr(ds, "num_classes", 5), r"labels must lie in \[0, 5\) for num_classes=5"),
    (lambda ds: ds.y.fill_(-1), r"labels must lie in \[0, 10\) .*got values from -1 to -1"),
    (lambda ds: setattr(ds, "y", ds.y[:-3]), r"samples but \d+ labels .*one label per sample"),
])
def test_labels_changed_after_loading_are_refused_when_the_trainer_starts(damage, pattern):
    ds = labelled_digits()
    damage(ds)
    with pytest.raises(ValueError, match=pattern):
        start(TrainConfig.for_data("digits", **DIGITS_SMALL, image_size=8), ds)


def test_nan_in_the_data_is_named_as_such_not_blamed_on_the_learning_rate(ring):
    ds = Dataset("ring8", ring.x[:500].clone())
    ds.x[7, 1] = float("nan")
    with pytest.raises(ValueError, match=r"dataset 'ring8': x holds 1 NaN or infinite values; .*remove or replace"):
        start(ring_config(), ds)


def test_float64_data_set_after_loading_is_named():
    ds = Dataset("ring8", torch.zeros(100, 2))
    ds.x = ds.x.double()
    with pytest.raises(TypeError, match=r"x must be float32 .*got dtype torch\.float64; convert with x\.float\(\)"):
        start(ring_config(), ds)


def test_float_images_outside_minus_one_one_are_refused():
    ds = labelled_digits()
    ds.x = ds.get(torch.arange(len(ds)))[0] * 127.5 + 127.5  # [0, 255] floats
    with pytest.raises(ValueError, match=r"float images must lie in \[-1, 1\] .*got values from 0 to 255; rescale"):
        start(TrainConfig.for_data("digits", **DIGITS_SMALL, image_size=8), ds)


# ----------------------------------------------------------------------------- the config, changed after construction
@pytest.mark.parametrize("field, value, pattern", [
    ("batch_size", 0, r"batch_size must be a positive integer, got 0"),
    ("steps", "3", r"steps must be .*integer.*got '3'"),
    ("lr_d", float("inf"), r"lr_d must be a positive finite number, got inf"),
])
def test_a_config_field_changed_after_construction_is_refused_by_its_row(ring, field, value, pattern):
    cfg = ring_config()
    setattr(cfg, field, value)
    with pytest.raises((ValueError, TypeError), match=pattern):
        start(cfg, ring)


def test_a_config_changed_on_a_built_trainer_is_refused_when_it_fits(ring):
    trainer = start(ring_config(), ring)
    trainer.config.batch_size = 0
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        trainer.fit()


# ----------------------------------------------------------------------------- resuming
def test_a_checkpoint_whose_history_is_out_of_step_is_refused(ring, tmp_path):
    trainer = GANTrainer(ring_config(steps=6), dataset=ring, out_dir=tmp_path, verbose=False)
    trainer.fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["history"] = {k: v[:3] for k, v in state["history"].items()}
    save_checkpoint(state, tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match=r"history holds 3 values of d_loss but the run is at step 6"):
        GANTrainer.from_checkpoint(tmp_path / "short.pt", dataset=ring, verbose=False, steps=8)


def _idx(arr: torch.Tensor) -> bytes:
    return bytes([0, 0, 8, arr.dim()]) + struct.pack(f">{arr.dim()}I", *arr.shape) + arr.numpy().tobytes()


def test_a_run_that_fell_back_to_digits_resumes_on_digits_after_mnist_appears(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", ())
    cfg = TrainConfig.for_data("mnist", **DIGITS_SMALL, image_size=8, fallback=True)
    with pytest.warns(UserWarning, match="falling back"):
        GANTrainer(cfg, out_dir=tmp_path / "run", verbose=False).fit()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["data_info"]["name"] == "digits"
    folder = tmp_path / "data"  # now MNIST appears
    folder.mkdir()
    for split, n in (("train", 40), ("t10k", 10)):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(torch.zeros(n, 28, 28,
                                                                                              dtype=torch.uint8))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx((torch.arange(n) % 10).to(
            torch.uint8))))
    resumed = GANTrainer.from_checkpoint(tmp_path / "run" / "checkpoint.pt", verbose=False, steps=2)
    assert resumed.dataset.name == "digits"
    resumed.fit()
    assert resumed.step == 2
