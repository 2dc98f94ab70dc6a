"""The DDPM's parts: the noise schedule's closed forms, the forward process, the loss on known cases, the U-Net's
shapes, the samplers (DDIM at eta = 0 deterministic), and the sampling-steps check."""
import math

import pytest
import torch
from torch import nn

from course_lib.diffusion import (ancestral_sample, check_sampling_steps, ddim_sample, ddim_timesteps,
                                  diffusion_loss, diffusion_step, make_schedule, network_evaluations, predict_x0,
                                  q_sample)
from course_lib.unet import UNet, timestep_embedding


class TrueNoise(nn.Module):
    """An oracle that knows x_0: it returns the exact noise of x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps."""

    def __init__(self, schedule, x0):
        super().__init__()
        self.schedule, self.x0 = schedule, x0

    def forward(self, x_t, t):
        abar = self.schedule.at(self.schedule.alpha_bars, t, x_t)
        return (x_t - abar.sqrt() * self.x0) / (1 - abar).sqrt()


class GaussianDataOracle(nn.Module):
    """The best noise prediction for data from N(0, I): E[eps | x_t] = sqrt(1 - abar_t) x_t (bounded samples)."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, x_t, t):
        return (1 - self.schedule.at(self.schedule.alpha_bars, t, x_t)).sqrt() * x_t


class Zero(nn.Module):
    def forward(self, x_t, t):
        return torch.zeros_like(x_t)


def test_linear_schedule_is_ho_et_al_and_alpha_bar_is_the_product():
    s = make_schedule("linear", 1000)
    assert s.T == 1000 and s.betas.dtype == torch.float64
    assert math.isclose(s.betas[0].item(), 1e-4) and math.isclose(s.betas[-1].item(), 0.02)
    assert torch.allclose(torch.diff(s.betas), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))
    for t in (0, 1, 10, 500, 999):
        assert math.isclose(s.alpha_bars[t].item(), math.prod(1 - b for b in s.betas[:t + 1].tolist()),
                            rel_tol=1e-9)
    assert s.alpha_bars[-1] < 1e-4  # x_{T-1} is almost pure noise
    assert (torch.diff(s.alpha_bars) < 0).all()


def test_cosine_schedule_follows_its_closed_form():
    s = make_schedule("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert math.isclose(s.alpha_bars[t].item(), f(t + 1) / f(0), rel_tol=1e-6)
    assert (s.betas > 0).all() and (s.betas <= 0.999).all()
    # the cosine schedule keeps more of the signal halfway than the linear one
    assert s.alpha_bars[500] > make_schedule("linear", 1000).alpha_bars[500]


def test_fewer_steps_scale_the_linear_betas():
    s = make_schedule("linear", 100)
    assert math.isclose(s.betas[0].item(), 1e-3) and math.isclose(s.betas[-1].item(), 0.2)


@pytest.mark.parametrize("bad", [("quadratic", 1000), ("linear", 1), ("linear", 0), ("linear", 2.5)])
def test_bad_schedules_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        make_schedule(*bad)


def test_q_sample_matches_repeated_single_steps():
    """The one-jump forward process q(x_t | x_0) against t + 1 single noising steps
    x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps_s, on 50,000 copies of one x_0 (means and variances to
    within about 4 standard errors)."""
    s = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([0.8, -0.5, 0.0, 1.0], dtype=torch.float64)
    n, t = 50_000, 199
    x = x0.expand(n, 4).clone()
    for step in range(t + 1):
        x = (1 - s.betas[step]).sqrt() * x + s.betas[step].sqrt() * torch.randn(n, 4, generator=g,
                                                                                  dtype=torch.float64)
    abar = s.alpha_bars[t]
    jump = q_sample(s, x0.float().expand(n, 4)[:, None, None], torch.full((n,), t),
                    torch.randn(n, 1, 1, 4, generator=g))[:, 0, 0]
    for samples in (x, jump.double()):
        assert torch.allclose(samples.mean(0), abar.sqrt() * x0, atol=0.02)
        assert torch.allclose(samples.var(0), (1 - abar).expand(4), atol=0.025)


def test_loss_is_zero_for_the_true_noise_and_about_one_for_zero():
    s = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1
    t = torch.randint(1000, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    assert diffusion_loss(TrueNoise(s, x0), s, x0, t, eps).item() < 1e-8
    assert abs(diffusion_loss(Zero(), s, x0, t, eps).item() - 1.0) < 0.05  # E[eps^2] = 1


def test_unet_shapes_and_parameter_count():
    net = UNet(1, 32)
    assert sum(p.numel() for p in net.parameters()) == 566_945
    assert sum(p.numel() for p in UNet(1, 16).parameters()) == 142_673
    small = UNet(1, 8)
    for size in (16, 28, 32):
        x = torch.randn(3, 1, size, size)
        assert small(x, torch.tensor([0, 5, 999])).shape == (3, 1, size, size)
    assert UNet(3, 8)(torch.randn(2, 3, 16, 16), torch.tensor([1, 2])).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="multiple of 4"):
        small(torch.randn(2, 1, 18, 18), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="one step per image"):
        small(torch.randn(2, 1, 16, 16), torch.tensor([1]))
    # an untrained U-Net predicts zero noise: the loss starts near 1
    assert small(torch.randn(2, 1, 16, 16), torch.tensor([1, 2])).abs().max() == 0


def test_timestep_embedding_is_bounded_and_distinct():
    e = timestep_embedding(torch.arange(1000), 32)
    assert e.shape == (1000, 32) and e.abs().max() <= 1
    assert torch.cdist(e, e).add(torch.eye(1000) * 10).min() > 1e-3


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 1).tolist() == [999]
    ts = ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and (torch.diff(ts) < 0).all()
    assert ddim_timesteps(10, 10).tolist() == list(range(9, -1, -1))


def test_samplers_shapes_range_and_ddim_determinism():
    s = make_schedule("linear", 20)
    net = GaussianDataOracle(s)
    x_T = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a = ddim_sample(net, s, (4, 1, 16, 16), steps=5, x_T=x_T)
    b = ddim_sample(net, s, (4, 1, 16, 16), steps=5, x_T=x_T, generator=torch.Generator().manual_seed(9))
    assert a.shape == (4, 1, 16, 16) and a.dtype == torch.float32 and a.abs().max() <= 1
    assert torch.equal(a, b)  # eta = 0: no noise is drawn after x_T
    c = ddim_sample(net, s, (4, 1, 16, 16), steps=5, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(9))
    assert not torch.equal(a, c)
    x = ancestral_sample(net, s, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    y = ancestral_sample(net, s, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 16, 16) and torch.equal(x, y) and x.abs().max() <= 1
    with pytest.raises(ValueError, match="x_T must have shape"):
        ddim_sample(net, s, (4, 1, 16, 16), steps=5, x_T=x_T[:2])
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(net, s, (4, 1, 16, 16), steps=5, eta=2.0)


def test_ancestral_sampling_without_clipping_is_algorithm_2():
    s = make_schedule("linear", 10)
    net = GaussianDataOracle(s)
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    x, g = x_T.clone(), torch.Generator().manual_seed(5)
    for t in range(9, -1, -1):  # Ho et al. (2020), Algorithm 2, sigma_t^2 = beta_t
        eps = net(x, torch.full((3,), t))
        x = (x - s.betas[t] / (1 - s.alpha_bars[t]).sqrt() * eps) / s.alphas[t].sqrt()
        if t > 0:
            x = x + s.betas[t].sqrt() * torch.randn(x.shape, generator=g)
    got = ancestral_sample(net, s, x_T.shape, x_T=x_T, generator=torch.Generator().manual_seed(5), clip=False)
    assert torch.allclose(got, x.clamp(-1, 1), atol=1e-5)


def test_clipping_keeps_the_predicted_clean_image_in_range():
    s = make_schedule("linear", 1000)
    x_t, eps = torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)
    x0, eps_back = predict_x0(s, x_t, 999, eps)
    assert x0.abs().max() == 1 and torch.allclose(s.alpha_bars[999].sqrt() * x0 + (1 - s.alpha_bars[999]).sqrt()
                                                  * eps_back, x_t)
    assert predict_x0(s, x_t, 999, eps, clip=False)[0].min() > 100


def test_ddim_with_every_step_and_eta_zero_inverts_an_oracle():
    """With a network that knows x_0, one DDIM step from x_{T-1} already returns x_0 (up to the clamp)."""
    s = make_schedule("linear", 50)
    x0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 1.8 - 0.9
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for steps in (1, 7, 50):
        assert torch.allclose(ddim_sample(TrueNoise(s, x0), s, x0.shape, steps, x_T=x_T), x0, atol=1e-4)


@pytest.mark.parametrize("steps, error, match", [(0, ValueError, "not a positive"), (-3, ValueError, "positive"),
                                                 (1001, ValueError, "beyond the training schedule's T = 1000"),
                                                 (2.0, TypeError, "integer"), (True, TypeError, "integer")])
def test_sampling_steps_out_of_range_are_refused(steps, error, match):
    with pytest.raises(error, match=match):
        check_sampling_steps("--sampling-steps", steps, 1000)


def test_network_evaluations():
    s = make_schedule("linear", 1000)
    assert network_evaluations(s) == 1000 and network_evaluations(s, 50) == 50


def test_a_few_dozen_steps_reduce_the_loss_on_a_tiny_set():
    torch.manual_seed(0)
    s = make_schedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(64, 1, 16, 16, generator=g) > 0.5).float() * 2 - 1  # 64 fixed binary 16x16 images
    net = UNet(1, 8)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    t = torch.randint(100, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        before = diffusion_loss(net, s, x0, t, eps).item()
    rng = torch.Generator().manual_seed(1)
    for _ in range(25):
        out = diffusion_step(net, opt, s, x0, rng)
        assert out["loss"].dim() == 0 and not out["loss"].requires_grad
    with torch.no_grad():
        after = diffusion_loss(net, s, x0, t, eps).item()
    assert after < 0.75 * before, (before, after)  # about 1.00 -> 0.45


# ----------------------------------------------------------------------------- the trainer, its config, checkpoints

def tiny_ddpm_config(**changes):
    """A DDPM on 16x16 digits with an 8-wide U-Net (36,137 parameters) and T = 50: a step takes milliseconds."""
    from course_lib.config import TrainConfig

    base = dict(steps=6, batch_size=16, g_width=8, diffusion_steps=50, lr_g=2e-3, ema_decay=0.9, log_every=2,
                checkpoint_every=3, device="cpu")
    return TrainConfig.for_data("digits", model="ddpm", **{**base, **changes})


@pytest.fixture(scope="module")
def digits64():
    from course_lib import data

    return data.load("digits", image_size=16, split="train").subset(64)


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory, digits64):
    from course_lib.diffusion_train import DDPMTrainer

    out = tmp_path_factory.mktemp("ddpm")
    trainer = DDPMTrainer(tiny_ddpm_config(), dataset=digits64, out_dir=out, verbose=False)
    trainer.fit()
    return trainer, out / "checkpoint.pt"


def test_the_ddpm_recipe_and_its_config_rules():
    from course_lib.config import DDPM_FIELDS, GAN_FIELDS, TrainConfig

    cfg = TrainConfig.for_data("fashion-mnist", model="ddpm")
    assert (cfg.model, cfg.diffusion_steps, cfg.noise_schedule, cfg.image_size) == ("ddpm", 1000, "linear", 32)
    assert "loss" in GAN_FIELDS and "n_critic" in GAN_FIELDS and set(DDPM_FIELDS) == {"diffusion_steps",
                                                                                        "noise_schedule"}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="'ring8' holds points"):
        TrainConfig.for_data("ring8", model="ddpm")
    with pytest.raises(ValueError, match="'grid25' holds points"):
        TrainConfig(data="grid25", model="ddpm")
    with pytest.raises(ValueError, match=r"loss='hinge', r1_gamma=0.1: GAN options"):
        TrainConfig.for_data("digits", model="ddpm", loss="hinge", r1_gamma=0.1)
    with pytest.raises(ValueError, match="diffusion_steps=10: DDPM options, but model='dcgan' is a GAN"):
        TrainConfig.for_data("digits", diffusion_steps=10)
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        TrainConfig.for_data("digits", model="ddpm", noise_schedule="quadratic")
    with pytest.raises(ValueError):
        TrainConfig.for_data("digits", model="ddpm", diffusion_steps=1)
    # a GAN's config of before the DDPM fields still loads
    gan = TrainConfig.for_data("digits").to_dict()
    del gan["diffusion_steps"], gan["noise_schedule"]
    assert TrainConfig.from_dict(gan).model == "dcgan"


def test_trainer_trains_samples_and_saves(ddpm_run):
    trainer, ckpt = ddpm_run
    assert trainer.step == 6 and len(trainer.history["loss"]) == 6 and ckpt.is_file()
    x = trainer.sample(5, sampling_steps=4)
    assert x.shape == (5, 1, 16, 16) and x.abs().max() <= 1 and torch.isfinite(x).all()
    assert torch.equal(x, trainer.sample(5, sampling_steps=4))  # DDIM at eta = 0, the same noise: the same images
    assert trainer.sample(2).shape == (2, 1, 16, 16)  # ancestral, all 50 steps


def test_checkpoint_round_trip_and_exact_resume(ddpm_run, digits64, tmp_path):
    from course_lib.checkpoint import load_checkpoint
    from course_lib.diffusion_train import DDPMTrainer, load_denoiser

    trainer, ckpt = ddpm_run
    state = load_checkpoint(ckpt)  # weights_only, schema and checksum
    assert state["config"]["model"] == "ddpm" and state["D"] == {} and state["step"] == 6
    net, schedule, config, info = load_denoiser(ckpt)
    assert schedule.T == 50 and config == trainer.config and info["sample_shape"] == [1, 16, 16]
    for k, v in trainer.net_ema.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    # 6 steps, saved at step 3, resumed to 6: the same weights as the uninterrupted run
    half = DDPMTrainer(tiny_ddpm_config(steps=3), dataset=digits64, out_dir=tmp_path, verbose=False)
    half.fit()
    resumed = DDPMTrainer.from_checkpoint(tmp_path / "checkpoint.pt", dataset=digits64, verbose=False, steps=6)
    resumed.fit()
    assert resumed.history["loss"] == trainer.history["loss"]
    for k, v in trainer.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[k], v), k


def test_a_gan_checkpoint_is_refused_where_a_ddpm_is_expected(saved_runs, digits64):
    from course_lib.checkpoint import CheckpointError
    from course_lib.config import TrainConfig
    from course_lib.diffusion_train import DDPMTrainer, load_denoiser

    with pytest.raises(CheckpointError, match="is a GAN checkpoint, not a DDPM's"):
        load_denoiser(saved_runs.ring_ckpt)
    with pytest.raises(CheckpointError, match="is a GAN checkpoint, not a DDPM's"):
        DDPMTrainer.from_checkpoint(saved_runs.cond_ckpt, dataset=digits64, verbose=False)
    with pytest.raises(ValueError, match="DDPMTrainer trains diffusion models"):
        DDPMTrainer(TrainConfig.for_data("digits"), dataset=digits64, verbose=False)


def test_a_ddpm_checkpoint_is_refused_where_a_gan_is_expected(ddpm_run):
    from course_lib.checkpoint import CheckpointError
    from course_lib.sampling import load_generator
    from course_lib.train import GANTrainer

    _, ckpt = ddpm_run
    with pytest.raises(CheckpointError, match=r"is a DDPM \(diffusion model\) checkpoint, not a GAN's"):
        load_generator(ckpt)
    with pytest.raises(CheckpointError, match=r"is a DDPM \(diffusion model\) checkpoint, not a GAN's"):
        GANTrainer.from_checkpoint(ckpt, verbose=False)


def test_the_trainer_refuses_point_data(ring):
    from course_lib.diffusion_train import DDPMTrainer

    with pytest.raises(ValueError, match="holds points"):
        DDPMTrainer(tiny_ddpm_config(), dataset=ring, verbose=False)
