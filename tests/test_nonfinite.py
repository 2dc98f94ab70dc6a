"""Numerical faults: a NaN loss stops training naming the step and the likely causes and keeps the last good
checkpoint; nan_policy='skip' skips and counts; weights that are not finite are never saved; the CLI exits 2."""
from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from course_lib.checkpoint import load_checkpoint
from course_lib.cli import main
from course_lib.models import build_models
from course_lib.train import GANTrainer, NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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


def poisoned_trainer(ring, cfg, bad_steps, out_dir) -> GANTrainer:
    """A trainer of ``cfg`` on ``ring`` whose discriminator outputs NaN during ``bad_steps``."""
    G, D = build_models("mlp", (2,), cfg.latent_dim, cfg.g_width, cfg.d_width, cfg.depth)
    D = PoisonedD(D, bad_steps)
    trainer = GANTrainer(cfg, dataset=ring, out_dir=out_dir, G=G, D=D, verbose=False)
    D.trainer = trainer
    return trainer


def test_nan_loss_stops_naming_step_and_causes_and_keeps_the_last_good_checkpoint(ring, ring_config, tmp_path):
    trainer = poisoned_trainer(ring, ring_config(checkpoint_every=3), {10}, tmp_path)
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


def test_nan_policy_skip_skips_and_counts_the_bad_steps(ring, ring_config, tmp_path):
    trainer = poisoned_trainer(ring, ring_config(nan_policy="skip", steps=12), {4, 6, 7}, tmp_path)
    trainer.fit()
    assert trainer.step == 12 and trainer.skipped_steps == 3
    bad = [i + 1 for i, v in enumerate(trainer.history["d_loss"]) if not math.isfinite(v)]
    assert bad == [4, 6, 7]
    for model in (trainer.G, trainer.D):
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_checkpoint(tmp_path / "checkpoint.pt")["skipped_steps"] == 3


def test_broken_weights_are_never_saved_over_a_good_checkpoint(digits16, digits_config, tmp_path):
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


def test_a_nan_before_the_first_checkpoint_says_none_was_written_yet(ring, ring_config, tmp_path):
    trainer = poisoned_trainer(ring, ring_config(checkpoint_every=100), {2}, tmp_path)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    msg = str(err.value)
    assert "no checkpoint has been written yet" in msg and str(tmp_path) in msg and "pass out_dir" not in msg
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_a_nan_in_the_very_first_update_leaves_weights_and_optimisers_as_they_were(ring, ring_config, policy):
    """Before its first step an optimiser has no state to keep aside: the step runs, and is undone (weights put
    back, the state it created dropped) when the guard's flag is false."""
    trainer = poisoned_trainer(ring, ring_config(nan_policy=policy, log_every=1000), {1}, None)
    before = [p.detach().clone() for m in (trainer.G, trainer.D) for p in m.parameters()]
    trainer.train_step()
    assert not trainer.opt_D.state and not trainer.opt_G.state
    assert all(torch.equal(a, b) for a, b in zip(before, [p for m in (trainer.G, trainer.D) for p in m.parameters()]))
    if policy == "skip":
        trainer.fit(steps=3, progress=False)
        assert trainer.skipped_steps == 1 and trainer.opt_D.state
        assert all(torch.isfinite(p).all() for m in (trainer.G, trainer.D) for p in m.parameters())
    else:
        with pytest.raises(NonFiniteLossError, match=r"training stopped at step 1\b"):
            trainer.fit(progress=False)
        assert trainer.step == 0
