"""Interruption and exact resumption: Ctrl-C (once, twice), the notebook's stop button, SIGKILL and SIGTERM of a
CLI run, and a save that dies mid-write. A stopped run resumes to exactly the uninterrupted one.

Plain resume (save half-way, load, finish) is in test_train.py and test_cli.py; the checkpoint file's own
integrity (checksums, full disks, kill -9 during saves) is in test_checkpoint_integrity.py.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.train import GANTrainer

REPO = Path(__file__).resolve().parents[1]
needs_main_thread = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                       reason="signal handlers can only be installed in the main thread")

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def sigint_at(step: int, times: int = 1):
    """A callback that presses Ctrl-C (SIGINT to this process) ``times`` times once training reaches ``step``."""
    def callback(trainer):
        if trainer.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
    return callback


@needs_main_thread
@pytest.mark.parametrize("which", ["ring8-mlp", "digits-dcgan-ema"])
def test_ctrl_c_stops_cleanly_and_resuming_gives_exactly_the_uninterrupted_run(which, ring, digits16, ring_config,
                                                                              digits_config, identical, tmp_path,
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
            identical(ref_state[key], state[key], key)
        identical(ref_state, state)
        assert torch.equal(reference.sample(64), other.sample(64))
        assert torch.equal(reference.sample(8, use_ema=False), other.sample(8, use_ema=False))
    if which.endswith("ema"):
        assert ref_state["G_ema"] is not None
    identical(load_checkpoint(tmp_path / "ref" / "checkpoint.pt"),
                     load_checkpoint(tmp_path / "run" / "checkpoint.pt"))


@needs_main_thread
def test_second_ctrl_c_stops_at_once_and_keeps_the_last_periodic_checkpoint(ring, ring_config, tmp_path):
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
