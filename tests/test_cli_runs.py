"""The command line's run-folder rules, as built on ``course_lib.rundir`` and ``checkpoint.check_finite_weights``:
a new run refuses a folder that holds one (``--overwrite`` replaces it), a busy folder is refused, outputs are
checked before any work, NaN weights are refused for sampling and evaluation, and too many samples are refused."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "5", "--batch-size", "32",
                 "--quiet"]) == 0
    return out


def test_a_new_run_refuses_a_folder_that_holds_a_run(ring_run, capsys):
    before = (ring_run / "checkpoint.pt").read_bytes()
    assert main(["train", "--data", "grid25", "--out", str(ring_run), "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and "--resume" in err
    assert (ring_run / "checkpoint.pt").read_bytes() == before  # untouched


def test_overwrite_replaces_the_run_and_leaves_no_file_of_the_old_one(ring_run, tmp_path):
    out = tmp_path / "o"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "3", "--batch-size", "32",
                 "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--data", "grid25", "--out", str(out), "--steps", "2", "--batch-size", "32",
                 "--overwrite", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["data"] == "grid25"
    assert load_checkpoint(out / "checkpoint.pt")["config"]["data"] == "grid25"
    assert json.loads((out / "metrics.json").read_text())["final"]["data"] == "grid25"
    assert (out / "notes.txt").read_text() == "mine"  # files that are not the run's are left alone


def test_a_refused_command_leaves_no_folder_behind(ring_run, tmp_path):
    out = tmp_path / "never"
    assert main(["train", "--resume", str(ring_run / "checkpoint.pt"), "--out", str(out), "--steps", "2",
                 "--quiet"]) == 2
    assert not out.exists()


def test_a_second_run_into_a_busy_folder_stops_with_a_message(tmp_path):
    out = tmp_path / "busy"
    env = dict(os.environ, COURSE_OFFLINE="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    first = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--out", str(out),
                              "--steps", "100000", "--batch-size", "32", "--checkpoint-every", "1000000",
                              "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / ".lock").exists() or not (out / ".lock").read_text().strip():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.time() < deadline
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "course_lib", "train", "--data", "grid25", "--out",
                                 str(out), "--steps", "2", "--overwrite", "--quiet"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "in use by another run" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=120)
    assert load_checkpoint(out / "checkpoint.pt")["config"]["data"] == "ring8"  # the first run's files only


@pytest.mark.parametrize("bad", ["", "exists_as_file", "/dev/null"])
def test_bad_train_out_is_refused_before_any_work(tmp_path, capsys, bad):
    if bad == "exists_as_file":
        bad = str(tmp_path / "f")
        Path(bad).write_text("x")
    assert main(["train", "--data", "ring8", "--out", bad, "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1


def test_nan_weights_are_refused_for_sampling_and_evaluation(ring_run, tmp_path, capsys):
    state = load_checkpoint(ring_run / "checkpoint.pt")
    for key in ("G", "G_ema"):
        if state.get(key) is not None:
            state[key] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                          for k, v in state[key].items()}
    bad = save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version", "checksum")},
                          tmp_path / "nan.pt")
    assert main(["sample", "--checkpoint", str(bad), "--n", "10", "--out", str(tmp_path / "s.npy")]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and "sampling" in err and not (tmp_path / "s.npy").exists()
    assert main(["evaluate", "--checkpoint", str(bad), "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and "evaluation" in err and not (tmp_path / "e.json").exists()


def test_sample_and_evaluate_check_their_outputs_and_size_first(ring_run, tmp_path, capsys):
    ckpt = str(ring_run / "checkpoint.pt")
    assert main(["sample", "--checkpoint", ckpt, "--n", "99999999999999", "--out", str(tmp_path / "s.npy")]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 2  # an existing folder
    assert "folder" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", ckpt, "--out", str(tmp_path / "s.txt")]) == 2
    assert ".npy" in capsys.readouterr().err


def test_evaluate_points_prints_the_floor(ring_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--checkpoint", str(ring_run / "checkpoint.pt"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 2500 and result["modes_real"] == 8 and result["high_quality_real"] > 0.95
    assert "high_quality" in capsys.readouterr().out


def test_ctrl_c_while_starting_exits_130_with_one_line(tmp_path):
    import signal

    env = dict(os.environ, COURSE_OFFLINE="1", OMP_NUM_THREADS="1")
    # Ctrl-C as at a terminal: the child starts with SIGINT's default action. A test run started in the
    # background of a non-interactive shell (`nohup pytest &`) ignores SIGINT, the child would inherit that
    # (Python installs its KeyboardInterrupt handler only over the default action) and train to the end.
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--data", "ring8", "--out",
                             str(tmp_path / "run"), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.5)  # importing course_lib, the command line and torch takes longer than this
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().startswith("error: interrupted") and len(err.strip().splitlines()) == 1
