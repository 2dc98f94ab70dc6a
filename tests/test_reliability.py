"""Reliability (issue 7): interruption and exact resumption, numerical faults, bad input, untrusted checkpoint
files and offline data. Everything runs on the CPU with tiny models; nothing touches the network.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import checkpoint as ckpt_mod
from course_lib import data, losses
from course_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.data import Dataset, DatasetUnavailableError
from course_lib.device import DeviceError, get_device
from course_lib.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, build_models
from course_lib.train import GANTrainer, NonFiniteLossError, TrainConfig, generate, load_generator

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
needs_main_thread = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                       reason="signal handlers can only be installed in the main thread")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ring():
    return data.load("ring8", n=2000)


@pytest.fixture(scope="module")
def digits16():
    return data.load("digits", image_size=16)


def ring_config(**changes) -> TrainConfig:
    base = dict(steps=24, batch_size=64, g_width=32, d_width=32, checkpoint_every=8, callback_every=1)
    return TrainConfig.for_data("ring8", **{**base, **changes})


def digits_config(**changes) -> TrainConfig:
    base = dict(steps=10, batch_size=32, g_width=8, d_width=8, latent_dim=16, image_size=16, ema_decay=0.9,
                checkpoint_every=4, callback_every=1, conditional=False)
    return TrainConfig.for_data("digits", **{**base, **changes})


def assert_identical(a, b, where: str = "state") -> None:
    """Recursive exact equality of nested dicts / lists / tensors (torch.equal on every tensor)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            assert_identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (u, v) in enumerate(zip(a, b)):
            assert_identical(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def sigint_at(step: int, times: int = 1):
    """A callback that presses Ctrl-C (SIGINT to this process) ``times`` times once training reaches ``step``."""
    def callback(trainer):
        if trainer.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
    return callback


# ============================================================================ interruption
@needs_main_thread
@pytest.mark.parametrize("which", ["ring8-mlp", "digits-dcgan-ema"])
def test_ctrl_c_stops_cleanly_and_resuming_gives_exactly_the_uninterrupted_run(which, ring, digits16, tmp_path,
                                                                              capsys):
    cfg, ds, k = (ring_config(), ring, 11) if which == "ring8-mlp" else (digits_config(), digits16, 6)
    assert k % cfg.checkpoint_every  # stop between two periodic checkpoints

    reference = GANTrainer(cfg, dataset=ds, out_dir=tmp_path / "ref", verbose=False)
    reference.fit()
    assert not reference.interrupted and reference.step == cfg.steps

    handler_before = signal.getsignal(signal.SIGINT)
    run = GANTrainer(cfg, dataset=ds, out_dir=tmp_path / "run", callbacks=[sigint_at(k)])
    run.fit()  # returns normally: no KeyboardInterrupt escapes
    assert run.interrupted and run.step == k
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert saved["step"] == k and len(saved["history"]["d_loss"]) == k
    out = capsys.readouterr().out
    assert f"interrupted after step {k}" in out and "--resume" in out

    # resume in a new process-like trainer from the file, and finish
    resumed = GANTrainer.from_checkpoint(tmp_path / "run" / "checkpoint.pt", out_dir=tmp_path / "run",
                                         dataset=ds, verbose=False)
    assert resumed.step == k
    resumed.fit()
    # ... or simply call fit() again on the interrupted trainer (the notebook case)
    run.fit()

    ref_state = reference.state_dict()
    for other in (resumed, run):
        assert not other.interrupted and other.step == cfg.steps
        state = other.state_dict()
        for key in ("G", "D", "G_ema", "opt_G", "opt_D", "history", "rng", "step", "batches_drawn"):
            assert_identical(ref_state[key], state[key], key)
        assert_identical(ref_state, state)
        assert torch.equal(reference.sample(64), other.sample(64))
        assert torch.equal(reference.sample(8, use_ema=False), other.sample(8, use_ema=False))
    if which.endswith("ema"):
        assert ref_state["G_ema"] is not None
    assert_identical(load_checkpoint(tmp_path / "ref" / "checkpoint.pt"),
                     load_checkpoint(tmp_path / "run" / "checkpoint.pt"))


@needs_main_thread
def test_second_ctrl_c_stops_at_once_and_keeps_the_last_periodic_checkpoint(ring, tmp_path):
    trainer = GANTrainer(ring_config(), dataset=ring, out_dir=tmp_path, callbacks=[sigint_at(13, times=2)],
                         verbose=False)
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 8  # the periodic one, intact
    assert not list(tmp_path.glob(".checkpoint.pt.*"))


def _cli_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COURSE_OFFLINE="1", MPLBACKEND="Agg",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def _wait_for_checkpoint(path: Path, proc: subprocess.Popen | None, min_step: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, "the training process ended early"
        if path.is_file():
            step = load_checkpoint(path)["step"]
            if step >= min_step:
                return step
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step >= {min_step} after {timeout} s")


def test_the_notebook_stop_button_stops_training_cleanly_in_a_real_kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=_cli_env(TQDM_DISABLE="1"), cwd=str(tmp_path))
    try:
        msg_id = kc.execute(
            "from course_lib.train import GANTrainer, TrainConfig\n"
            "cfg = TrainConfig.for_data('ring8', steps=10**6, batch_size=64, checkpoint_every=20)\n"
            f"trainer = GANTrainer(cfg, out_dir={str(tmp_path)!r})\n"
            "trainer.fit()\n"
            "print('after fit:', trainer.step, trainer.interrupted)\n")
        _wait_for_checkpoint(tmp_path / "checkpoint.pt", None, min_step=20)
        km.interrupt_kernel()  # what the stop button does (SIGINT to the kernel)
        reply = kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=60)
        text = ""
        while True:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", reply["content"]  # no KeyboardInterrupt traceback in the cell
    found = re.search(r"after fit: (\d+) True", text)
    assert found, text
    step = int(found.group(1))
    assert f"interrupted after step {step}; checkpoint saved to" in text
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == step


def test_sigkill_between_steps_leaves_a_usable_checkpoint_no_older_than_the_interval(tmp_path):
    every, out = 25, tmp_path / "run"
    env = _cli_env(TQDM_DISABLE=None)  # keep the progress bar: it tells us how far training got
    env.pop("TQDM_DISABLE", None)
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--out", str(out),
                             "--steps", "1000000", "--checkpoint-every", str(every), "--batch-size", "64"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = bytearray()
    reader = threading.Thread(target=lambda: [progress.extend(c) for c in iter(lambda: proc.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    try:
        seen_ckpt = _wait_for_checkpoint(out / "checkpoint.pt", proc, min_step=3 * every)
        time.sleep(0.6)  # let the progress bar report (it refreshes every 0.5 s)
        shown = [int(m) for m in re.findall(rb"(\d+)/1000000", bytes(progress))]
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait(timeout=30)
    reader.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(out / "checkpoint.pt")  # loads: the kill never leaves a damaged checkpoint
    step = state["step"]
    assert step % every == 0 and step >= seen_ckpt
    assert shown and step > max(shown) - every, (step, max(shown))  # no older than one interval
    assert len(state["history"]["g_loss"]) == step
    # resuming works, and the first save clears any temporary file the kill left behind
    trainer = GANTrainer.from_checkpoint(out / "checkpoint.pt", out_dir=out, steps=step + 3, verbose=False)
    trainer.fit()
    assert load_checkpoint(out / "checkpoint.pt")["step"] == step + 3
    assert not list(out.glob(".checkpoint.pt.*.tmp"))


def test_sigterm_exits_130_with_a_checkpoint_at_the_last_step_and_the_cli_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--out", str(out),
                             "--steps", "1000000", "--checkpoint-every", "40", "--batch-size", "64"],
                            cwd=REPO, env=_cli_env(TQDM_DISABLE="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(out / "checkpoint.pt", proc, min_step=40)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    final = json.loads((out / "metrics.json").read_text())["final"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert final["interrupted"] is True and state["step"] == final["steps"] >= 40
    assert f"interrupted after step {state['step']}" in stdout and "--resume" in stdout

    target = state["step"] + 5
    assert main(["train", "--resume", str(out / "checkpoint.pt"), "--out", str(out), "--steps", str(target),
                 "--quiet"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["step"] == target
    assert json.loads((out / "metrics.json").read_text())["final"]["interrupted"] is False
    capsys.readouterr()


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_save_that_dies_mid_write_never_replaces_the_last_good_checkpoint(failure, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"config": {}, "step": 7, "G": {}, "D": {}}, path)
    good = path.read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half of a zip archive")  # a partial file ...
        raise failure("simulated crash while writing")  # ... then Ctrl-C / disk full

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(failure, match="simulated crash"):
        save_checkpoint({"config": {}, "step": 8, "G": {}, "D": {}}, path)
    assert path.read_bytes() == good and load_checkpoint(path)["step"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no stray temporary file

    # a process killed (SIGKILL) mid-save leaves its temporary file: the next save removes it, but never the
    # temporary file of a process that is still alive
    monkeypatch.setattr(torch, "save", real_save)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.{dead.pid}.abc123.tmp"
    stale.write_bytes(b"PK\x03\x04 partial")
    alive = tmp_path / f".checkpoint.pt.{os.getppid()}.def456.tmp"
    alive.write_bytes(b"PK\x03\x04 being written")
    assert load_checkpoint(path)["step"] == 7  # the stray file does not disturb loading
    save_checkpoint({"config": {}, "step": 9, "G": {}, "D": {}}, path)
    assert load_checkpoint(path)["step"] == 9
    assert not stale.exists() and alive.exists()


# ============================================================================ numerical faults
class PoisonedD(nn.Module):
    """A discriminator whose output becomes NaN during the given (1-based) steps."""

    def __init__(self, inner: nn.Module, bad_steps: set[int]):
        super().__init__()
        self.inner, self.bad_steps, self.trainer = inner, set(bad_steps), None

    def forward(self, x, y=None):
        out = self.inner(x)
        if self.trainer is not None and self.trainer.step + 1 in self.bad_steps:
            out = out * float("nan")
        return out


def poisoned_trainer(ring, bad_steps, out_dir, **changes) -> GANTrainer:
    cfg = ring_config(**changes)
    G, D = build_models("mlp", (2,), cfg.latent_dim, cfg.g_width, cfg.d_width, cfg.depth)
    D = PoisonedD(D, bad_steps)
    trainer = GANTrainer(cfg, dataset=ring, out_dir=out_dir, G=G, D=D, verbose=False)
    D.trainer = trainer
    return trainer


def test_nan_loss_stops_naming_step_and_causes_and_keeps_the_last_good_checkpoint(ring, tmp_path):
    trainer = poisoned_trainer(ring, {10}, tmp_path, checkpoint_every=3)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    msg = str(err.value)
    assert re.search(r"step 10\b", msg)
    for cause in (r"learning rate", re.escape(f"lr_g={trainer.config.lr_g}"), r"loss='nonsaturating'", r"AMP",
                  r"amp='off'",
                  r"nan_policy='skip'", re.escape(str(tmp_path / "checkpoint.pt"))):
        assert re.search(cause, msg), cause
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 9  # the last periodic checkpoint before the fault, untouched
    assert all(torch.isfinite(v).all() for v in state["D"].values())
    assert all(math.isfinite(v) for v in state["history"]["d_loss"])


def test_nan_policy_skip_skips_and_counts_the_bad_steps(ring, tmp_path):
    trainer = poisoned_trainer(ring, {4, 6, 7}, tmp_path, nan_policy="skip", steps=12)
    trainer.fit()
    assert trainer.step == 12 and trainer.skipped_steps == 3
    bad = [i + 1 for i, v in enumerate(trainer.history["d_loss"]) if not math.isfinite(v)]
    assert bad == [4, 6, 7]
    for model in (trainer.G, trainer.D):
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_checkpoint(tmp_path / "checkpoint.pt")["skipped_steps"] == 3


def test_broken_weights_are_never_saved_over_a_good_checkpoint(digits16, tmp_path):
    def break_ema(trainer):
        if trainer.step == 5:
            with torch.no_grad():
                next(trainer.G_ema.parameters()).fill_(float("inf"))

    trainer = GANTrainer(digits_config(), dataset=digits16, out_dir=tmp_path, callbacks=[break_ema], verbose=False)
    with pytest.raises(NonFiniteLossError, match=r"step 8: the EMA generator's weights are not finite"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4


def test_cli_exits_2_with_the_message_on_a_nan_loss(tmp_path, capsys):
    rc = main(["train", "--data", "ring8", "--lr", "1e30", "--steps", "20", "--batch-size", "64",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert re.search(r"^error: training stopped at step \d+: .*not finite.*learning rate.*AMP", err, re.S)


# ============================================================================ bad input
@pytest.fixture(scope="module")
def ctx(tmp_path_factory, ring):
    """Small real checkpoints (ring8 MLP; conditional digits DCGAN with EMA) and damaged copies of them."""
    root = tmp_path_factory.mktemp("bad_input")
    ring_run = GANTrainer(ring_config(steps=2), dataset=ring, out_dir=root / "ring", verbose=False)
    ring_run.fit()
    cond = GANTrainer(digits_config(steps=2, conditional=True, image_size=8), out_dir=root / "cond",
                      verbose=False)
    cond.fit()
    ring_ckpt = root / "ring" / "checkpoint.pt"
    state = load_checkpoint(ring_ckpt)

    newer = root / "newer.pt"
    torch.save({**state, "version": ckpt_mod.FORMAT_VERSION + 1}, newer)
    truncated = root / "truncated.pt"
    truncated.write_bytes(ring_ckpt.read_bytes()[: ring_ckpt.stat().st_size // 2])
    empty = root / "empty.pt"
    empty.write_bytes(b"")
    foreign = root / "foreign.pt"
    torch.save(ring_run.G.state_dict(), foreign)  # a plain state_dict: not a course checkpoint
    tampered = root / "tampered.pt"
    torch.save({**state, "G": RunsCode(str(root / "PWNED"))}, tampered)

    class C:
        pass
    c = C()
    c.root, c.ring_ckpt, c.cond_ckpt, c.state = root, ring_ckpt, root / "cond" / "checkpoint.pt", state
    c.newer, c.truncated, c.empty, c.foreign, c.tampered = newer, truncated, empty, foreign, tampered
    c.ring = ring
    return c


class RunsCode:
    """Pickles to a call of os.system: loading a file that holds it with plain pickle would run the command."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _three_channel_digits() -> Dataset:
    d = data.load("digits", image_size=8)
    return Dataset("digits", d.x.repeat(1, 3, 1, 1), d.y, "images", 10)


def _trainer_with_other_latent(c):
    GANTrainer(ring_config(latent_dim=16), dataset=c.ring, verbose=False).load_state_dict(c.state)


def _trainer_with_other_widths(c):
    G, D = MLPGenerator(8, 2, hidden=64), MLPDiscriminator(2, hidden=64)
    GANTrainer(ring_config(steps=2), dataset=c.ring, G=G, D=D, verbose=False).load_state_dict(c.state)


COND_G = DCGANGenerator(latent_dim=16, channels=1, image_size=8, width=8, num_classes=10)
MLP_G = MLPGenerator(8, 2, hidden=16)
USAGE = "argparse usage error (SystemExit 2)"
CLI_ERROR = "CLI error (exit status 2)"

BAD_INPUTS = [
    # ---- datasets: names, sizes, shapes, dtypes
    ("unknown dataset", lambda c: data.load("cifar10"), ValueError, r"unknown dataset 'cifar10'; valid names"),
    ("image size not a power of two", lambda c: data.load("digits", image_size=12), ValueError,
     r"image size 12 is not supported.*power of two"),
    ("image size for point data", lambda c: data.load("ring8", image_size=16), ValueError,
     r"image_size is for image datasets"),
    ("zero samples requested", lambda c: data.load("ring8", n=0), ValueError, r"n must be a positive number"),
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
    ("unknown model", lambda c: TrainConfig(model="resnet"), ValueError, r"unknown model 'resnet'; valid models"),
    ("unknown loss", lambda c: TrainConfig.for_data("ring8", loss="hinge2"), ValueError,
     r"unknown loss 'hinge2'; valid losses are .*wgan-gp"),
    ("unknown config field", lambda c: TrainConfig.for_data("ring8", learning_rate=1e-3), TypeError,
     r"unknown TrainConfig field\(s\) \['learning_rate'\]"),
    ("zero batch size", lambda c: TrainConfig.for_data("ring8", batch_size=0), ValueError,
     r"batch_size must be a positive integer, got 0"),
    ("fractional step count", lambda c: TrainConfig.for_data("ring8", steps=10.5), ValueError,
     r"steps must be a positive integer, got 10\.5"),
    ("negative learning rate", lambda c: TrainConfig.for_data("ring8", lr_g=-1e-3), ValueError,
     r"lr_g must be a positive finite number, got -0\.001"),
    ("NaN learning rate", lambda c: TrainConfig.for_data("ring8", lr_d=float("nan")), ValueError,
     r"lr_d must be a positive finite number, got nan"),
    ("negative seed", lambda c: TrainConfig.for_data("ring8", seed=-1), ValueError,
     r"seed must be a non-negative integer, got -1"),
    ("Adam beta out of range", lambda c: TrainConfig.for_data("ring8", betas=(0.5, 1.0)), ValueError,
     r"betas must be two numbers in \[0, 1\)"),
    ("EMA decay out of range", lambda c: TrainConfig.for_data("ring8", ema_decay=1.5), ValueError,
     r"ema_decay must be a float in \(0, 1\)"),
    ("unknown AMP mode", lambda c: TrainConfig.for_data("ring8", amp="fp8"), ValueError,
     r"unknown amp mode 'fp8'; valid choices"),
    ("unknown NaN policy", lambda c: TrainConfig.for_data("ring8", nan_policy="ignore"), ValueError,
     r"unknown nan_policy 'ignore'"),
    ("MLP on images", lambda c: TrainConfig.for_data("digits", model="mlp"), ValueError,
     r"'digits' holds images: use model='dcgan'"),
    ("DCGAN on points", lambda c: TrainConfig.for_data("ring8", model="dcgan"), ValueError,
     r"'ring8' holds points: use model='mlp'"),
    ("config image size not a power of two", lambda c: TrainConfig.for_data("digits", image_size=24), ValueError,
     r"image size 24 is not supported"),
    # ---- devices and dataset size
    ("unknown device name", lambda c: GANTrainer(ring_config(device="tpu"), dataset=c.ring, verbose=False),
     ValueError, r"unknown device 'tpu'; valid choices"),
    ("device that is not here", lambda c: get_device("cuda:99"), DeviceError, r"'cuda:99' was requested"),
    ("batch larger than the dataset",
     lambda c: GANTrainer(ring_config(batch_size=256), dataset=data.load("ring8", n=100), verbose=False),
     ValueError, r"batch size 256 .*larger than the dataset \(100 samples"),
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
     r"format version 2, but this course_lib reads versions up to 1; upgrade course_lib"),
    ("foreign torch file", lambda c: load_checkpoint(c.foreign), CheckpointError,
     r"not a course_lib checkpoint \(no 'gan-course-checkpoint' format tag\)"),
    ("tampered checkpoint with a code-running GLOBAL", lambda c: load_checkpoint(c.tampered), CheckpointError,
     r"refused and nothing in it was run.*GLOBAL (posix|nt|os)\.system"),
    ("resume with another latent size",
     lambda c: GANTrainer.from_checkpoint(c.ring_ckpt, dataset=c.ring, latent_dim=16, verbose=False),
     CheckpointError, r"cannot change \['latent_dim'\] when resuming"),
    ("checkpoint into a config with another latent size", _trainer_with_other_latent, CheckpointError,
     r"latent_dim: checkpoint has 2, the model asked for has 16"),
    ("checkpoint into models of other widths", _trainer_with_other_widths, CheckpointError,
     r"does not fit the models of this config: .*size mismatch"),
    ("checkpoint onto data with another channel count",
     lambda c: GANTrainer.from_checkpoint(c.cond_ckpt, dataset=_three_channel_digits(), verbose=False),
     CheckpointError, r"trained on samples of shape \(1, 8, 8\).*have shape \(3, 8, 8\)"),
    # ---- command line
    ("CLI --steps ten", lambda c: ["train", "--steps", "ten", "--out", "x"], USAGE,
     r"--steps: expected a positive whole number, got 'ten'"),
    ("CLI --lr abc", lambda c: ["train", "--lr", "abc", "--out", "x"], USAGE,
     r"--lr: expected a positive number, got 'abc'"),
    ("CLI --lr 0", lambda c: ["train", "--lr", "0", "--out", "x"], USAGE,
     r"--lr: expected a positive finite number, got '0'"),
    ("CLI negative --seed", lambda c: ["train", "--seed", "-1", "--out", "x"], USAGE,
     r"--seed: expected a non-negative whole number, got '-1'"),
    ("CLI unknown --data", lambda c: ["train", "--data", "cifar10", "--out", "x"], USAGE,
     r"--data: invalid choice: 'cifar10'"),
    ("CLI unknown --loss", lambda c: ["train", "--loss", "bce", "--out", "x"], USAGE,
     r"--loss: invalid choice: 'bce'"),
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
     CLI_ERROR, r"mnist is not in .* downloads are disabled \(COURSE_OFFLINE=1\).*--fallback"),
    ("CLI sample from a missing checkpoint",
     lambda c: ["sample", "--checkpoint", str(c.root / "nope.pt"), "--out", str(c.root / "s.npy")], CLI_ERROR,
     r"does not exist"),
    ("CLI sample from a tampered checkpoint",
     lambda c: ["sample", "--checkpoint", str(c.tampered), "--out", str(c.root / "s.npy")], CLI_ERROR,
     r"was refused and nothing in it was run"),
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
     r"format version 2.*upgrade course_lib"),
    ("CLI resume with a model option",
     lambda c: ["train", "--resume", str(c.ring_ckpt), "--latent-dim", "16", "--out", str(c.root / "o")],
     CLI_ERROR, r"--latent-dim cannot be changed when resuming"),
]


def test_the_bad_input_table_is_large_and_distinct():
    names = [row[0] for row in BAD_INPUTS]
    assert len(names) == len(set(names)) >= 25
    assert sum(row[2] in (USAGE, CLI_ERROR) for row in BAD_INPUTS) >= 10  # the CLI is well covered


@pytest.mark.parametrize("name, make, expected, pattern", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_refused_with_a_message_naming_the_problem(name, make, expected, pattern, ctx, capsys,
                                                                monkeypatch):
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
    assert not (ctx.root / "PWNED").exists()


# ============================================================================ untrusted files
def _evil_zip(path: Path, marker: Path, state: dict) -> None:
    torch.save({**state, "G": RunsCode(str(marker))}, path)


def _evil_legacy(path: Path, marker: Path, state: dict) -> None:
    torch.save({**state, "D": RunsCode(str(marker))}, path, _use_new_zipfile_serialization=False)


def _evil_raw_pickle(path: Path, marker: Path, state: dict) -> None:
    path.write_bytes(pickle.dumps({"format": ckpt_mod.FORMAT, "version": 1, "x": RunsCode(str(marker))},
                                  protocol=2))


def _evil_pickle_v5(path: Path, marker: Path, state: dict) -> None:
    """Protocol 5 is refused even earlier (at an opcode), before the GLOBAL is reached."""
    path.write_bytes(pickle.dumps({"format": ckpt_mod.FORMAT, "version": 1, "x": RunsCode(str(marker))},
                                  protocol=5))


LOADERS = {
    "load_checkpoint": lambda p: load_checkpoint(p),
    "from_checkpoint": lambda p: GANTrainer.from_checkpoint(p, verbose=False),
    "load_generator": lambda p: load_generator(p),
    "cli sample": lambda p: main(["sample", "--checkpoint", str(p), "--out", str(p.with_suffix(".npy"))]),
}


@pytest.mark.parametrize("craft", [_evil_zip, _evil_legacy, _evil_raw_pickle, _evil_pickle_v5])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(craft, loader, ctx, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "shared_by_someone.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        craft(evil, marker, ctx.state)
        if loader == "cli sample":
            assert LOADERS[loader](evil) == 2
            message = capsys.readouterr().err
        else:
            with pytest.raises(CheckpointError) as exc:
                LOADERS[loader](evil)
            message = str(exc.value)
    assert re.search(r"refused and nothing in it was run", message), message
    if craft is not _evil_pickle_v5:
        assert re.search(r"GLOBAL (posix|nt|os)\.system", message), message  # names the forbidden object
    assert "will likely succeed" not in message  # torch's advice to switch the protection off is not passed on
    assert not marker.exists()


# ============================================================================ offline data
def _forbid_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was contacted")
    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setattr("socket.getaddrinfo", no_network)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_offline_mnist_fails_fast_with_advice_or_falls_back_to_digits(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    _forbid_network(monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as exc:
        data.load(name, root=tmp_path)
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    for advice in ("COURSE_OFFLINE=1", "COURSE_DATA_DIR", "'digits'", "fallback=True"):
        assert advice in msg
    with pytest.warns(UserWarning, match=rf"{name} is unavailable .* falling back to the offline 'digits'"):
        ds = data.load(name, root=tmp_path, fallback=True, image_size=16)
    assert ds.name == "digits" and ds.sample_shape == (1, 16, 16) and "falling back" in ds.note
    assert "falling back" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing was written


def test_without_network_a_hanging_lookup_gives_up_within_seconds(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    release = threading.Event()

    def hang(*args, **kwargs):  # a black-holed network: name lookup / connect never answer
        release.wait(30)
        raise OSError("timed out")

    monkeypatch.setattr("socket.create_connection", hang)
    monkeypatch.setattr("socket.getaddrinfo", hang)
    monkeypatch.setattr(data, "NET_PROBE_TIMEOUT", 0.5)
    from torchvision import datasets
    monkeypatch.setattr(datasets.MNIST, "download", lambda self: pytest.fail("download attempted"))
    try:
        t0 = time.monotonic()
        with pytest.raises(DatasetUnavailableError, match=r"mnist is not in .* cannot be downloaded: no answer "
                                                          r"from .* within 0\.5 s.*'digits'"):
            data.load("mnist", root=tmp_path)
        assert time.monotonic() - t0 < 3
        t0 = time.monotonic()
        with pytest.warns(UserWarning, match="falling back"):
            assert data.load("mnist", root=tmp_path, fallback=True).name == "digits"
        assert time.monotonic() - t0 < 3
    finally:
        release.set()


def test_without_network_a_refused_connection_or_failed_download_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("socket.create_connection", refused)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=r"no download server could be reached .*Connection refused"):
        data.load("fashion-mnist", root=tmp_path)
    assert time.monotonic() - t0 < 3

    # the server answers but the download itself breaks off: still a clear, fast error
    from torchvision import datasets
    from urllib.error import URLError

    monkeypatch.setattr(data, "_network_problem", lambda urls, timeout: None)

    def broken_download(self):
        raise URLError("connection reset by peer")

    monkeypatch.setattr(datasets.MNIST, "download", broken_download)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=r"mnist could not be downloaded into .*connection reset"):
        data.load("mnist", root=tmp_path)
    assert time.monotonic() - t0 < 3
