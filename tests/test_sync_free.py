"""The training step runs without host synchronisation: statistics stay on the device until a read (every
``log_every`` steps, callbacks, checkpoints, the end), and a NaN/inf masks the update by a device flag. On a CPU
the reads are counted (``speed.count_host_syncs``); on CUDA ``set_sync_debug_mode("error")`` is the proof."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course_lib import speed
from course_lib.checkpoint import load_checkpoint
from course_lib.models import build_models
from course_lib.train import GANTrainer, NonFiniteLossError, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
ROOT = Path(__file__).resolve().parents[1]

from test_nonfinite import PoisonedD  # noqa: E402  (tests/ is on sys.path: the one poisoned discriminator)


def _ring_trainer(ring, cfg, bad_steps=(), **kw) -> GANTrainer:
    torch.manual_seed(cfg.seed)  # the same initial weights for every trainer of cfg
    G, D = build_models("mlp", (2,), cfg.latent_dim, cfg.g_width, cfg.d_width, cfg.depth)
    D = PoisonedD(D, set(bad_steps))
    trainer = GANTrainer(cfg, dataset=ring, G=G, D=D, verbose=False, **kw)
    D.trainer = trainer
    return trainer


def _weights(tr: GANTrainer) -> list[torch.Tensor]:
    return [t.detach().clone() for m in (tr.G, tr.D) for t in m.state_dict().values()]


@pytest.mark.parametrize("changes", [dict(), dict(loss="wgan-gp"), dict(ema_decay=0.9, r1_gamma=1.0, r1_every=2),
                                     dict(nan_policy="skip", lr_schedule="linear")])
def test_steady_state_steps_read_nothing_and_only_log_points_read(ring, ring_config, changes):
    tr = GANTrainer(ring_config(log_every=4, callback_every=1000, **changes), dataset=ring, verbose=False)
    tr.train_step()  # the first update of each optimiser creates Adam's state (read once, at the start)
    reads = [speed.count_host_syncs(tr.train_step)["total"] for _ in range(10)]  # steps 2..11
    assert reads == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]  # steps 4 and 8: one read each (the statistics)
    assert len(tr._history["d_loss"]) == 8  # not yet read: steps 9-11 ...
    assert len(tr.history["d_loss"]) == 11  # ... until history is used
    assert all(math.isfinite(v) for v in tr.history["g_loss"])


def test_a_conditional_image_step_with_ema_reads_nothing(digits16, digits_config):
    tr = GANTrainer(digits_config(conditional=True, log_every=100), dataset=digits16, verbose=False)
    tr.train_step()
    r = speed.count_host_syncs(tr.train_step, steps=3)
    assert r["total"] == 0, r["sites"]


def test_history_is_complete_in_callbacks_checkpoints_and_after_fit(ring, ring_config, tmp_path):
    seen = []
    tr = GANTrainer(ring_config(log_every=1000, callback_every=5, checkpoint_every=6, steps=13), dataset=ring,
                    out_dir=tmp_path, callbacks=[lambda t: seen.append((t.step, len(t.history["d_loss"])))],
                    verbose=False)
    history = tr.fit(progress=False)
    assert seen == [(5, 5), (10, 10), (13, 13)]
    assert len(history["d_loss"]) == 13 and len(load_checkpoint(tmp_path / "checkpoint.pt")["history"]["g_loss"]) == 13


def test_stop_names_the_first_bad_step_with_the_weights_before_it(ring, ring_config):
    cfg = ring_config(log_every=8, steps=20, callback_every=1000)
    clean = _ring_trainer(ring, cfg)
    clean.fit(steps=4, progress=False)
    tr = _ring_trainer(ring, cfg, bad_steps={5, 7})
    with pytest.raises(NonFiniteLossError, match=r"training stopped at step 5: the discriminator loss or its "
                                                 r"gradient is nan \(not finite\).*learning rate.*nan_policy='skip'"):
        tr.fit(progress=False)  # steps 5-8 ran (masked) before the read at step 8 found the fault
    assert tr.step == 4 and tr.batches_drawn == clean.batches_drawn
    assert tr.history == clean.history and len(tr.history["d_loss"]) == 4
    for a, b in zip(_weights(tr), _weights(clean)):
        assert torch.equal(a, b)
    for opt_a, opt_b in ((tr.opt_D, clean.opt_D), (tr.opt_G, clean.opt_G)):
        for sa, sb in zip(opt_a.state_dict()["state"].values(), opt_b.state_dict()["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_skip_masks_each_bad_update_and_counts_the_steps_on_the_device(ring, ring_config, capsys):
    tr2 = _ring_trainer(ring, ring_config(nan_policy="skip", log_every=5, steps=10, callback_every=1000), {3, 6})
    tr2.verbose = True
    tr2.fit(progress=False)
    out = capsys.readouterr().out
    assert tr2.step == 10 and tr2.skipped_steps == 2
    assert "step 3: non-finite discriminator loss or gradient, update skipped (1 " in out
    assert "step 6: non-finite discriminator loss or gradient, update skipped (2 skipped so far)" in out
    assert [i + 1 for i, v in enumerate(tr2.history["d_loss"]) if not math.isfinite(v)] == [3, 6]
    assert all(torch.isfinite(w).all() for w in _weights(tr2))


def test_log_every_is_a_config_field_that_may_change_on_resume(ring, ring_config, tmp_path):
    with pytest.raises(ValueError, match=r"log_every must be"):
        TrainConfig.for_data("ring8", log_every=0)
    tr = GANTrainer(ring_config(steps=6, log_every=4), dataset=ring, out_dir=tmp_path, verbose=False)
    tr.fit(progress=False)
    again = GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", dataset=ring, verbose=False, steps=9,
                                       log_every=2)
    assert again.config.log_every == 2 and len(again.history["d_loss"]) == 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_cuda_steady_state_step_has_no_sync(amp):
    cfg = TrainConfig.for_data("digits", steps=100, batch_size=64, image_size=16, g_width=16, d_width=16,
                               conditional=True, ema_decay=0.99, amp=amp, compile=False, log_every=1000,
                               device="cuda")
    tr = GANTrainer(cfg, verbose=False)
    speed.assert_no_cuda_syncs(tr.train_step, steps=20, warmup=2)  # 20 steps: an epoch boundary too
    assert len(tr.history["d_loss"]) == 22 and all(math.isfinite(v) for v in tr.history["d_loss"])


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
torch.set_num_threads(1)
from course_lib.train import GANTrainer, NonFiniteLossError, TrainConfig
policy = sys.argv[1]
tr = GANTrainer(TrainConfig.for_data("ring8", steps=8, batch_size=64, g_width=16, d_width=16,
                                     nan_policy=policy, log_every=4), verbose=False)
penalty = tr._penalty
def poisoned(real, fake, y):  # only rank 1, only step 3: a NaN loss with finite gradients
    p = penalty(real, fake, y)
    return p + float("nan") if tr.rank == 1 and tr.step + 1 == 3 else p
tr._penalty = poisoned
try:
    tr.fit(progress=False)
    print(f"rank {tr.rank} finished step {tr.step} skipped {tr.skipped_steps}", flush=True)
except NonFiniteLossError as exc:
    print(f"rank {tr.rank} stopped at step {tr.step}: {str(exc)[:40]}", flush=True)
vec = torch.cat([p.detach().flatten() for m in (tr.G, tr.D) for p in m.parameters()])
got = [torch.zeros_like(vec) for _ in range(2)]
dist.all_gather(got, vec)
print(f"rank {tr.rank} weight difference {(got[0] - got[1]).abs().max().item()}", flush=True)
tr.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_ddp_ranks_agree_on_a_nan_that_only_one_of_them_sees(tmp_path, policy):
    script = tmp_path / "nan.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               TQDM_DISABLE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), policy]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:  # ranks that decided differently would wait on each other
        pytest.fail(f"torchrun did not finish in 120 s (the ranks disagreed?)\n{exc.stderr}")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    expect = ("stopped at step 2: training stopped at step 3" if policy == "stop" else "finished step 8 skipped 1")
    for rank in (0, 1):
        assert f"rank {rank} {expect}" in text, text[-3000:]
        assert f"rank {rank} weight difference 0.0" in text, text[-3000:]
