"""Resuming and saving, end to end: a run that fell back to digits does not resume on real MNIST once
its files appear; a full disk during a resumed run keeps both the checkpoint and config.json at the old step (the
config is written only after the checkpoint); a sample batch size below one is refused; a busy folder that
already holds a run is reported as busy.

The resume rule itself (which options may change) is in test_train.py and test_cli.py; checkpoint integrity in
test_checkpoint_integrity.py; run-folder paths and the lock in test_rundir.py and test_cli_runs.py.
"""
from __future__ import annotations

import errno
import gzip
import json
import re
import struct
from pathlib import Path

import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib import data
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.cli import main
from course_lib.train import GANTrainer, generate

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY_IMAGES = ["--image-size", "8", "--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--batch-size", "16"]


def _write_mnist(folder: Path, n_train: int = 30, n_test: int = 10) -> None:
    """A small valid MNIST file set (idx format, gzip) in ``folder``: 28x28 uint8 images, labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, arr in (("images-idx3", torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)),
                          ("labels-idx1", (torch.arange(n) % 10).to(torch.uint8))):
            raw = bytes([0, 0, 8, arr.dim()]) + struct.pack(f">{arr.dim()}I", *arr.shape) + arr.numpy().tobytes()
            (folder / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw))


def test_a_fallback_run_on_digits_resumes_on_digits_after_real_mnist_appears(tmp_path, monkeypatch, capsys):
    """``--data mnist --fallback`` offline trains on digits; once MNIST's files appear, resuming that run goes on
    with digits (the data it was trained on, recorded in the checkpoint), never with MNIST, by the CLI and the
    library alike; passing MNIST explicitly is refused."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", ())
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="falling back"):
        assert main(["train", "--data", "mnist", "--fallback", "--out", str(out), "--steps", "2", *TINY_IMAGES,
                     "--quiet"]) == 0
    ckpt = out / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    assert state["config"]["data"] == "mnist" and state["data_info"]["name"] == "digits"
    capsys.readouterr()

    _write_mnist(tmp_path / "data")  # the real files appear
    assert data.load("mnist", image_size=8, split="train").name == "mnist"
    assert main(["train", "--resume", str(ckpt), "--out", str(out), "--steps", "3", "--quiet"]) == 0
    after = load_checkpoint(ckpt)
    assert after["step"] == 3 and after["data_info"]["name"] == "digits"
    assert GANTrainer.from_checkpoint(ckpt, verbose=False, steps=4).dataset.name == "digits"
    with pytest.raises(CheckpointError, match=r"trained on the data 'digits', but this dataset is 'mnist'"):
        GANTrainer.from_checkpoint(ckpt, dataset=data.load("mnist", image_size=8), verbose=False, steps=4)


@pytest.fixture
def ring_run(tmp_path):
    out = tmp_path / "base"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "5", "--batch-size", "32",
                 "--quiet"]) == 0
    return out


def test_a_full_disk_while_resuming_keeps_the_checkpoint_and_config_json_at_the_old_step(ring_run, monkeypatch,
                                                                                         capsys):
    """A full disk: one line that says so and that the previous checkpoint is kept; config.json is written
    only after the checkpoint, so it still describes the checkpoint in the folder."""
    capsys.readouterr()
    config_before = (ring_run / "config.json").read_text()
    ckpt_before = (ring_run / "checkpoint.pt").read_bytes()

    def full_disk(path, write, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod, "atomic_write", full_disk)
    assert main(["train", "--resume", str(ring_run / "checkpoint.pt"), "--out", str(ring_run), "--steps", "7",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: disk full while saving the checkpoint .*checkpoint\.pt'; the previous checkpoint "
                     r"is kept\. Free about [\d.]+ MiB", err), err
    assert len(err.strip().splitlines()) == 1 and "inline_container" not in err
    assert (ring_run / "checkpoint.pt").read_bytes() == ckpt_before
    assert (ring_run / "config.json").read_text() == config_before
    assert json.loads(config_before)["steps"] == 5


@pytest.mark.parametrize("batch_size", [0, -1])
def test_sampling_refuses_a_batch_size_below_one(ring_run, batch_size):
    trainer = GANTrainer.from_checkpoint(ring_run / "checkpoint.pt", verbose=False)
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer, got {batch_size}"):
        trainer.sample(10, batch_size=batch_size)
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer, got {batch_size}"):
        generate(trainer.G, 10, trainer.config.latent_dim, trainer.device, batch_size=batch_size)


def test_resuming_a_checkpoint_with_non_finite_weights_is_refused(ring_run, tmp_path, capsys):
    state = load_checkpoint(ring_run / "checkpoint.pt")
    state = {k: v for k, v in state.items() if k not in ("format", "version", "checksum")}
    state["D"] = {k: torch.full_like(v, float("inf")) for k, v in state["D"].items()}
    bad = ckpt_mod.save_checkpoint(state, tmp_path / "inf_d.pt")
    with pytest.raises(CheckpointError, match=r"discriminator's weights are not finite .*cannot be used for resuming"):
        GANTrainer.from_checkpoint(bad, verbose=False, steps=7)
    capsys.readouterr()
    assert main(["train", "--resume", str(bad), "--out", str(tmp_path / "r"), "--steps", "7", "--quiet"]) == 2
    assert "cannot be used for resuming" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_overwrite_deletes_the_earlier_run_only_once_the_new_run_is_valid(ring_run, tmp_path, capsys):
    """A refused --overwrite (here: a batch larger than the data) leaves the earlier run as it was."""
    before = {name: (ring_run / name).read_bytes() for name in ("checkpoint.pt", "config.json", "metrics.json")}
    assert main(["train", "--data", "digits", "--batch-size", "50000", "--out", str(ring_run), "--overwrite",
                 "--quiet"]) == 2
    assert "larger than the dataset" in capsys.readouterr().err
    assert {name: (ring_run / name).read_bytes() for name in before} == before


def test_resume_with_overwrite_into_another_runs_folder_replaces_its_files(ring_run, tmp_path):
    other = tmp_path / "other"
    assert main(["train", "--data", "grid25", "--out", str(other), "--steps", "2", "--batch-size", "32",
                 "--quiet"]) == 0
    assert main(["train", "--resume", str(ring_run / "checkpoint.pt"), "--out", str(other), "--steps", "6",
                 "--overwrite", "--quiet"]) == 0
    assert json.loads((other / "config.json").read_text())["data"] == "ring8"
    assert json.loads((other / "metrics.json").read_text())["final"]["data"] == "ring8"
    assert load_checkpoint(other / "checkpoint.pt")["step"] == 6
    # ... and resuming in place with --overwrite keeps the checkpoint it resumes
    assert main(["train", "--resume", str(other / "checkpoint.pt"), "--out", str(other), "--steps", "7",
                 "--overwrite", "--quiet"]) == 0
    assert load_checkpoint(other / "checkpoint.pt")["step"] == 7
