"""Every run file is written atomically: a disk that fills at any write (a real tmpfs mounted by the test, skipped
where mounting is impossible) gives one "disk full" line and keeps the previous file whole; ``--overwrite``
removes every file of the earlier run; ``sample --out`` and ``evaluate --out`` refuse a file of a run."""
import errno
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from course_lib import plots, report, run_files
from course_lib.checkpoint import load_checkpoint
from course_lib.cli import main
from course_lib.run_files import RunFileSaveError, write_array, write_figure, write_json
from course_lib.train import GANTrainer

DISK_FULL_LINE = r"^error: disk full while saving the file '.*{name}'; the previous file is kept\. Free about"


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A 16 MiB tmpfs, unmounted afterwards (skipped where this process may not mount one)."""
    folder = tmp_path_factory.mktemp("small_disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the disk of ``folder`` to the last byte with a file ``filler`` (returned)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def full_after(small_disk, monkeypatch):
    """``full_after(module, name)``: the disk fills as soon as ``module.name`` has run (the filler is removed
    after the test)."""
    def arm(module, name: str) -> None:
        original = getattr(module, name)

        def then_fill(*args, **kwargs):
            result = original(*args, **kwargs)
            fill(small_disk)
            return result

        monkeypatch.setattr(module, name, then_fill)

    yield arm
    (small_disk / "filler").unlink(missing_ok=True)


@pytest.fixture
def full_before_writing(small_disk, monkeypatch):
    """``full_before_writing(run_files)``: the disk fills just before the next run file is written (where no
    step of the command before the write can be hooked)."""
    def arm(module) -> None:
        original = module.atomic_write

        def fill_then_write(*args, **kwargs):
            fill(small_disk)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, "atomic_write", fill_then_write)

    yield arm
    (small_disk / "filler").unlink(missing_ok=True)


def no_temporary_files(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- the writers

@pytest.mark.parametrize("writer", ["json", "figure", "array"])
def test_a_full_disk_keeps_the_previous_file_whole_and_says_so(small_disk, writer):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(np.arange(1000) ** 0.5)
    write = {"json": lambda p: write_json(p, {"history": list(range(20_000))}),
             "figure": lambda p: write_figure(p, fig, dpi=100),
             "array": lambda p: write_array(p, np.ones((1000, 2), np.float32))}[writer]
    path = small_disk / f"out.{ {'json': 'json', 'figure': 'png', 'array': 'npy'}[writer] }"
    path.write_bytes(b"previous")
    filler = fill(small_disk)
    try:
        with pytest.raises(RunFileSaveError, match=r"^disk full while saving the file .*; the previous file is "
                                                   r"kept\. Free about [\d.]+ MiB on that disk") as exc:
            write(path)
        assert exc.value.errno == errno.ENOSPC
        assert path.read_bytes() == b"previous" and no_temporary_files(small_disk)
    finally:
        filler.unlink()
        plt.close(fig)
    write(path)  # with room again, the same call writes the file
    assert path.read_bytes() != b"previous" and no_temporary_files(small_disk)


def test_writers_write_what_they_are_given(tmp_path):
    write_json(tmp_path / "a" / "x.json", {"a": [1, 2]}, indent=2)
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"a": [1, 2]}
    write_array(tmp_path / "x.NPY", np.arange(6, dtype=np.float32).reshape(3, 2))
    assert np.load(tmp_path / "x.NPY").tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(TypeError):
        write_json(tmp_path / "bad.json", {"a": object()})
    assert not (tmp_path / "bad.json").exists() and no_temporary_files(tmp_path)


# ----------------------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def disk_run(small_disk):
    """A finished 3-step ring8 run on the small disk."""
    out = small_disk / "run"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "3", "--batch-size", "32", "--g-width",
                 "16", "--d-width", "16", "--quiet"]) == 0
    return out


@pytest.mark.parametrize("name, after", [("config.json", (GANTrainer, "close")),
                                         ("metrics.json", (report, "summarize")),
                                         ("samples.png", (plots, "sample_figure"))])
def test_train_on_a_disk_that_fills_keeps_each_run_file_whole(disk_run, full_after, capsys, name, after):
    before = (disk_run / name).read_bytes()
    steps = load_checkpoint(disk_run / "checkpoint.pt")["step"]  # config.json may be older (the case above)
    full_after(*after)
    capsys.readouterr()
    code = main(["train", "--resume", str(disk_run / "checkpoint.pt"), "--out", str(disk_run), "--steps",
                 str(steps + 1), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and re.search(DISK_FULL_LINE.format(name=name), err)
    assert (disk_run / name).read_bytes() == before and no_temporary_files(disk_run)
    if name.endswith(".json"):
        json.loads(before)


def test_evaluate_and_sample_on_a_disk_that_fills_keep_the_previous_file(disk_run, full_after, full_before_writing,
                                                                        capsys):
    out = disk_run.parent / "eval.json"
    assert main(["evaluate", "--checkpoint", str(disk_run / "checkpoint.pt"), "--n", "200", "--out", str(out)]) == 0
    npy = disk_run.parent / "s.npy"
    assert main(["sample", "--checkpoint", str(disk_run / "checkpoint.pt"), "--n", "10", "--out", str(npy)]) == 0
    before_eval, before_npy = out.read_bytes(), npy.read_bytes()
    full_after(report, "summarize")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(disk_run / "checkpoint.pt"), "--n", "200", "--out", str(out)]) == 2
    assert re.search(DISK_FULL_LINE.format(name="eval.json"), capsys.readouterr().err)
    full_before_writing(run_files)
    assert main(["sample", "--checkpoint", str(disk_run / "checkpoint.pt"), "--n", "10", "--out", str(npy)]) == 2
    assert re.search(DISK_FULL_LINE.format(name="s.npy"), capsys.readouterr().err)
    assert out.read_bytes() == before_eval and npy.read_bytes() == before_npy
    assert no_temporary_files(disk_run.parent)


def test_a_png_grid_on_a_disk_that_fills_keeps_the_previous_file(small_disk, full_before_writing, capsys):
    png = small_disk / "grid.PNG"
    png.write_bytes(b"previous")
    full_before_writing(run_files)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", "pretrained:fashion-recipe", "--n", "16", "--out", str(png)]) == 2
    assert re.search(DISK_FULL_LINE.format(name="grid.PNG"), capsys.readouterr().err)
    assert png.read_bytes() == b"previous"


def test_overwrite_removes_every_file_of_the_earlier_run_its_evaluation_too(tmp_path):
    out = tmp_path / "o"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "2", "--batch-size", "32", "--g-width",
                 "16", "--d-width", "16", "--quiet"]) == 0
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--n", "200"]) == 0
    assert json.loads((out / "evaluation.json").read_text())["data"] == "ring8"
    assert main(["train", "--data", "grid25", "--out", str(out), "--steps", "2", "--batch-size", "32", "--g-width",
                 "16", "--d-width", "16", "--overwrite", "--quiet"]) == 0
    assert not (out / "evaluation.json").exists()
    assert json.loads((out / "config.json").read_text())["data"] == "grid25"


@pytest.mark.parametrize("command, name", [("evaluate", "metrics.json"), ("evaluate", "config.json"),
                                           ("sample", "samples.png"), ("sample", "SAMPLES.PNG")])
def test_sample_and_evaluate_refuse_to_overwrite_a_runs_own_files(disk_run, capsys, command, name):
    target = disk_run / name
    before = target.read_bytes() if target.exists() else None
    capsys.readouterr()
    assert main([command, "--checkpoint", str(disk_run / "checkpoint.pt"), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "of the run in" in err and "which this would replace; choose another file name" in err, err
    assert (target.read_bytes() if target.exists() else None) == before


def test_evaluate_without_out_on_a_read_only_run_names_the_default_and_the_flag(disk_run, monkeypatch, capsys):
    import course_lib.rundir as rundir

    real = os.statvfs
    monkeypatch.setattr(rundir.os, "statvfs", lambda p: os.statvfs_result(
        (*real(p)[:8], real(p).f_flag | os.ST_RDONLY, real(p)[9])))
    assert main(["evaluate", "--checkpoint", str(disk_run / "checkpoint.pt"), "--n", "200"]) == 2
    err = capsys.readouterr().err
    assert "evaluate writes its result beside the checkpoint by default" in err and "pass --out FILE" in err
    assert "--out '" not in err  # no flag the user never gave


def test_sample_png_of_a_points_model_is_refused_before_generating(disk_run, no_sampling, capsys):
    assert main(["sample", "--checkpoint", str(disk_run / "checkpoint.pt"), "--out",
                 str(disk_run.parent / "U01.PNG")]) == 2
    assert "a .png grid needs an image model" in capsys.readouterr().err
