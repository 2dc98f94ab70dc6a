"""The training loop: learning, history, n_critic, EMA, callbacks, checkpoints and exact resume."""
import json

import pytest
import torch

from course_lib import data, metrics
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.train import GANTrainer, NonFiniteLossError, TrainConfig, load_generator


def small(data_name="ring8", **kw):
    base = dict(steps=30, batch_size=64, checkpoint_every=10, device="cpu")
    if data_name == "digits":
        base.update(image_size=8, g_width=8, d_width=8, latent_dim=16, batch_size=32, conditional=False)
    base.update(kw)
    return TrainConfig.for_data(data_name, **base)


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


@pytest.mark.parametrize("name, extra", [("ring8", {}), ("digits", {"ema_decay": 0.99}),
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
    assert state["step"] == 30 and state["version"] == 1
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


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
    cfg = small(steps=40, checkpoint_every=10)
    trainer = GANTrainer(cfg, out_dir=tmp_path, verbose=False)

    def poison(t):
        if t.step == 20:  # from now on D returns NaN
            t.D.net[-1].bias.data.fill_(float("nan"))
    trainer.callbacks = [poison]
    trainer.config.callback_every = 1
    with pytest.raises(NonFiniteLossError, match=r"step 21: .*learning rate.*amp"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20


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
