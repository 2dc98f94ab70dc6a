"""Bad input is refused with a message that names the problem (and, where there is one, the fix): datasets,
configurations, devices, models, sampling, losses, checkpoint files and the command line, in one table.

Cases that test_train.py (config errors, batch larger than the data, checkpoint mismatch) and test_cli.py (bad
arguments, missing checkpoint, options that resuming cannot change) check already are not repeated here; files that
would run code are in test_untrusted_checkpoints.py.
"""
from __future__ import annotations

import re

import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib import data, losses
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.cli import main
from course_lib.data import Dataset
from course_lib.device import DeviceError, get_device
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
     r"--seed: expected a non-negative whole number, got '-1'"),
    ("CLI --steps with --epochs", lambda c: ["train", "--steps", "5", "--epochs", "2", "--out", "x"], USAGE,
     r"--epochs: not allowed with argument --steps"),
    ("CLI --label-smoothing 1.5", lambda c: ["train", "--label-smoothing", "1.5", "--out", "x"], USAGE,
     r"expected a number in \[0, 1\), got '1\.5'"),
    ("CLI --checkpoint-every 0", lambda c: ["train", "--checkpoint-every", "0", "--out", "x"], USAGE,
     r"--checkpoint-every: expected a positive whole number, got '0'"),
    ("CLI sample --n 0", lambda c: ["sample", "--checkpoint", str(c.ring_ckpt), "--n", "0", "--out", "x.npy"],
     USAGE, r"--n: expected a positive whole number, got '0'"),
    ("CLI unknown --device", lambda c: ["train", "--device", "tpu", "--out", str(c.root / "o")], CLI_ERROR,
     r"unknown device 'tpu'"),
    ("CLI absent --device", lambda c: ["train", "--device", "cuda:99", "--out", str(c.root / "o")], CLI_ERROR,
     r"'cuda:99' was requested"),
    ("CLI --image-size 12", lambda c: ["train", "--data", "digits", "--image-size", "12", "--out", "x"],
     CLI_ERROR, r"image size 12 is not supported"),
    ("CLI --r1-gamma nan", lambda c: ["train", "--r1-gamma", "nan", "--out", "x"], CLI_ERROR,
     r"r1_gamma must be a non-negative number, got nan"),
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
