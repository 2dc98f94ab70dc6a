"""Every loss at known points, against its formula via autograd, and the saturation argument."""
import math

import pytest
import torch

from course_lib import losses

torch.manual_seed(0)
R = torch.randn(64, dtype=torch.float64) * 3
F_ = torch.randn(64, dtype=torch.float64) * 3
sig = torch.sigmoid


def test_half_everywhere_gives_log4():
    zero = torch.zeros(10)
    assert math.isclose(losses.d_loss_bce(zero, zero).item(), math.log(4), rel_tol=1e-6)
    assert math.isclose(losses.g_loss_saturating(zero).item(), -math.log(2), rel_tol=1e-6)
    assert math.isclose(losses.g_loss_nonsaturating(zero).item(), math.log(2), rel_tol=1e-6)


@pytest.mark.parametrize("name, ours, formula", [
    ("bce", lambda: losses.d_loss_bce(R, F_), lambda: -(sig(R).log().mean() + (1 - sig(F_)).log().mean())),
    ("bce smoothed", lambda: losses.d_loss_bce(R, F_, 0.1),
     lambda: -(0.9 * sig(R).log() + 0.1 * (1 - sig(R)).log()).mean() - (1 - sig(F_)).log().mean()),
    ("saturating", lambda: losses.g_loss_saturating(F_), lambda: (1 - sig(F_)).log().mean()),
    ("nonsaturating", lambda: losses.g_loss_nonsaturating(F_), lambda: -sig(F_).log().mean()),
    ("lsgan d", lambda: losses.d_loss_lsgan(R, F_), lambda: 0.5 * ((R - 1) ** 2).mean() + 0.5 * (F_ ** 2).mean()),
    ("lsgan g", lambda: losses.g_loss_lsgan(F_), lambda: 0.5 * ((F_ - 1) ** 2).mean()),
    ("hinge d", lambda: losses.d_loss_hinge(R, F_),
     lambda: torch.clamp(1 - R, min=0).mean() + torch.clamp(1 + F_, min=0).mean()),
    ("hinge g", lambda: losses.g_loss_hinge(F_), lambda: -F_.mean()),
    ("wgan d", lambda: losses.d_loss_wgan(R, F_), lambda: F_.mean() - R.mean()),
    ("wgan g", lambda: losses.g_loss_wgan(F_), lambda: -F_.mean()),
])
def test_loss_matches_formula_value_and_gradient(name, ours, formula):
    for t in (R, F_):
        t.requires_grad_(True)
        t.grad = None
    a = ours()
    ga = torch.autograd.grad(a, [R, F_], allow_unused=True, materialize_grads=True)
    b = formula()
    gb = torch.autograd.grad(b, [R, F_], allow_unused=True, materialize_grads=True)
    assert torch.allclose(a, b, atol=1e-10), name
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-10), name


def test_stable_at_extreme_logits():
    big = torch.tensor([80.0, -80.0, 200.0, -200.0])
    for v in (losses.d_loss_bce(big, big), losses.g_loss_saturating(big), losses.g_loss_nonsaturating(big)):
        assert torch.isfinite(v)


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    # D confidently rejects the fakes: D(G(z)) = 1e-4
    logit = torch.full((1,), math.log(1e-4 / (1 - 1e-4)), requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.g_loss_saturating(logit), logit)
    (g_ns,) = torch.autograd.grad(losses.g_loss_nonsaturating(logit), logit)
    assert abs(g_sat.item()) < 2e-4          # dL/dlogit = -D(G(z)) ~ -1e-4: vanishes
    assert abs(g_ns.item() + 1) < 2e-4       # dL/dlogit = -(1 - D(G(z))) ~ -1: alive


def test_gradient_penalty_zero_for_unit_slope_critic():
    w = torch.tensor([0.6, 0.8])  # |w| = 1: the critic x -> w.x has gradient norm 1 everywhere
    crit = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(32, 2), torch.randn(32, 2)
    assert losses.gradient_penalty(crit, real, fake).item() < 1e-10
    crit2 = lambda x: x @ (3 * w)  # noqa: E731  norm 3: penalty (3 - 1)^2 = 4
    assert math.isclose(losses.gradient_penalty(crit2, real, fake).item(), 4.0, rel_tol=1e-5)


def test_r1_penalty_value_and_double_backward():
    a = torch.tensor([2.0], requires_grad=True)
    crit = lambda x: (a * x).sum(1)  # noqa: E731  grad wrt x = a, |grad|^2 = 4 * D
    real = torch.randn(16, 3)
    r1 = losses.r1_penalty(crit, real)
    assert math.isclose(r1.item(), 12.0, rel_tol=1e-6)
    (g,) = torch.autograd.grad(r1, a)  # d/da (3 a^2) = 6a = 12
    assert math.isclose(g.item(), 12.0, rel_tol=1e-6)


def test_registry_and_errors():
    assert set(losses.LOSSES) == {"saturating", "nonsaturating", "lsgan", "hinge", "wgan-gp"}
    assert losses.get_loss("wgan-gp").n_critic == 5 and losses.get_loss("wgan-gp").gp_weight == 10
    with pytest.raises(ValueError, match="valid losses are"):
        losses.get_loss("bce")
    with pytest.raises(ValueError, match=r"\(N,\).*view\(-1\)"):
        losses.d_loss_bce(torch.zeros(4, 1, 1, 1), torch.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        losses.g_loss_hinge(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.d_loss_bce(torch.zeros(4), torch.zeros(4), label_smoothing=1.0)
