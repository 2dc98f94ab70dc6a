"""Inputs that used to be refused late, with a raw error or with a misleading message, now get a clear message
before any work (or the right behaviour): changed datasets and metric arguments, too few samples to measure,
damaged or misplaced data files, run folders behind broken links, runs whose every step was skipped, doctored
data descriptions and the train command's help."""
from __future__ import annotations

import gzip
import os
import re
import struct

import numpy as np
import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib import data, report
from course_lib.checkpoint import CheckpointError
from course_lib.cli import build_parser, main
from course_lib.data import Dataset, DatasetCorruptError, DatasetUnavailableError
from course_lib.evaluation import evaluate_images
from course_lib.mixture_metrics import mode_metrics
from course_lib.rundir import RunFolder, RunFolderError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- datasets and metric arguments
def test_an_unknown_dataset_kind_is_refused():
    with pytest.raises(ValueError, match=r"unknown dataset kind 'audio'; valid choices are points, images"):
        Dataset("mine", torch.zeros(4, 2), kind="audio")


def test_mode_metrics_measures_a_numpy_array_like_a_tensor(ring):
    x = ring.x[:500]
    assert mode_metrics(x.numpy(), ring.centres, ring.std) == mode_metrics(x, ring.centres, ring.std)


@pytest.mark.parametrize("change, pattern", [({"n_std": -1}, r"n_std must be a positive number .*got -1"),
                                             ({"n_std": float("nan")}, r"n_std must be a positive number"),
                                             ({"min_count": 0}, r"min_count must be a positive integer .*got 0")])
def test_mode_metrics_refuses_arguments_that_would_count_modes_without_samples(ring, change, pattern):
    with pytest.raises(ValueError, match=pattern):
        mode_metrics(ring.x[:100], ring.centres, ring.std, **change)


def test_image_metrics_refuse_images_outside_minus_one_one_before_any_classifier():
    with pytest.raises(ValueError, match=r"fake images must lie in \[-1, 1\].*got values from 0 to 50; rescale"):
        evaluate_images(torch.linspace(0, 50, 20 * 64).reshape(20, 1, 8, 8), data="digits", image_size=8)


def test_summarize_with_no_samples_for_measurable_data_says_so_not_that_no_metric_applies(ring):
    for samples in (None, torch.zeros(0, 2)):
        with pytest.raises(ValueError, match=r"no samples to measure .* for the data 'ring8'; generate the n that "
                                             r"summary_request returns"):
            report.summarize(samples, ring)
    custom = Dataset("mine", torch.zeros(4, 2))
    assert "no course metric applies" in report.summarize(None, custom)["metrics_note"]


@pytest.mark.parametrize("checkpoint, n, pattern", [
    ("pretrained:ring8", "1", r"n=1 samples are too few to measure 'ring8': a mode counts as covered with 20 "
                              r"high-quality samples, so 8 modes need at least 160; ask for n >= 160"),
    ("pretrained:fashion-recipe", "2", r"n=2 samples are too few to measure 'fashion-mnist': .*ask for n >= 6")])
def test_evaluate_refuses_an_n_too_few_to_measure_before_sampling(checkpoint, n, pattern, tmp_path, no_sampling,
                                                                  capsys):
    assert main(["evaluate", "--checkpoint", checkpoint, "--n", n, "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert not (tmp_path / "e.json").exists()


# ----------------------------------------------------------------------------- data files
def _idx(arr: torch.Tensor) -> bytes:
    return bytes([0, 0, 8, arr.dim()]) + struct.pack(f">{arr.dim()}I", *arr.shape) + arr.numpy().tobytes()


def _write_mnist(folder, n: int = 12, images: bytes | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(
            images if images is not None else _idx(torch.full((n, 28, 28), 200, dtype=torch.uint8))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(
            (torch.arange(n) % 10).to(torch.uint8))))


def test_a_data_file_of_zero_images_is_called_damaged_not_a_numpy_buffer_error(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", ())
    _write_mnist(tmp_path / "d", images=_idx(torch.zeros(0, 28, 28, dtype=torch.uint8)))
    with pytest.raises(DatasetCorruptError, match=r"images-idx3-ubyte\.gz is damaged: it holds no images "
                                                  r"\(shape \(0, 28, 28\)\)"):
        data.load("mnist", image_size=8, root=tmp_path / "d", split="test")


def test_course_data_dir_naming_a_file_says_so(tmp_path, monkeypatch):
    (tmp_path / "datafile").write_text("x")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "datafile"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match=r"COURSE_DATA_DIR='.*datafile' is a file, not a folder; "
                                                      r"point it at the folder"):
        data.load("mnist", image_size=8)


def test_a_damaged_system_copy_is_skipped_for_an_intact_copy_in_the_data_folder(tmp_path, monkeypatch):
    _write_mnist(tmp_path / "system")
    (tmp_path / "system" / "t10k-images-idx3-ubyte.gz").write_bytes(b"broken")
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", (tmp_path / "system",))
    _write_mnist(tmp_path / "good")
    with pytest.warns(UserWarning, match=r"skipped a damaged copy of mnist .*system.*read the intact copy in "):
        ds = data.load("mnist", image_size=8, root=tmp_path / "good", split="test")
    assert len(ds) == 12 and ds.meta["source"] == str(tmp_path / "good")
    (tmp_path / "good" / "t10k-images-idx3-ubyte.gz").write_bytes(b"broken too")
    with pytest.raises(DatasetCorruptError, match=r"system.*t10k-images-idx3-ubyte\.gz is damaged"):
        data.load("mnist", image_size=8, root=tmp_path / "good", split="test")


# ----------------------------------------------------------------------------- run folders and runs
@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_run_folder_behind_a_broken_link_is_named_as_such(tmp_path, kind):
    link = tmp_path / "out"
    os.symlink(tmp_path / "missing" if kind == "dangling" else link, link)
    with pytest.raises(RunFolderError, match=r"is a symbolic link to .*, which does not exist \(or is a loop of "
                                             r"links\); create the folder it points to, remove the link"):
        with RunFolder(link):
            pass


def test_a_run_whose_every_step_was_skipped_does_not_report_success(tmp_path, capsys):
    out = tmp_path / "nan"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "4", "--lr", "1e30", "--nan-policy",
                 "skip", "--g-width", "16", "--d-width", "16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: all 4 steps were skipped: every one had a NaN or infinite loss", err), err
    assert "wrote" not in capsys.readouterr().out and not (out / "metrics.json").exists()


def test_train_help_shows_each_default_once():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "(default: the loss's) (default" not in text and "(default: None)" not in text
    assert "(default: the loss's)" in text


def test_a_data_description_that_contradicts_its_samples_is_refused_on_save_and_load(saved_runs, tmp_path):
    state = {k: v for k, v in saved_runs.state.items() if k not in ("format", "version", "checksum")}
    state["data_info"] = {**state["data_info"], "name": "digits"}  # digits are images, the shape says points
    with pytest.raises(CheckpointError, match=r"data_info\['sample_shape'\] must be \(channels, height, width\) "
                                              r"for the images of 'digits', got \[2\]"):
        ckpt_mod.save_checkpoint(state, tmp_path / "c.pt")
    state.update(format=ckpt_mod.FORMAT, version=ckpt_mod.FORMAT_VERSION)
    state["checksum"] = {"algorithm": "sha256", "digest": ckpt_mod.state_checksum(state)}
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"data_info\['sample_shape'\] must be"):
        ckpt_mod.load_checkpoint(tmp_path / "c.pt")


def test_a_numpy_number_in_a_state_is_refused_before_writing_a_file_that_could_never_load(saved_runs, tmp_path):
    state = {k: v for k, v in saved_runs.state.items() if k not in ("format", "version", "checksum")}
    state["config"] = {**state["config"], "steps": np.int64(3)}
    with pytest.raises(CheckpointError, match=r"config\['steps'\] is .*3.* of type numpy\.int64, which the "
                                              r"checkpoint loader refuses .*could never be loaded; convert it"):
        ckpt_mod.save_checkpoint(state, tmp_path / "np.pt")
    assert not (tmp_path / "np.pt").exists()
