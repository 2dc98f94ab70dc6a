"""The training loop: learning, history, n_critic, EMA, callbacks, checkpoints and exact resume; the step
functions d_step / g_step; the config's validation table; the one resume rule. (A NaN loss: test_nonfinite.py;
resuming after Ctrl-C or a kill: test_resume.py.)"""
import dataclasses
import json

import pytest
import torch

from course_lib import data, losses, metrics, streams, utils
from course_lib import train as train_mod
from course_lib.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint
from course_lib.config import MODEL_FIELDS, RESUMABLE_FIELDS
from course_lib.train import GANTrainer, ResumeConflictError, TrainConfig, load_generator

from conftest import make_small_config as small  # tests/ is on sys.path: the one small config


def nearest_distance(x, centres):
    return torch.cdist(x.double(), centres.double()).min(1).values.mean().item()


def test_short_ring8_run_improves_the_metrics():
    cfg = TrainConfig.for_data("ring8", steps=600, device="cpu", seed=0)
    trainer = GANTrainer(cfg, verbose=False)
    ds = trainer.dataset
    before = metrics.mode_metrics(trainer.sample(2500), ds.centres, ds.std)
    d_before = nearest_distance(trainer.sample(2500), ds.centres)
    trainer.fit()
    after = metrics.mode_metrics(trainer.sample(2500), ds.centres, ds.std)
    d_after = nearest_distance(trainer.sample(2500), ds.centres)
    assert d_after < 0.5 * d_before
    assert after["high_quality"] > before["high_quality"] + 0.2
    assert after["modes"] >= before["modes"] + 2


def test_history_records_every_step_and_d_outputs_are_probabilities():
    trainer = GANTrainer(small(), verbose=False)
    hist = trainer.fit()
    assert set(hist) >= {"d_loss", "g_loss", "d_real", "d_fake", "penalty"}
    assert all(len(v) == 30 for v in hist.values()) and trainer.step == 30
    assert all(0 <= v <= 1 for v in hist["d_real"] + hist["d_fake"])


def test_fit_continues_and_extra_steps():
    trainer = GANTrainer(small(steps=10), verbose=False)
    trainer.fit()
    trainer.fit(steps=5)
    assert trainer.step == 15 and len(trainer.history["g_loss"]) == 15


def test_wgan_gp_takes_n_critic_discriminator_steps():
    trainer = GANTrainer(small(loss="wgan-gp", steps=4), verbose=False)
    trainer.fit()
    assert trainer.batches_drawn == 4 * 5 and all(p > 0 for p in trainer.history["penalty"])


def test_r1_and_label_smoothing_and_spectral_norm_run():
    trainer = GANTrainer(small(r1_gamma=1.0, label_smoothing=0.1, spectral_norm=True, steps=5), verbose=False)
    trainer.fit()
    assert all(torch.isfinite(torch.tensor(v)).all() for v in trainer.history.values())


def test_callbacks_are_called_on_schedule():
    calls = []
    trainer = GANTrainer(small(steps=25, callback_every=10), callbacks=[lambda t: calls.append(t.step)],
                         verbose=False)
    trainer.fit()
    assert calls == [10, 20, 25]


def test_ema_generator_differs_and_is_used_for_sampling():
    trainer = GANTrainer(small("digits", ema_decay=0.9, steps=20), verbose=False)
    trainer.fit()
    ema = torch.cat([p.flatten() for p in trainer.G_ema.parameters()])
    raw = torch.cat([p.flatten() for p in trainer.G.parameters()])
    assert not torch.equal(ema, raw)
    z = trainer.fixed_noise[:4].cpu()
    assert torch.equal(trainer.sample(4, noise=z), trainer.sample(4, noise=z, use_ema=True))
    assert not torch.equal(trainer.sample(4, noise=z, use_ema=False), trainer.sample(4, noise=z))
    x = trainer.sample(10)
    assert x.shape == (10, 1, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_conditional_training_and_sampling_by_class():
    trainer = GANTrainer(small("digits", conditional=True, steps=5), verbose=False)
    trainer.fit()
    x = trainer.sample(6, labels=torch.tensor([0, 1, 2, 3, 4, 5]))
    assert x.shape == (6, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels must be .*\[0, 10\)"):
        trainer.sample(6, labels=torch.tensor([0, 1, 2, 3, 4, 10]))


def test_sampling_does_not_change_the_course_of_training():
    a = GANTrainer(small(steps=20), verbose=False)
    a.fit(steps=10)
    a.sample(100)
    a.fit()
    b = GANTrainer(small(steps=20), verbose=False)
    b.fit()
    assert a.history == b.history


def states_equal(a: GANTrainer, b: GANTrainer) -> None:
    for m1, m2 in ((a.G, b.G), (a.D, b.D)):
        for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
            assert torch.equal(v1, v2), k
    if a.G_ema is not None:
        for v1, v2 in zip(a.G_ema.state_dict().values(), b.G_ema.state_dict().values()):
            assert torch.equal(v1, v2)
    assert a.history == b.history and a.step == b.step


# ring8 and unconditional digits with EMA, resumed after a Ctrl-C: tests/test_resume.py; here the cases it lacks
@pytest.mark.parametrize("name, extra", [("digits", {"ema_decay": 0.99, "conditional": True}),
                                         ("ring8", {"loss": "wgan-gp", "steps": 12})])
def test_resume_equals_uninterrupted_run(tmp_path, name, extra):
    cfg = small(name, **extra)
    full = GANTrainer(cfg, verbose=False)
    full.fit()
    first = GANTrainer(cfg, out_dir=tmp_path, verbose=False)
    first.fit(steps=cfg.steps // 2)
    first.save(tmp_path / "checkpoint.pt")
    resumed = GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt", out_dir=tmp_path, verbose=False)
    assert resumed.step == cfg.steps // 2
    resumed.fit()
    states_equal(full, resumed)
    assert torch.equal(full.sample(50), resumed.sample(50))


def test_linear_lr_schedule_decays_to_zero_over_the_run_and_constant_keeps_the_rate():
    cfg = small("ring8", lr_schedule="linear", steps=10, lr_g=1e-3, lr_d=2e-3)
    assert [cfg.lr_factor(s) for s in (0, 5, 9)] == pytest.approx([1.0, 0.5, 0.1])
    assert cfg.lr_factor(10) == cfg.lr_factor(50) == pytest.approx(0.1)  # past the plan: the last step's rate
    trainer = GANTrainer(cfg, verbose=False)
    seen = []
    trainer.callbacks.append(lambda t: seen.append((t.opt_G.param_groups[0]["lr"], t.opt_D.param_groups[0]["lr"])))
    trainer.config.callback_every = 1
    trainer.fit()
    assert seen[0] == pytest.approx((1e-3, 2e-3)) and seen[-1] == pytest.approx((1e-4, 2e-4))
    assert all(a[0] > b[0] for a, b in zip(seen, seen[1:]))
    const = GANTrainer(small("ring8", lr_schedule="constant", steps=3), verbose=False)
    const.fit()
    assert const.opt_G.param_groups[0]["lr"] == const.config.lr_g


def test_lazy_r1_is_applied_every_kth_step_with_k_times_the_weight():
    every = GANTrainer(small("ring8", r1_gamma=1.0, r1_every=1, steps=6), verbose=False)
    lazy = GANTrainer(small("ring8", r1_gamma=1.0, r1_every=3, steps=6), verbose=False)
    every.fit()
    lazy.fit()
    pen = lazy.history["penalty"]
    assert [p > 0 for p in pen] == [True, False, False, True, False, False]
    assert pen[0] == pytest.approx(3 * every.history["penalty"][0], rel=1e-5)  # same start, same first batch
    with pytest.raises(ValueError, match="r1_every"):
        small("ring8", r1_every=0)


def test_checkpoint_round_trip_and_contents(tmp_path):
    trainer = GANTrainer(small("digits", ema_decay=0.99), out_dir=tmp_path, verbose=False)
    trainer.fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 30 and state["version"] == FORMAT_VERSION
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "rng", "history", "config"} <= set(state)
    G, cfg, info = load_generator(tmp_path / "checkpoint.pt")
    assert cfg == trainer.config and info["sample_shape"] == [1, 8, 8]
    z = trainer.fixed_noise[:3].cpu()
    assert torch.allclose(G(z), trainer.sample(3, noise=z))
    json.dumps(cfg.to_dict())  # config is JSON-serialisable


def test_checkpoint_mismatch_is_named(tmp_path):
    trainer = GANTrainer(small("digits"), verbose=False)
    trainer.save(tmp_path / "c.pt")
    other = GANTrainer(small("digits", latent_dim=32), verbose=False)
    with pytest.raises(CheckpointError, match="latent_dim: checkpoint.* has 16, the model asked for has 32"):
        other.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    with pytest.raises(CheckpointError, match="cannot change .*latent_dim"):
        GANTrainer.from_checkpoint(tmp_path / "c.pt", latent_dim=32)


def test_batch_larger_than_dataset_and_world_size_errors():
    ds = data.load("digits", image_size=8).split("test")
    with pytest.raises(ValueError, match="larger than the dataset"):
        GANTrainer(small("digits", batch_size=1000), dataset=ds, verbose=False)


@pytest.mark.parametrize("changes, match", [
    ({"loss": "bce"}, "valid losses"), ({"model": "unet"}, "valid models"), ({"steps": 0}, "steps must be"),
    ({"lr_g": -1.0}, "lr_g must be"), ({"amp": "fp8"}, "amp mode"), ({"image_size": 28}, "power of two"),
    ({"model": "dcgan"}, "holds points"), ({"label_smoothing": 0.1, "loss": "hinge"}, "cross-entropy"),
    ({"ema_decay": 1.5}, "ema_decay"), ({"nan_policy": "ignore"}, "nan_policy"), ({"seed": -1}, "seed"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
])
def test_config_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.for_data("ring8", **changes)


def test_unknown_config_field():
    with pytest.raises(TypeError, match="unknown TrainConfig field"):
        TrainConfig.for_data("ring8", learning_rate=1e-3)


def test_progress_bar_shows_by_default_and_respects_tqdm_disable(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    GANTrainer(small(steps=3), verbose=False).fit(progress=True)
    assert "ring8 GAN" in capsys.readouterr().err  # the tqdm bar, on stderr
    monkeypatch.setenv("TQDM_DISABLE", "1")  # what the test configuration sets for every notebook kernel
    GANTrainer(small(steps=3), verbose=False).fit(progress=True)
    assert "ring8 GAN" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- d_step and g_step

def _plain(name="ring8", **kw):
    """A config whose step is the plain GAN: no penalty, no EMA, constant learning rates."""
    return small(name, r1_gamma=0.0, ema_decay=None, lr_schedule="constant", **kw)


def test_d_step_updates_only_d_and_g_step_updates_only_g():
    trainer = GANTrainer(_plain(), verbose=False)
    G, D = trainer.G, trainer.D
    real, _ = trainer._real_batch()
    z, _ = trainer._noise(64)
    g_before = [p.detach().clone() for p in G.parameters()]
    d_before = [p.detach().clone() for p in D.parameters()]
    out = train_mod.d_step(G, D, trainer.opt_D, "nonsaturating", real, z)
    assert set(out) == {"d_loss", "d_real", "d_fake", "penalty", "ok"}
    assert out.pop("ok") is None  # no guard: every update is kept
    assert all(not v.requires_grad and v.dim() == 0 for v in out.values())
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1 and out["penalty"] == 0
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))  # G untouched ...
    assert all(p.grad is None for p in G.parameters())                      # ... not even its .grad
    assert not all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    d_after = [p.detach().clone() for p in D.parameters()]
    g = train_mod.g_step(G, D, trainer.opt_G, "nonsaturating", z)
    assert set(g) == {"g_loss", "ok"} and g["g_loss"] > 0 and g["ok"] is None
    assert not all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d_after, D.parameters()))  # only opt_G stepped


def test_g_step_computes_no_gradient_for_d_and_updates_g_as_the_unfrozen_step():
    """D is a fixed function in the generator's step: its weights get no gradient (d_step's stay as they were),
    are trainable again afterwards, and G's update is the same number for number as with D's gradients."""
    a, b = GANTrainer(_plain(), verbose=False), GANTrainer(_plain(), verbose=False)
    real, _ = a._real_batch()
    z, _ = a._noise(64)
    for t in (a, b):
        train_mod.d_step(t.G, t.D, t.opt_D, "nonsaturating", real, z)
    d_grads = [p.grad.clone() for p in a.D.parameters()]
    train_mod.g_step(a.G, a.D, a.opt_G, "nonsaturating", z)
    assert all(torch.equal(g, p.grad) for g, p in zip(d_grads, a.D.parameters()))  # no gradient added
    assert all(p.requires_grad for p in a.D.parameters())
    loss = losses.g_loss_nonsaturating(b.D(b.G(z)))            # the same step by hand, D not frozen
    b.opt_G.zero_grad()
    loss.backward()
    b.opt_G.step()
    assert all(p.grad is not None for p in b.D.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.G.parameters(), b.G.parameters()))


def test_frozen_restores_only_what_it_froze_even_after_an_error():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    net[1].bias.requires_grad_(False)                       # frozen before: stays frozen
    with pytest.raises(RuntimeError, match="inside"):
        with utils.frozen(net):
            assert not any(p.requires_grad for p in net.parameters())
            raise RuntimeError("inside")
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, False]


@pytest.mark.parametrize("name", ["ring8", "digits"])
def test_train_step_is_d_step_then_g_step(name):
    """The trainer's step is exactly the library's d_step and g_step on its batches (same numbers)."""
    cfg = _plain(name, conditional=True) if name == "digits" else _plain(name)
    a, b = GANTrainer(cfg, verbose=False), GANTrainer(cfg, verbose=False)
    for _ in range(3):
        stats = a.train_step()
        real, y = b._real_batch()
        z, _ = b._noise(b.local_batch)
        d = train_mod.d_step(b.G, b.D, b.opt_D, b.loss, real, z, y)
        z, y = b._noise(b.local_batch)
        g = train_mod.g_step(b.G, b.D, b.opt_G, b.config.loss, z, y)
        assert stats == {"d_loss": d["d_loss"].item(), "g_loss": g["g_loss"].item(), "d_real": d["d_real"].item(),
                         "d_fake": d["d_fake"].item(), "penalty": 0.0}
    for p, q in zip(list(a.G.parameters()) + list(a.D.parameters()), list(b.G.parameters()) + list(b.D.parameters())):
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------- the config table

def test_every_config_field_has_a_row_in_the_table_and_help():
    for f in dataclasses.fields(TrainConfig):
        assert callable(f.metadata["check"]) and f.metadata["help"], f.name
    assert MODEL_FIELDS == ("data", "image_size", "model", "latent_dim", "latent_codes", "g_width", "d_width", "depth",
                            "conditional", "spectral_norm", "diffusion_steps", "noise_schedule")


@pytest.mark.parametrize("name", ["fallback", "conditional", "spectral_norm", "compile", "channels_last",
                                  "cudnn_benchmark"])
def test_string_booleans_are_refused(name):
    with pytest.raises(TypeError, match=f"{name} must be True or False.*got 'no' \\(str\\)"):
        TrainConfig.for_data("digits", **{name: "no"})


@pytest.mark.parametrize("changes, match", [
    ({"r1_gamma": True}, "r1_gamma must be a non-negative number, got True"),
    ({"lr_g": True}, "lr_g must be a positive finite number, got True"),
    ({"steps": True}, "steps must be a positive integer, got True"),
    ({"label_smoothing": False}, r"label_smoothing must be a number in \[0, 1\), got False"),
    ({"betas": 0.5}, r"betas must be two numbers in \[0, 1\)"),
    ({"betas": (True, 0.9)}, r"betas must be two numbers"),
    ({"seed": 2**63}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ({"split": "val"}, "unknown split 'val'; valid choices are train, test, all"),
    ({"n_critic": 0}, "n_critic must be a positive integer or None"),
])
def test_numbers_must_not_be_bools_and_ranges_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.for_data("ring8", **changes)


def test_device_must_be_text():
    with pytest.raises(TypeError, match="device must be a string such as 'auto', 'cpu'"):
        TrainConfig.for_data("ring8", device=1)


def test_the_largest_seed_trains_and_samples():
    trainer = GANTrainer(small(steps=2, seed=2**63 - 1), verbose=False)
    trainer.fit(progress=False)
    assert trainer.sample(5).shape == (5, 2)


def test_loss_defaults_are_resolved_once_and_round_trip_through_json():
    cfg = TrainConfig.for_data("ring8", loss="wgan-gp")
    assert (cfg.n_critic, cfg.gp_weight) == (5, 10.0)
    assert (TrainConfig.for_data("ring8").n_critic, TrainConfig.for_data("ring8").gp_weight) == (1, 0.0)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = {**cfg.to_dict(), "n_critic": None, "gp_weight": None}  # a checkpoint's config before resolution
    assert TrainConfig.from_dict(old) == cfg
    assert TrainConfig.for_data("ring8", loss="wgan-gp", n_critic=2, gp_weight=0.0).n_critic == 2


# ----------------------------------------------------------------------------- the resume rule

@pytest.fixture
def ring_checkpoint(tmp_path):
    trainer = GANTrainer(small(steps=6), verbose=False)
    trainer.fit(progress=False)
    return trainer.save(tmp_path / "c.pt")


@pytest.mark.parametrize("changes, fields", [
    ({"seed": 5}, ["seed"]), ({"loss": "hinge"}, ["loss"]), ({"lr_g": 1e-3, "batch_size": 32}, ["batch_size", "lr_g"]),
    ({"ema_decay": None}, ["ema_decay"]), ({"data": "grid25"}, ["data"]), ({"fallback": True}, ["fallback"]),
])
def test_resume_refuses_every_field_outside_the_resumable_ones(ring_checkpoint, changes, fields):
    with pytest.raises(ResumeConflictError, match=r"cannot change .* when resuming") as exc:
        GANTrainer.from_checkpoint(ring_checkpoint, verbose=False, **changes)
    assert exc.value.fields == fields and isinstance(exc.value, CheckpointError)


def test_resume_accepts_equal_values_and_the_resumable_fields(ring_checkpoint):
    assert set(RESUMABLE_FIELDS) == {"steps", "device", "amp", "channels_last", "compile", "cudnn_benchmark",
                                     "checkpoint_every", "callback_every", "log_every", "nan_policy", "sync_bn"}
    tr = GANTrainer.from_checkpoint(ring_checkpoint, verbose=False, seed=0, loss="nonsaturating", betas=[0.5, 0.9],
                                    steps=8, amp="bf16", compile=False, checkpoint_every=3, nan_policy="skip")
    assert (tr.step, tr.config.steps, tr.amp_mode, tr.config.checkpoint_every) == (6, 8, "bf16", 3)


def test_resume_target_must_lie_beyond_the_checkpoint(ring_checkpoint):
    for steps in (2, 6):
        with pytest.raises(ValueError, match=f"steps={steps} is not beyond the step 6 .* give more than 6"):
            GANTrainer.from_checkpoint(ring_checkpoint, verbose=False, steps=steps)
    assert GANTrainer.from_checkpoint(ring_checkpoint, verbose=False).step == 6  # loading a finished run is fine


def test_resume_refuses_other_data_of_the_same_shape(ring_checkpoint):
    with pytest.raises(CheckpointError, match="trained on the data 'ring8', but this dataset is 'grid25'"):
        GANTrainer.from_checkpoint(ring_checkpoint, dataset=data.load("grid25"), verbose=False)


def test_stream_seeds_are_the_documented_formulas():
    assert streams.stream_seed("noise", 3, rank=1) == 3 * 1000 + 1 + 1
    assert streams.stream_seed("resumed", 3, rank=1, step=10) == 3 * 1000 + 2 + 70
    assert streams.stream_seed("fixed", 3) == 3 + 12345
    assert streams.stream_seed("epoch", 3, epoch=2) == 3 * 100_003 + 2
    assert streams.stream_seed("sample", 3, step=4) == 3 * 7919 + 4
    assert 0 <= streams.stream_seed("noise", 2**63 - 1) < 2**63
    with pytest.raises(ValueError, match="unknown random stream 'z'"):
        streams.stream_seed("z", 0)


def test_an_epoch_is_batches_per_epoch_batches():
    """The trainer and ``train --epochs`` count an epoch the same way (``streams.batches_per_epoch``)."""
    tr = GANTrainer(small("digits", batch_size=256), verbose=False)
    k = streams.batches_per_epoch(len(tr.dataset), 256, 1)
    assert k == len(tr.dataset) // 256 == 5  # 1,438 training digits
    for _ in range(k):
        tr._real_batch()
    assert tr._perm_cache[0] == 0
    tr._real_batch()  # the first batch of the next epoch's permutation
    assert tr._perm_cache[0] == 1
    assert streams.batches_per_epoch(1000, 64, 4) == (1000 // 4) // 16
