"""Configs hold plain values: NumPy and 0-dim tensor numbers become int / float / bool (what cannot be converted
exactly is refused), so every checkpoint the course writes loads; the step count stays within the counter's
range."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.checkpoint import STEP_MAX, load_checkpoint
from course_lib.cli import main
from course_lib.config import TrainConfig
from course_lib.train import GANTrainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NUMPY_CHANGES = dict(steps=np.int64(3), batch_size=np.int64(32), seed=np.int64(1), g_width=np.int32(16),
                     d_width=torch.tensor(16), lr_g=np.float32(1e-3), lr_d=torch.tensor(2e-3, dtype=torch.float64),
                     spectral_norm=np.bool_(True), betas=(np.float64(0.5), torch.tensor(0.9)),
                     checkpoint_every=np.uint8(2))


def test_numpy_and_0_dim_tensor_numbers_become_python_numbers():
    cfg = TrainConfig.for_data("ring8", **NUMPY_CHANGES)
    for name in ("steps", "batch_size", "seed", "g_width", "d_width", "checkpoint_every"):
        assert type(getattr(cfg, name)) is int, name
    assert type(cfg.lr_g) is float and cfg.lr_g == float(np.float32(1e-3)) and cfg.lr_d == 2e-3
    assert cfg.spectral_norm is True and cfg.betas == (0.5, float(torch.tensor(0.9))) and \
        all(type(b) is float for b in cfg.betas)


def test_a_sweep_over_numpy_values_saves_checkpoints_that_load_and_resume(tmp_path, ring):
    for steps in np.arange(2, 4):
        out = tmp_path / f"s{steps}"
        cfg = TrainConfig.for_data("ring8", **{**NUMPY_CHANGES, "steps": steps})
        GANTrainer(cfg, dataset=ring, out_dir=out, verbose=False).fit()
        state = load_checkpoint(out / "checkpoint.pt")
        assert state["step"] == steps and state["config"]["steps"] == steps
        resumed = GANTrainer.from_checkpoint(out / "checkpoint.pt", dataset=ring, verbose=False, steps=steps + 1)
        resumed.fit()
        assert resumed.step == steps + 1


def test_a_numpy_value_set_after_construction_is_converted_when_the_trainer_starts(tmp_path, ring):
    cfg = TrainConfig.for_data("ring8", steps=2, batch_size=32, g_width=16, d_width=16)
    cfg.steps, cfg.seed = np.int64(2), np.int64(5)
    GANTrainer(cfg, dataset=ring, out_dir=tmp_path, verbose=False).fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["seed"] == 5


@pytest.mark.parametrize("change, pattern", [
    ({"lr_g": np.longdouble("0.1")}, r"lr_g=.* \(numpy\.longdouble\) cannot be converted exactly to a Python "
                                     r"float or int; pass float\(value\)"),
    ({"steps": np.float64(3.5)}, r"steps must be a positive integer, got 3\.5"),
    ({"steps": torch.tensor([3, 4])}, r"steps must be a positive integer, got tensor"),
    ({"lr_g": np.complex128(1e-3)}, r"lr_g=.*complex.* cannot be converted exactly"),
    ({"steps": STEP_MAX + 1}, r"steps must be a positive integer of at most 2\*\*63 - 1 \(the step counter's "
                              r"range\), got 9223372036854775808"),
])
def test_what_cannot_be_converted_exactly_or_counted_is_refused(change, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        TrainConfig.for_data("ring8", **change)


def test_steps_beyond_the_step_counter_are_refused_by_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--steps", "99999999999999999999999", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "--steps: expected a positive integer of at most 2**63 - 1 (the step counter's range), got " \
        "'99999999999999999999999'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
