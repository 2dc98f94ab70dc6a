"""Checkpoint files from someone else: a file that would run code when unpickled (zip or legacy torch format, raw
pickle protocol 2 or 5) is refused by every loader (load_checkpoint, GANTrainer.from_checkpoint, load_generator,
the CLI) with a message naming the forbidden object, and nothing in it runs."""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import pytest
import torch

from course_lib import checkpoint as ckpt_mod
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.cli import main
from course_lib.train import GANTrainer, load_generator

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _evil_zip(path: Path, payload: object, state: dict) -> None:
    torch.save({**state, "G": payload}, path)


def _evil_legacy(path: Path, payload: object, state: dict) -> None:
    torch.save({**state, "D": payload}, path, _use_new_zipfile_serialization=False)


def _evil_raw_pickle(path: Path, payload: object, state: dict) -> None:
    path.write_bytes(pickle.dumps({"format": ckpt_mod.FORMAT, "version": 1, "x": payload},
                                  protocol=2))


def _evil_pickle_v5(path: Path, payload: object, state: dict) -> None:
    """Protocol 5 is refused even earlier (at an opcode), before the GLOBAL is reached."""
    path.write_bytes(pickle.dumps({"format": ckpt_mod.FORMAT, "version": 1, "x": payload},
                                  protocol=5))


LOADERS = {
    "load_checkpoint": lambda p: load_checkpoint(p),
    "from_checkpoint": lambda p: GANTrainer.from_checkpoint(p, verbose=False),
    "load_generator": lambda p: load_generator(p),
    "cli sample": lambda p: main(["sample", "--checkpoint", str(p), "--out", str(p.with_suffix(".npy"))]),
}


@pytest.mark.parametrize("craft", [_evil_zip, _evil_legacy, _evil_raw_pickle, _evil_pickle_v5])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(craft, loader, saved_runs, runs_code, tmp_path,
                                                                      capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "shared_by_someone.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        craft(evil, runs_code(str(marker)), saved_runs.state)
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
