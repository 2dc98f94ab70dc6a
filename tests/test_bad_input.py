"""Bad input is refused with a message that names the problem (and, where there is one, the fix): datasets,
configurations, devices, models, sampling, losses, checkpoint files and the command line, in one table.

The cases where a run could give wrong results or lose work (a resume that changes what defines the run, a
damaged or doctored checkpoint, NaN weights, a folder that holds a run, string booleans) have rows here too, so
that the table is the one place that shows them all. Their deeper tests (doctored checkpoint fields, the
kill -9 fault injection, the lock, full disks, umask) are in test_checkpoint_integrity.py, test_rundir.py,
test_cli_runs.py, test_resume_rules.py and test_device.py; files that would run code are in
test_untrusted_checkpoints.py.
"""
from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib import data, losses, metrics
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.cli import main
from course_lib.data import Dataset
from course_lib.device import DeviceError, get_device, seed_everything
from course_lib.sampling import load_generator
from course_lib.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from course_lib.train import GANTrainer, TrainConfig, generate

CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _three_channel_digits() -> Dataset:
    d = data.load("digits", image_size=8)
    return Dataset("digits", d.x.repeat(1, 3, 1, 1), d.y, "images", 10)


def _trainer_with_other_widths(c):
    G, D = MLPGenerator(8, 2, hidden=64), MLPDiscriminator(2, hidden=64)
    GANTrainer(c.ring_config(steps=2), dataset=c.ring, G=G, D=D, verbose=False).load_state_dict(c.state)


def _one_byte_changed(c):
    """A copy of the ring8 checkpoint with one byte (a third of the way in) changed."""
    path = c.root / "one_byte.pt"
    if not path.exists():
        raw = bytearray(c.ring_ckpt.read_bytes())
        raw[len(raw) // 3] ^= 0x01
        path.write_bytes(bytes(raw))
    return path


def _resaved(c, name: str, change: Callable[[dict], None]) -> Path:
    """A copy of the ring8 checkpoint, changed by ``change(state)`` and saved with a valid checksum."""
    path = c.root / name
    if not path.exists():
        state = {k: v for k, v in c.state.items() if k not in ("format", "version", "checksum")}
        change(state)
        ckpt_mod.save_checkpoint(state, path)
    return path


def _nan_weights(c):
    """NaN generator weights (and no EMA)."""
    return _resaved(c, "nan_weights.pt", lambda s: s.update(
        G={k: torch.full_like(v, float("nan")) for k, v in s["G"].items()}, G_ema=None))


def _huge_config(c):
    """A config that claims a generator of width 2,000,000 (16 TB of weights) beside the saved, narrow weights."""
    return _resaved(c, "huge_config.pt", lambda s: s.update(config={**s["config"], "g_width": 2_000_000}))


def _folder_with_checkpoint_folder(c):
    (c.root / "cp_dir" / "checkpoint.pt").mkdir(parents=True, exist_ok=True)
    return c.root / "cp_dir"


def _a_file(c):
    (c.root / "a_file").write_text("x")
    return c.root / "a_file"


COND_G = DCGANGenerator(latent_dim=16, channels=1, image_size=8, width=8, num_classes=10)
MLP_G = MLPGenerator(8, 2, hidden=16)
USAGE = "argparse usage error (SystemExit 2)"
CLI_ERROR = "CLI error (exit status 2)"
NEWER = ckpt_mod.FORMAT_VERSION + 1  # the version of saved_runs.newer

BAD_INPUTS = [
    # ---- datasets: names, sizes, shapes, dtypes
    ("unknown dataset", lambda c: data.load("cifar10"), ValueError, r"unknown dataset 'cifar10'; valid names"),
    ("image size not a power of two", lambda c: data.load("digits", image_size=12), ValueError,
     r"image size 12 is not supported.*power of two"),
    ("image size for point data", lambda c: data.load("ring8", image_size=16), ValueError,
     r"image_size is for image datasets"),
    ("zero samples requested", lambda c: data.load("ring8", n=0), ValueError, r"n must be a positive integer, got 0"),
    ("empty dataset", lambda c: Dataset("mine", torch.empty(0, 2)), ValueError, r"'mine' is empty \(0 samples\)"),
    ("labels do not match samples", lambda c: Dataset("mine", torch.zeros(5, 2), torch.zeros(4, dtype=torch.long)),
     ValueError, r"5 samples but 4 labels"),
    ("integer data", lambda c: Dataset("mine", torch.zeros(5, 2, dtype=torch.int64)), TypeError,
     r"x must be floating point .* got dtype torch\.int64"),
    ("1-D data without a feature axis", lambda c: Dataset("mine", torch.zeros(5)), ValueError,
     r"x must have shape \(N, D\).*got \(5,\)"),
    ("float labels", lambda c: Dataset("mine", torch.zeros(5, 2), torch.zeros(5)), TypeError,
     r"labels y must be an integer tensor, got torch\.float32"),
    # ---- configuration: names, ranges, types
    ("zero batch size", lambda c: TrainConfig.for_data("ring8", batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0"),
    ("fractional step count", lambda c: TrainConfig.for_data("ring8", steps=10.5), ValueError,
     r"steps must be a positive integer, got 10\.5"),
    ("NaN learning rate", lambda c: TrainConfig.for_data("ring8", lr_d=float("nan")), ValueError,
     r"lr_d must be a positive finite number, got nan"),
    ("Adam beta out of range", lambda c: TrainConfig.for_data("ring8", betas=(0.5, 1.0)), ValueError,
     r"betas must be two numbers in \[0, 1\)"),
    ("MLP on images", lambda c: TrainConfig.for_data("digits", model="mlp"), ValueError,
     r"'digits' holds images: use model='dcgan'"),
    # ---- devices and dataset size
    ("unknown device name", lambda c: GANTrainer(c.ring_config(device="tpu"), dataset=c.ring, verbose=False),
     ValueError, r"unknown device 'tpu'; valid choices"),
    ("device that is not here", lambda c: get_device("cuda:99"), DeviceError, r"'cuda:99' was requested"),
    # ---- models, sampling and losses: shapes, dtypes, ranges
    ("latent of the wrong width", lambda c: MLPGenerator(8, 2)(torch.randn(4, 3)), ValueError,
     r"expects z of shape \(N, 8\), got \(4, 3\)"),
    ("images with the wrong channel count", lambda c: DCGANDiscriminator(1, 16, 8)(torch.randn(2, 3, 16, 16)),
     ValueError, r"expects images of shape \(N, 1, 16, 16\), got \(2, 3, 16, 16\)"),
    ("model image size not a power of two", lambda c: DCGANGenerator(image_size=48), ValueError,
     r"image size 48 is not supported"),
    ("float class labels", lambda c: COND_G(torch.randn(2, 16), torch.tensor([0.0, 1.0])), TypeError,
     r"labels must be an integer tensor, got dtype torch\.float32"),
    ("conditional G without labels", lambda c: COND_G(torch.randn(2, 16)), ValueError,
     r"class-conditional \(10 classes\): pass labels"),
    ("label out of range for conditional sampling",
     lambda c: generate(COND_G, 4, 16, CPU, labels=torch.tensor([0, 1, 2, 10]), num_classes=10), ValueError,
     r"labels must be class indices in \[0, 10\), got values from 0 to 10"),
    ("labels for an unconditional model",
     lambda c: generate(MLP_G, 4, 8, CPU, labels=torch.zeros(4, dtype=torch.long)), ValueError,
     r"labels were given but this generator is unconditional"),
    ("integer noise", lambda c: generate(MLP_G, 4, 8, CPU, noise=torch.zeros(4, 8, dtype=torch.long)), TypeError,
     r"noise must be a floating-point tensor .* got torch\.int64"),
    ("noise of the wrong shape", lambda c: generate(MLP_G, 4, 8, CPU, noise=torch.zeros(4, 3)), ValueError,
     r"noise must have shape \(4, 8\), got \(4, 3\)"),
    ("zero samples", lambda c: generate(MLP_G, 0, 8, CPU), ValueError, r"n must be a positive integer, got 0"),
    ("logits of shape (N, 1)", lambda c: losses.d_loss_bce(torch.zeros(4, 1), torch.zeros(4, 1)), ValueError,
     r"logits must have shape \(N,\), got \(4, 1\)"),
    # ---- checkpoint files
    ("missing checkpoint", lambda c: load_checkpoint(c.root / "nope.pt"), CheckpointError, r"does not exist"),
    ("folder instead of checkpoint", lambda c: load_checkpoint(c.root / "ring"), CheckpointError,
     r"is a folder, not a checkpoint file; did you mean .*checkpoint\.pt"),
    ("empty checkpoint", lambda c: load_checkpoint(c.empty), CheckpointError, r"is empty \(0 bytes\)"),
    ("checkpoint /dev/null", lambda c: load_checkpoint("/dev/null"), CheckpointError,
     r"'/dev/null' is not a regular file \(a device or a pipe\)"),
    ("truncated checkpoint", lambda c: load_checkpoint(c.truncated), CheckpointError,
     r"truncated or corrupt and cannot be read"),
    ("checkpoint from a newer format version", lambda c: load_checkpoint(c.newer), CheckpointError,
     rf"format version {NEWER}, but this course_lib reads versions up to {NEWER - 1}; upgrade course_lib"),
    ("foreign torch file", lambda c: load_checkpoint(c.foreign), CheckpointError,
     r"not a course_lib checkpoint \(no 'gan-course-checkpoint' format tag\)"),
    ("checkpoint into models of other widths", _trainer_with_other_widths, CheckpointError,
     r"does not fit the models of this config: .*size mismatch"),
    ("checkpoint onto data with another channel count",
     lambda c: GANTrainer.from_checkpoint(c.cond_ckpt, dataset=_three_channel_digits(), verbose=False),
     CheckpointError, r"trained on samples of shape \(1, 8, 8\).*have shape \(3, 8, 8\)"),
    # ---- command line
    ("CLI --lr 0", lambda c: ["train", "--lr", "0", "--out", "x"], USAGE,
     r"--lr: expected a positive finite number, got '0'"),
    ("CLI negative --seed", lambda c: ["train", "--seed", "-1", "--out", "x"], USAGE,
     r"--seed: expected an integer in \[0, 2\*\*63 - 1\] \(a 64-bit seed\), got '-1'"),
    ("CLI --steps with --epochs", lambda c: ["train", "--steps", "5", "--epochs", "2", "--out", "x"], USAGE,
     r"--epochs: not allowed with argument --steps"),
    ("CLI --label-smoothing 1.5", lambda c: ["train", "--label-smoothing", "1.5", "--out", "x"], USAGE,
     r"expected a number in \[0, 1\), got '1\.5'"),
    ("CLI --checkpoint-every 0", lambda c: ["train", "--checkpoint-every", "0", "--out", "x"], USAGE,
     r"--checkpoint-every: expected a positive integer, got '0'"),
    ("CLI sample --n 0", lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--n", "0", "--out", "x.npy"],
     USAGE, r"--n: expected a positive integer, got '0'"),
    ("CLI unknown --device", lambda c: ["train", "--device", "tpu", "--out", str(c.root / "o")], CLI_ERROR,
     r"unknown device 'tpu'"),
    ("CLI absent --device", lambda c: ["train", "--device", "cuda:99", "--out", str(c.root / "o")], CLI_ERROR,
     r"'cuda:99' was requested"),
    ("CLI --image-size 12", lambda c: ["train", "--data", "digits", "--image-size", "12", "--out", "x"],
     USAGE, r"--image-size: image size 12 is not supported"),
    ("CLI --r1-gamma nan", lambda c: ["train", "--r1-gamma", "nan", "--out", "x"], USAGE,
     r"--r1-gamma: expected a non-negative number, got 'nan'"),
    ("CLI batch larger than the dataset",
     lambda c: ["train", "--data", "digits", "--batch-size", "5000", "--out", str(c.root / "o")], CLI_ERROR,
     r"batch size 5000 .*larger than the dataset"),
    ("CLI MNIST offline without --fallback", lambda c: ["train", "--data", "mnist", "--out", str(c.root / "o")],
     CLI_ERROR, r"mnist is not on this machine .* downloads are disabled \(COURSE_OFFLINE=1\).*--fallback"),
    ("CLI --label for an unconditional model",
     lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--label", "3", "--out", str(c.root / "s.npy")],
     CLI_ERROR, r"--label needs a conditional model"),
    ("CLI --label out of range",
     lambda c: ["sample", "--checkpoint", str(c.cond_ckpt), "--label", "12", "--out", str(c.root / "s.npy")],
     CLI_ERROR, r"--label must be a class in \[0, 10\), got 12"),
    ("CLI sample to an unknown file type",
     lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--out", str(c.root / "s.txt")], CLI_ERROR,
     r"--out must end in \.npy or \.png, got 's\.txt'"),
    ("CLI resume from a newer format version",
     lambda c: ["train", "--resume", str(c.newer), "--out", str(c.root / "o")], CLI_ERROR,
     rf"format version {NEWER}.*upgrade course_lib"),
    # ---- what would give wrong results or lose work: refused
    ("CLI resume with another --data",
     lambda c: ["train", "--resume", str(c.ring_ckpt), "--data", "digits", "--out", str(c.root / "r1"), "--steps",
                "7"], CLI_ERROR, r"--data cannot be changed when resuming.*only --steps, --device, --amp"),
    ("CLI resume with another --seed",
     lambda c: ["train", "--resume", str(c.ring_ckpt), "--seed", "5", "--out", str(c.root / "r1"), "--steps", "7"],
     CLI_ERROR, r"--seed cannot be changed when resuming"),
    ("library resume with another loss",
     lambda c: GANTrainer.from_checkpoint(c.ring_ckpt, loss="hinge", verbose=False), CheckpointError,
     r"cannot change \['loss'\] when resuming: they define the run saved in checkpoint"),
    ("CLI resume to a step not beyond the checkpoint's",
     lambda c: ["train", "--resume", str(c.ring_ckpt), "--out", str(c.root / "r5"), "--steps", "1"], CLI_ERROR,
     r"steps=1 is not beyond the step 2 of checkpoint .*give more than 2 to train further"),
    ("library resume on another dataset of the same shape",
     lambda c: GANTrainer.from_checkpoint(c.ring_ckpt, dataset=data.load("grid25"), verbose=False),
     CheckpointError, r"trained on the data 'ring8', but this dataset is 'grid25'; resume with the same data"),
    ("a checkpoint with one byte changed", lambda c: load_checkpoint(_one_byte_changed(c)),
     ckpt_mod.CheckpointDamagedError, r"is damaged: its contents do not match the SHA-256 checksum"),
    ("CLI sample from a checkpoint with one byte changed",
     lambda c: ["sample", "--checkpoint", str(_one_byte_changed(c)), "--out", str(c.root / "s.npy")], CLI_ERROR,
     r"is damaged: its contents do not match the SHA-256 checksum .*Use an earlier checkpoint or train again"),
    ("NaN generator weights loaded for sampling", lambda c: load_generator(_nan_weights(c)),
     CheckpointError, r"generator's weights are not finite \(NaN or inf.* so it cannot be used for sampling"),
    ("a checkpoint whose config claims a generator far larger than its weights (nothing is allocated)",
     lambda c: load_generator(_huge_config(c)), CheckpointError,
     r"generator weights do not fit its config: .*size mismatch for net\.0\.weight: .*\[32, 2\].*\[2000000, 2\]"),
    ("CLI sample from NaN generator weights",
     lambda c: ["sample", "--checkpoint", str(_nan_weights(c)), "--out", str(c.root / "s.npy")], CLI_ERROR,
     r"weights are not finite .*cannot be used for sampling"),
    ("CLI evaluate NaN generator weights",
     lambda c: ["evaluate", "--checkpoint", str(_nan_weights(c)), "--out", str(c.root / "e.json")], CLI_ERROR,
     r"weights are not finite .*cannot be used for evaluation"),
    ("CLI new run into a folder that holds a run",
     lambda c: ["train", "--data", "grid25", "--out", str(c.ring_ckpt.parent), "--steps", "2"], CLI_ERROR,
     r"already holds a run \(checkpoint\.pt\); a new run would replace it\. Pass --resume .* --overwrite"),
    ("string boolean spectral_norm='no'",
     lambda c: TrainConfig.for_data("digits", spectral_norm="no"), TypeError,
     r"spectral_norm must be True or False, got 'no' \(str\)"),
    ("string boolean fallback='no'", lambda c: TrainConfig.for_data("digits", fallback="no"),
     TypeError, r"fallback must be True or False, got 'no'"),
    ("r1_gamma=True", lambda c: TrainConfig.for_data("ring8", r1_gamma=True), ValueError,
     r"r1_gamma must be a non-negative number, got True"),
    ("label 15 with num_classes=10",
     lambda c: Dataset("mine", torch.zeros(3, 1, 8, 8), torch.tensor([0, 1, 15]), "images", 10), ValueError,
     r"labels must lie in \[0, 10\) for num_classes=10, got values from 0 to 15"),
    ("label -1 with num_classes=10",
     lambda c: Dataset("mine", torch.zeros(3, 1, 8, 8), torch.tensor([-1, 1, 2]), "images", 10), ValueError,
     r"labels must lie in \[0, 10\) .*got values from -1 to 2"),
    ("negative-definite covariance",
     lambda c: metrics.frechet_distance_gaussians(np.zeros(3), -np.eye(3), np.zeros(3), -np.eye(3)), ValueError,
     r"cov1 is not positive semi-definite"),
    # ---- seeds, devices, output paths, sizes and metric inputs: one clear line each
    ("seed 2**64", lambda c: seed_everything(2**64), ValueError,
     r"seed must be an integer in \[0, 2\*\*63 - 1\] \(a 64-bit seed\), got 18446744073709551616"),
    ("CLI train --seed 2**64", lambda c: ["train", "--seed", str(2**64), "--out", str(c.root / "o")],
     USAGE, r"--seed: expected an integer in \[0, 2\*\*63 - 1\]"),
    ("CLI sample --seed 2**64",
     lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--seed", str(2**64), "--out", str(c.root / "s.npy")],
     USAGE, r"--seed: expected an integer in \[0, 2\*\*63 - 1\] \(a 64-bit seed\)"),
    ("CLI --device cpu:abc", lambda c: ["train", "--device", "cpu:abc", "--out", str(c.root / "o")],
     CLI_ERROR, r"device 'cpu:abc' has an invalid index 'abc'"),
    ("CLI --out an existing file", lambda c: ["train", "--out", str(_a_file(c))], CLI_ERROR,
     r"--out '.*a_file' is a file; a run needs a folder"),
    ("CLI --out /dev/null", lambda c: ["train", "--out", "/dev/null"], CLI_ERROR,
     r"--out '/dev/null' is not a folder \(a device or a pipe\)"),
    ("CLI --out a 300-character name", lambda c: ["train", "--out", str(c.root / ("r" * 300))],
     CLI_ERROR, r"has a name of 300 bytes, longer than this file system allows"),
    ("CLI --out empty", lambda c: ["train", "--out", ""], CLI_ERROR,
     r"--out is empty, which would write the run into the current folder"),
    ("CLI <out>/checkpoint.pt a folder",
     lambda c: ["train", "--out", str(_folder_with_checkpoint_folder(c))], CLI_ERROR,
     r"checkpoint\.pt' is a folder, so the run's checkpoint\.pt cannot be written"),
    ("CLI sample --out an existing folder",
     lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--out", str(c.root)], CLI_ERROR,
     r"--out '.*' is an existing folder, not a file; name the samples file inside it"),
    ("CLI evaluate --out an existing folder",
     lambda c: ["evaluate", "--checkpoint", str(c.ring_ckpt), "--out", str(c.root)], CLI_ERROR,
     r"--out '.*' is an existing folder, not a file; name the evaluation file inside it"),
    ("CLI sample --n 99999999999999",
     lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--n", "99999999999999", "--out", str(c.root / "s.npy")],
     CLI_ERROR, r"--n 99999999999999 samples of shape \(2,\) need about .* of memory.*ask for fewer"),
    # 8 PB: more than any address space, so the allocation fails at once even where memory is overcommitted
    ("CLI networks too large for the memory",
     lambda c: ["train", "--g-width", "1000000000000000", "--out", str(c.root / "o"), "--steps", "2"], CLI_ERROR,
     r"^error: out of memory \(an allocation of \d+ bytes failed\): .*choose smaller sizes \(--g-width"),
    ("betas a single float", lambda c: TrainConfig.for_data("ring8", betas=0.5), ValueError,
     r"betas must be two numbers in \[0, 1\), such as \(0\.5, 0\.999\), got 0\.5"),
    ("device an integer", lambda c: TrainConfig.for_data("ring8", device=1), TypeError,
     r"device must be a string such as 'auto', 'cpu'"),
    ("sample batch_size 0", lambda c: generate(MLP_G, 4, 8, CPU, batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0"),
    ("sample batch_size -1", lambda c: generate(MLP_G, 4, 8, CPU, batch_size=-1), ValueError,
     r"batch_size must be a positive integer, got -1"),
    ("mode_metrics on NaN samples",
     lambda c: metrics.mode_metrics(torch.full((10, 2), float("nan")), c.ring.centres, c.ring.std), ValueError,
     r"samples contain NaN or infinite values"),
    ("empty centres", lambda c: metrics.mode_metrics(c.ring.x, torch.zeros(0, 2), c.ring.std),
     ValueError, r"centres is empty"),
    ("memorisation with no rows",
     lambda c: metrics.memorisation(torch.zeros(0, 16), torch.zeros(5, 16), torch.zeros(5, 16)), ValueError,
     r"fake has 0 rows"),
    ("complex input to frechet_distance",
     lambda c: metrics.frechet_distance(np.ones((10, 3)) * (1 + 1j), np.ones((10, 3))), ValueError,
     r"holds complex numbers; features must be real"),
]


def test_the_bad_input_table_is_large_and_distinct():
    names = [row[0] for row in BAD_INPUTS]
    assert len(names) == len(set(names)) >= 25
    assert sum(row[2] in (USAGE, CLI_ERROR) for row in BAD_INPUTS) >= 10  # the CLI is well covered


@pytest.mark.parametrize("name, make, expected, pattern", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_refused_with_a_message_naming_the_problem(name, make, expected, pattern, saved_runs, capsys,
                                                                monkeypatch):
    ctx = saved_runs
    monkeypatch.setenv("COURSE_DATA_DIR", str(ctx.root / "data"))  # never look at a real data folder
    if expected in (USAGE, CLI_ERROR):
        argv = make(ctx)
        if expected == USAGE:
            with pytest.raises(SystemExit) as exc:
                main(argv)
            assert exc.value.code == 2
        else:
            assert main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(pattern, err, re.S), err
        if expected == CLI_ERROR:
            assert err.startswith("error: ") and "Traceback" not in err
    else:
        with pytest.raises(expected) as exc:
            make(ctx)
        assert re.search(pattern, str(exc.value), re.S), str(exc.value)


# ----------------------------------------------------------------------------- cases needing a setting or files
@pytest.mark.parametrize("value, pattern", [
    ("tpu", r"^error: COURSE_DEVICE='tpu': unknown device 'tpu'; valid choices are auto, cpu, cuda, mps"),
    ("cpu:xyz", r"^error: COURSE_DEVICE='cpu:xyz': device 'cpu:xyz' has an invalid index 'xyz'"),
])
def test_a_bad_course_device_is_one_line_naming_the_variable(value, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DEVICE", value)
    assert main(["train", "--out", str(tmp_path / "o"), "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err) and len(err.strip().splitlines()) == 1, err
    assert "unknown device 'auto'" not in err and not (tmp_path / "o").exists()


def _idx(arr: torch.Tensor) -> bytes:
    return bytes([0, 0, 8, arr.dim()]) + struct.pack(f">{arr.dim()}I", *arr.shape) + arr.numpy().tobytes()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_corrupt_mnist_at_the_cli_names_the_file_and_falls_back_when_asked(damage, tmp_path, monkeypatch, capsys):
    """A damaged idx file (truncated or empty) is one line naming the file, not a bare AssertionError or "invalid
    literal for int()"; with --fallback the run trains on digits instead."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "mnist", ())
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n in (("train", 30), ("t10k", 10)):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(torch.zeros(n, 28, 28,
                                                                                              dtype=torch.uint8))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx((torch.arange(n) % 10).to(
            torch.uint8))))
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"" if damage == "empty" else bad.read_bytes()[:60])
    tiny = ["--image-size", "8", "--g-width", "8", "--d-width", "8", "--latent-dim", "8", "--batch-size", "16",
            "--steps", "1", "--quiet"]
    assert main(["train", "--data", "mnist", "--out", str(tmp_path / "a"), *tiny]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: the data file .*train-images-idx3-ubyte\.gz is damaged: .*download it again", err), err
    assert len(err.strip().splitlines()) == 1 and "AssertionError" not in err and "invalid literal" not in err
    with pytest.warns(UserWarning, match=r"mnist is unavailable .*train-images-idx3-ubyte\.gz is damaged.*falling "
                                         r"back to the offline 'digits'"):
        assert main(["train", "--data", "mnist", "--fallback", "--out", str(tmp_path / "b"), *tiny]) == 0
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["data_info"]["name"] == "digits"
