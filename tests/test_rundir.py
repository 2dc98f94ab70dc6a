"""Run folders and output paths: checked before any work, locked by one run at a time (fcntl.flock,
released by the kernel even after kill -9), never silently replaced; sample sizes checked against memory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_lib import rundir
from course_lib.rundir import (LOCK_NAME, RunFolder, RunFolderBusyError, RunFolderError, SampleTooLargeError,
                               check_output_file, check_sample_memory, estimate_bytes)

REPO = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file system semantics")


# ============================================================================ run folder paths
def _folder_cases(root: Path) -> list:
    (root / "a_file").write_text("x")
    (root / "cp_dir").mkdir()
    (root / "cp_dir" / "checkpoint.pt").mkdir()
    (root / "cfg_dir").mkdir()
    (root / "cfg_dir" / "config.json").mkdir()
    return [
        ("empty --out", "", r"^--out is empty, which would write the run into the current folder; name a folder"),
        ("blank --out", "  ", r"--out is empty"),
        ("an existing file", root / "a_file", r"is a file; a run needs a folder"),
        ("/dev/null", "/dev/null", r"'/dev/null' is not a folder \(a device or a pipe\)"),
        ("a 300-character name", root / ("r" * 300), r"has a name of 300 bytes, longer than this file system "
                                                      r"allows \(\d+\); choose a shorter name"),
        ("a folder under a file", root / "a_file" / "run", r"'.*a_file' is a file, not a folder, so the run "
                                                           r"folder cannot be created there"),
        ("checkpoint.pt a folder", root / "cp_dir", r"checkpoint\.pt' is a folder, so the run's checkpoint\.pt "
                                                    r"cannot be written"),
        ("config.json a folder", root / "cfg_dir", r"config\.json' is a folder"),
    ]


@posix_only
def test_bad_run_folders_are_refused_before_any_work(tmp_path):
    for name, path, pattern in _folder_cases(tmp_path):
        with pytest.raises(RunFolderError, match=pattern):
            RunFolder(path).check()
        with pytest.raises(RunFolderError, match=pattern):
            RunFolder(path, mode="overwrite").check()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_non_path_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"--out must be a folder path \(a string\), got 3 \(int\)"):
        RunFolder(3)
    with pytest.raises(ValueError, match=r"mode must be one of new, resume, overwrite, got 'append'"):
        RunFolder(tmp_path, mode="append")


@posix_only
def test_a_read_only_file_system_is_refused(tmp_path, monkeypatch):
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self.st = st

        def __getattr__(self, name):
            return os.ST_RDONLY if name == "f_flag" else getattr(self.st, name)

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)))
    with pytest.raises(RunFolderError, match=r"is on a read-only file system .*choose a folder on a writable disk"):
        RunFolder(tmp_path / "run").check()
    with pytest.raises(RunFolderError, match=r"read-only file system"):
        check_output_file(tmp_path / "s.png", (".png",))


@posix_only
def test_a_folder_that_is_not_writable_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # (root may write anywhere: pretend not)
    with pytest.raises(RunFolderError, match=r"the folder '.*' is not writable by you; choose a folder you can"):
        RunFolder(tmp_path / "run").check()
    with pytest.raises(RunFolderError, match=r"is not writable by you"):
        check_output_file(tmp_path / "x.npy", (".npy",))


# ============================================================================ run folder rules
@pytest.mark.parametrize("marker", ["checkpoint.pt", "config.json"])
def test_a_new_run_refuses_a_folder_that_holds_a_run(tmp_path, marker):
    (tmp_path / marker).write_text("earlier run")
    with pytest.raises(RunFolderError, match=rf"already holds a run \({marker}\); a new run would replace it\. "
                                             r"Pass --resume .*checkpoint\.pt to continue it, --overwrite"):
        with RunFolder(tmp_path):
            pass
    assert (tmp_path / marker).read_text() == "earlier run"


def test_an_empty_or_other_folder_is_fine_for_a_new_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with RunFolder(tmp_path) as run:
        assert run.locked and (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not run.locked
    with RunFolder(tmp_path / "new" / "deeper") as run:  # created, with its parents
        assert (tmp_path / "new" / "deeper").is_dir()


def test_resume_into_its_own_folder_is_allowed_into_another_runs_folder_not(tmp_path):
    own, other = tmp_path / "own", tmp_path / "other"
    for d in (own, other):
        d.mkdir()
        (d / "checkpoint.pt").write_text(d.name)
    with RunFolder(own, mode="resume", source=own / "checkpoint.pt"):
        pass
    with RunFolder(tmp_path / "fresh", mode="resume", source=own / "checkpoint.pt"):
        pass
    with pytest.raises(RunFolderError, match=r"'.*other' already holds another run; resuming '.*own.checkpoint"
                                             r"\.pt' there would mix or replace its files"):
        RunFolder(other, mode="resume", source=own / "checkpoint.pt").check()


def test_overwrite_is_allowed_and_clear_removes_only_the_earlier_runs_files(tmp_path):
    for name in ("checkpoint.pt", "config.json", "metrics.json", "notes.txt"):
        (tmp_path / name).write_text("old")
    with pytest.raises(RunFolderError, match=r"needs mode='overwrite'"):
        RunFolder(tmp_path, mode="resume").clear()
    with RunFolder(tmp_path, mode="overwrite") as run:
        assert sorted(run.clear(extra=("metrics.json", "samples.png"))) == ["checkpoint.pt", "config.json",
                                                                            "metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME, "notes.txt"]
    with pytest.raises(RunFolderError, match=r"take the lock"):
        RunFolder(tmp_path, mode="overwrite").clear()


def test_overwrite_never_deletes_the_checkpoint_it_resumes(tmp_path):
    for name in ("checkpoint.pt", "config.json"):
        (tmp_path / name).write_text("old")
    with RunFolder(tmp_path, mode="overwrite", source=tmp_path / "." / "checkpoint.pt") as run:
        assert run.clear() == ["config.json"]
    assert (tmp_path / "checkpoint.pt").read_text() == "old"


# ============================================================================ the lock, across processes
HOLDER = textwrap.dedent("""
    import sys, time
    from course_lib.rundir import RunFolder, RunFolderBusyError
    try:
        run = RunFolder(sys.argv[1], mode="overwrite").__enter__()
    except RunFolderBusyError as exc:
        print("busy", exc.pid, exc, flush=True)
        sys.exit(3)
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


@posix_only
def test_a_second_run_into_a_busy_folder_stops_naming_the_folder_and_the_holders_pid(tmp_path):
    holder = _holder(tmp_path, 60)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusyError, match=rf"--out '{tmp_path}' is in use by another run \(process "
                                                     rf"{holder.pid} holds .*\.lock'\); wait for it to finish") as exc:
            with RunFolder(tmp_path, mode="overwrite"):
                pass
        assert exc.value.pid == holder.pid
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock, nothing stale remains
        holder.wait(timeout=30)
        with RunFolder(tmp_path, mode="overwrite") as run:
            assert run.locked
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@posix_only
@pytest.mark.parametrize("mode", ["new", "resume", "overwrite"])
def test_a_folder_whose_run_is_still_training_is_reported_busy_in_every_mode(tmp_path, mode):
    """The issue's race: a run is training into the folder (its checkpoint is already there) and a second run
    starts. It is told that the folder is in use, not invited to --resume or --overwrite a run that is running."""
    (tmp_path / "checkpoint.pt").write_text("the running run's")
    holder = _holder(tmp_path, 60)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusyError, match=rf"is in use by another run \(process {holder.pid} holds"):
            with RunFolder(tmp_path, mode=mode, source=tmp_path / "checkpoint.pt"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "checkpoint.pt").read_text() == "the running run's"


@posix_only
def test_two_processes_racing_for_one_folder_exactly_one_wins(tmp_path):
    procs = [_holder(tmp_path, 3) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=60)[0].split() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    firsts = sorted(o[0] for o in outs)
    assert firsts == ["busy", "locked"], outs
    winner = procs[[o[0] for o in outs].index("locked")]
    loser = outs[[o[0] for o in outs].index("busy")]
    assert loser[1] == str(winner.pid)  # the loser's message names the winner's PID
    assert sorted(p.returncode for p in procs) == [0, 3]


def test_within_one_process_the_lock_is_shared_and_freed_by_the_last_holder(tmp_path):
    """The CLI locks the folder, then the trainer it starts locks it again: same process, no refusal."""
    first = RunFolder(tmp_path, mode="overwrite").lock()
    second = RunFolder(tmp_path / ".", mode="overwrite").lock()  # the same folder, another spelling
    assert first.locked and second.locked
    first.release()
    probe = _holder(tmp_path, 0)
    assert probe.communicate(timeout=60)[0].split()[:2] == ["busy", str(os.getpid())]  # still held by `second`
    second.release()
    probe = _holder(tmp_path, 0)
    assert probe.communicate(timeout=60)[0].strip() == "locked" and probe.returncode == 0


# ============================================================================ output files (sample / evaluate)
@posix_only
def test_bad_output_files_are_refused_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("x")
    cases = [
        ("", r"^--out is empty; name the output file, e.g. --out samples\.png"),
        (tmp_path, r"is an existing folder, not a file; name the output file inside it, e\.g\. '.*samples\.png'"),
        ("/dev/null", r"'/dev/null' is not a regular file"),
        (tmp_path / "x.txt", r"--out must end in \.png or \.npy, got 'x\.txt'"),
        (tmp_path / ("s" * 300 + ".png"), r"has a name of 304 bytes"),
        (tmp_path / "a_file" / "x.png", r"'.*a_file' is a file, not a folder, so the output file cannot be created"),
    ]
    for path, pattern in cases:
        with pytest.raises(RunFolderError, match=pattern):
            check_output_file(path, (".png", ".npy"))


def test_a_good_output_file_passes_and_may_be_replaced(tmp_path):
    assert check_output_file(tmp_path / "new" / "s.npy", (".png", ".npy")) == tmp_path / "new" / "s.npy"
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json", (".json",), what="evaluation file") == tmp_path / "old.json"
    with pytest.raises(RunFolderError, match=r"^evaluate --out is empty; name the evaluation file"):
        check_output_file("", (".json",), flag="evaluate --out", what="evaluation file")


# ============================================================================ sample size
def test_a_sample_too_large_for_memory_is_refused_with_a_size_that_fits():
    with pytest.raises(SampleTooLargeError, match=r"^--n 99999999999999 samples of shape \(2,\) need about "
                                                  r"[\d.]+ TiB of memory .*more than the [\d.]+ \w+ available; ask "
                                                  r"for fewer, at most about --n \d+"):
        check_sample_memory(99999999999999, (2,))
    with pytest.raises(SampleTooLargeError, match=r"at most about --n 64$"):
        check_sample_memory(1000, (1, 8, 8), available=64 * 256 * 2, copies=2)
    assert check_sample_memory(64, (1, 8, 8), available=64 * 256 * 2, copies=2) == 64 * 256


def test_the_noise_counts_too_for_points_it_is_as_large_as_the_samples():
    available = 1000 * 2 * 8  # two float32 copies of 1000 two-dimensional points
    assert check_sample_memory(1000, (2,), available=available, copies=2) == 1000 * 8
    with pytest.raises(SampleTooLargeError, match=r"\(float32, with their noise of 8 numbers each\), "
                                                  r"more than .* at most about --n 400$"):
        check_sample_memory(1000, (2,), available=available, latent_dim=8)


def test_estimate_bytes_and_unknown_memory(monkeypatch):
    assert estimate_bytes(10, (1, 28, 28)) == 10 * 784 * 4
    assert estimate_bytes(3, (2,), itemsize=2) == 12
    available = rundir.available_memory()
    assert available is None or available > 0
    monkeypatch.setattr(rundir, "available_memory", lambda: None)  # a system that does not say: no refusal
    assert check_sample_memory(10**12, (2,)) == 8 * 10**12
