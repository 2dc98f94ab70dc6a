"""Checkpoint integrity: a SHA-256 checksum refuses damaged files, the schema is checked once on load
with one message naming the field, non-finite weights are refused for sampling, saves keep the user's umask,
and a full disk keeps the previous checkpoint. The kill -9 fault-injection run is marked slow.
"""
from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib.checkpoint import (FORMAT_VERSION, CheckpointDamagedError, CheckpointError, CheckpointSaveError,
                                   UnverifiedCheckpointWarning, check_finite_weights, load_checkpoint,
                                   save_checkpoint, state_checksum, validate_state)
from course_lib.train import GANTrainer

from conftest import make_ring_config  # tests/ is on sys.path: the one small ring8 config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of a 2-step ring8 run (MLP, Adam, EMA when the recipe has one), and its state."""
    root = tmp_path_factory.mktemp("integrity")
    torch.set_num_threads(1)
    GANTrainer(make_ring_config(steps=2, ema_decay=0.9), out_dir=root, verbose=False).fit()
    path = root / "checkpoint.pt"
    return path, load_checkpoint(path)


def _write(tmp_path: Path, data: bytes, name: str = "c.pt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ============================================================================ checksum
def test_a_saved_checkpoint_carries_a_checksum_equal_before_and_after_loading(saved, tmp_path):
    path, state = saved
    assert state["version"] == FORMAT_VERSION == 2
    assert state["checksum"]["algorithm"] == "sha256" and len(state["checksum"]["digest"]) == 64
    assert state_checksum(state) == state["checksum"]["digest"]
    again = load_checkpoint(save_checkpoint(state, tmp_path / "again.pt"))  # re-saving recomputes the same
    assert again["checksum"] == state["checksum"]


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_bytes_flipped_at_10_50_90_percent_of_the_file_are_refused_as_damaged(saved, tmp_path, fraction):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    raw[int(len(raw) * fraction)] ^= 0xFF
    with pytest.raises(CheckpointDamagedError, match=r"is damaged") as exc:
        load_checkpoint(_write(tmp_path, bytes(raw)))
    assert "earlier checkpoint or train again" in str(exc.value)


def test_one_bit_xored_into_one_generator_weight_is_refused_as_damaged(saved, tmp_path):
    path, state = saved
    weight = next(t for k, t in state["G"].items() if k.endswith("weight"))
    needle = weight.contiguous().view(torch.uint8).numpy().tobytes()[:64]
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(needle)
    assert at > 0, "the weight's bytes are stored verbatim in the zip archive"
    raw[at + 3] ^= 0x40  # one exponent bit of the first float: its value becomes huge (the 2e35)
    with pytest.raises(CheckpointDamagedError, match=r"damaged: its contents do not match the SHA-256 checksum"):
        load_checkpoint(_write(tmp_path, bytes(raw)))


def test_a_changed_byte_of_the_zip_padding_changes_no_tensor_and_is_not_refused(saved, tmp_path):
    """The checksum covers the values, not every byte of the file: the zip container pads its records with
    'Z' bytes that no tensor reads, so a change there loads, and what loads is what was saved."""
    path, state = saved
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(b"Z" * 8)
    assert at > 0, "torch's zip writer pads its records with 'Z' bytes"
    raw[at + 3] = ord("Y")
    again = load_checkpoint(_write(tmp_path, bytes(raw)))
    assert again["checksum"] == state["checksum"]
    assert all(torch.equal(t, again["G"][k]) for k, t in state["G"].items())


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.01])
def test_a_truncated_file_is_refused_as_damaged(saved, tmp_path, keep):
    path, _ = saved
    raw = path.read_bytes()
    with pytest.raises(CheckpointDamagedError, match=r"is damaged: it is truncated or corrupt and cannot be read"):
        load_checkpoint(_write(tmp_path, raw[: int(len(raw) * keep)]))


def test_a_changed_non_tensor_field_with_the_old_checksum_is_refused_as_damaged(saved, tmp_path):
    _, state = saved
    p = tmp_path / "edited.pt"
    torch.save({**state, "step": state["step"] + 1}, p)  # valid schema, stale checksum
    with pytest.raises(CheckpointDamagedError, match=r"do not match the SHA-256 checksum"):
        load_checkpoint(p)


def test_a_version_1_checkpoint_without_checksum_loads_with_a_warning(saved, tmp_path):
    _, state = saved
    old = {k: v for k, v in state.items() if k != "checksum"}
    p = tmp_path / "v1.pt"
    torch.save({**old, "version": 1}, p)
    with pytest.warns(UnverifiedCheckpointWarning, match=r"format version 1 .* cannot be detected"):
        loaded = load_checkpoint(p)
    assert loaded["step"] == state["step"] and torch.equal(loaded["G"][next(iter(loaded["G"]))],
                                                          state["G"][next(iter(state["G"]))])


def test_a_version_2_checkpoint_without_its_checksum_is_refused(saved, tmp_path):
    _, state = saved
    p = tmp_path / "stripped.pt"
    torch.save({k: v for k, v in state.items() if k != "checksum"}, p)
    with pytest.raises(CheckpointError, match=r"invalid: checksum must be .*sha256"):
        load_checkpoint(p)


def test_a_save_load_round_trip_without_warnings(saved, tmp_path):
    _, state = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(save_checkpoint(state, tmp_path / "x.pt"))


# ============================================================================ schema, once on load
def _opt_with_betas(state, betas):
    opt = {**state["opt_G"], "param_groups": [{**g, "betas": betas} for g in state["opt_G"]["param_groups"]]}
    return {"opt_G": opt}


def _int_weights(state):
    name = next(iter(state["G"]))
    return {"G": {**state["G"], name: state["G"][name].round().long()}}


SCHEMA_CASES = [
    ("config None", lambda s: {"config": None}, r"config must be a dict, got None"),
    ("config a list", lambda s: {"config": [1, 2]}, r"config must be a dict, got \[1, 2\] \(list\)"),
    ("config betas a float", lambda s: {"config": {**s["config"], "betas": 0.5}},
     r"config\['betas'\] must be a pair of numbers"),
    ("optimizer betas a float", lambda s: _opt_with_betas(s, 0.5),
     r"opt_G\['param_groups'\]\[0\]\['betas'\] must be a pair of numbers"),
    ("data_info a string", lambda s: {"data_info": "ring8"}, r"data_info must be a dict, got 'ring8'"),
    ("data_info sample_shape a string", lambda s: {"data_info": {**s["data_info"], "sample_shape": "2"}},
     r"data_info\['sample_shape'\] must be a list of positive whole numbers"),
    ("history a string", lambda s: {"history": "losses"}, r"history must be a dict, got 'losses'"),
    ("history values strings", lambda s: {"history": {"d_loss": ["0.5"]}},
     r"history\['d_loss'\] must be a list of numbers, got '0.5'"),
    ("rng a string", lambda s: {"rng": "seed"}, r"rng must be a dict"),
    ("rng state a float tensor", lambda s: {"rng": {**s["rng"], "trainer": torch.zeros(5056)}},
     r"rng\['trainer'\] must be a random-generator state \(a 1-D uint8 tensor\)"),
    ("torch rng state of the wrong size", lambda s: {"rng": {**s["rng"], "torch": torch.zeros(7, dtype=torch.uint8)}},
     r"rng\['torch'\] must be the CPU generator's state \(5056 bytes\)"),
    ("step a string", lambda s: {"step": "5"}, r"step must be a whole number in \[0, 2\*\*63 - 1\], got '5'"),
    ("step 10**30", lambda s: {"step": 10**30}, r"step must be a whole number in \[0, 2\*\*63 - 1\], got 1000"),
    ("step -5", lambda s: {"step": -5}, r"step must be a whole number .* got -5"),
    ("step 2.7", lambda s: {"step": 2.7}, r"step must be a whole number .* got 2\.7"),
    ("step True", lambda s: {"step": True}, r"step must be a whole number .* got True"),
    ("skipped_steps a float", lambda s: {"skipped_steps": 1.5}, r"skipped_steps must be a whole number"),
    ("version 0", lambda s: {"version": 0}, r"version must be a format version, a whole number in \[1, 2\], got 0"),
    ("version -1", lambda s: {"version": -1}, r"version must be a format version.* got -1"),
    ("version True", lambda s: {"version": True}, r"version must be a format version.* got True"),
    ("version a string", lambda s: {"version": "2"}, r"version must be a format version.* got '2'"),
    ("generator weights of integer dtype", _int_weights,
     r"G\['[\w.]+'\] must be a floating-point tensor .* got a tensor of dtype torch\.int64"),
    ("discriminator weights a list", lambda s: {"D": [1.0]}, r"D must be a dict, got \[1\.0\]"),
    ("fixed_noise a list", lambda s: {"fixed_noise": [0.0]}, r"fixed_noise must be a floating-point tensor"),
    ("world_size 0", lambda s: {"world_size": 0}, r"world_size must be a whole number in \[1, "),
]


@pytest.mark.parametrize("name, change, pattern", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_a_doctored_field_is_refused_on_load_with_one_message_naming_it(saved, tmp_path, name, change, pattern):
    _, state = saved
    p = tmp_path / "doctored.pt"
    torch.save({**state, **change(state)}, p)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(p)
    text = str(exc.value)
    assert text.startswith(f"checkpoint {str(p)!r} is invalid: ") or "format version" in text, text
    assert re.search(pattern, text), text
    assert "Traceback" not in text and "\n" not in text


def test_a_newer_version_is_refused_with_the_upgrade_advice(saved, tmp_path):
    _, state = saved
    p = tmp_path / "newer.pt"
    torch.save({**state, "version": FORMAT_VERSION + 1}, p)
    with pytest.raises(CheckpointError, match=rf"format version {FORMAT_VERSION + 1}, but this course_lib reads "
                                              rf"versions up to {FORMAT_VERSION}; upgrade course_lib"):
        load_checkpoint(p)


def test_save_refuses_a_state_that_would_not_load(tmp_path):
    with pytest.raises(CheckpointError, match=r"state to save .* step must be a whole number"):
        save_checkpoint({"config": {}, "step": torch.tensor(3), "G": {}, "D": {}}, tmp_path / "c.pt")
    assert not list(tmp_path.iterdir())


def test_the_minimal_state_and_a_gpu_sized_trainer_rng_are_valid():
    validate_state({"format": ckpt_mod.FORMAT, "version": 1, "config": {}, "step": 0, "G": {}, "D": {}})
    validate_state({"format": ckpt_mod.FORMAT, "version": 1, "config": {}, "step": 0, "G": {}, "D": {},
                    "rng": {"trainer": torch.zeros(16, dtype=torch.uint8)}})  # a CUDA (Philox) state


def test_a_damaged_pickle_is_called_damaged_not_tampered(saved, tmp_path):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(b"data.pkl") + len(b"data.pkl")
    raw[at + 2: at + 40] = b"\xff" * 38  # garbage at the start of the pickle stream
    with pytest.raises(CheckpointError, match=r"damaged|refused and nothing in it was run"):
        load_checkpoint(_write(tmp_path, bytes(raw)))


# ============================================================================ non-finite weights
def _nan_state(state, key):
    name = next(iter(state[key]))
    return {**state, key: {**state[key], name: torch.full_like(state[key][name], float("nan"))}}


@pytest.mark.parametrize("for_what", ["sampling", "evaluation"])
def test_nan_generator_weights_are_refused_for_sampling_and_evaluation(saved, for_what):
    _, state = saved
    state = {**_nan_state(state, "G"), "G_ema": None}
    with pytest.raises(CheckpointError, match=rf"generator's weights are not finite \(NaN or inf: \d+ of \d+ values "
                                              rf"of G\[.*\]\) at step 2, so it cannot be used for {for_what}.*"
                                              r"lower learning rate"):
        check_finite_weights(state, for_what, source="checkpoint 'x.pt'")


def test_the_weights_checked_are_the_ones_that_would_be_used(saved):
    _, state = saved
    assert state.get("G_ema") is not None
    bad_g = _nan_state(state, "G")
    check_finite_weights(bad_g, "sampling")  # sampling uses G_ema, which is finite
    with pytest.raises(CheckpointError, match=r"the generator's weights are not finite"):
        check_finite_weights(bad_g, "sampling", use_ema=False)
    with pytest.raises(CheckpointError, match=r"the EMA generator's weights"):
        check_finite_weights(_nan_state(state, "G_ema"), "evaluation")
    inf_d = {**state, "D": {k: torch.full_like(v, float("inf")) for k, v in state["D"].items()}}
    with pytest.raises(CheckpointError, match=r"the discriminator's weights are not finite.*for resuming"):
        check_finite_weights(inf_d, "resuming", keys=("G", "D", "G_ema"))
    check_finite_weights(state, "sampling")


# ============================================================================ file mode (umask)
@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_checkpoint_gets_the_users_umask(tmp_path, umask, mode):
    before = os.umask(umask)
    try:
        p = save_checkpoint({"config": {}, "step": 1, "G": {}, "D": {}}, tmp_path / "c.pt")
    finally:
        os.umask(before)
    assert p.stat().st_mode & 0o777 == mode


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_replacing_a_checkpoint_keeps_its_mode(tmp_path):
    p = save_checkpoint({"config": {}, "step": 1, "G": {}, "D": {}}, tmp_path / "c.pt")
    os.chmod(p, 0o640)
    save_checkpoint({"config": {}, "step": 2, "G": {}, "D": {}}, p)
    assert p.stat().st_mode & 0o777 == 0o640 and load_checkpoint(p)["step"] == 2


# ============================================================================ full disk
class _FullDiskFile:
    """A binary file that accepts ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self._f, self.room = f, room

    def write(self, b):
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.mark.parametrize("room", [0, 300, 5000])
def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(saved, tmp_path, monkeypatch, room):
    _, state = saved
    p = save_checkpoint(state, tmp_path / "checkpoint.pt")
    good = p.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDiskFile(real_fdopen(fd, *a, **k), room))
    with pytest.raises(CheckpointSaveError, match=r"^disk full while saving the checkpoint .*; the previous "
                                                  r"checkpoint is kept\. Free about [\d.]+ MiB") as exc:
        save_checkpoint({**state, "step": 99}, p)
    monkeypatch.undo()
    assert exc.value.errno == errno.ENOSPC
    assert p.read_bytes() == good and load_checkpoint(p)["step"] == state["step"]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["checkpoint.pt"]  # the temporary file is gone


def test_a_full_disk_on_the_first_save_says_no_checkpoint_was_written(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)  # delayed allocation: the error comes at fsync
    with pytest.raises(CheckpointSaveError, match=r"disk full while saving the checkpoint .*no checkpoint was "
                                                  r"written \(there was none before\)"):
        save_checkpoint({"config": {}, "step": 1, "G": {}, "D": {}}, tmp_path / "c.pt")
    monkeypatch.undo()
    assert not list(tmp_path.iterdir())


def test_a_read_only_target_folder_is_one_clear_line(tmp_path, monkeypatch):
    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(CheckpointSaveError, match=r"could not save the checkpoint .*\(Read-only file system\); "
                                                  r"no checkpoint was written"):
        save_checkpoint({"config": {}, "step": 1, "G": {}, "D": {}}, tmp_path / "c.pt")


# ============================================================================ kill -9 fault injection
def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint after {timeout} s")


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_at_random_points_of_a_checkpoint_every_step_run_always_leaves_a_valid_checkpoint(tmp_path):
    """Ten runs, each killed (SIGKILL) at a random moment after its first checkpoint: the folder always holds a
    checkpoint that loads and whose checksum is valid, at a step no older than the one seen before the kill."""
    rng = random.Random(12)
    env = {**os.environ, "COURSE_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": str(REPO)}
    steps_seen = []
    for i in range(10):
        out = tmp_path / f"run{i}"
        proc = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--out", str(out),
                                 "--steps", "1000000", "--checkpoint-every", "1", "--batch-size", "64",
                                 "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(out / "checkpoint.pt", proc)
            before = load_checkpoint(out / "checkpoint.pt")["step"]
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a version-2 file with a checksum: no "unverified" warning
            state = load_checkpoint(out / "checkpoint.pt")
        assert state_checksum(state) == state["checksum"]["digest"]
        assert state["step"] >= before >= 1
        steps_seen.append(state["step"])
        # and the run resumes from it (into its own folder, whose lock the kernel dropped with the process)
        from course_lib.cli import main

        assert main(["train", "--resume", str(out / "checkpoint.pt"), "--out", str(out), "--steps",
                     str(state["step"] + 2), "--quiet"]) == 0
        assert load_checkpoint(out / "checkpoint.pt")["step"] == state["step"] + 2
    assert len(set(steps_seen)) > 1, steps_seen  # the kills landed at different points of the run
