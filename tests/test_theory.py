"""The numerical theory checks of notebooks 01 and 02: D*, V(D, G), C(G) = -log 4 + 2 JSD, loss gradients."""
import math

import pytest
import torch

from course_lib import data, losses, theory

X = torch.linspace(-10, 10, 4001, dtype=torch.float64)


def test_gaussian_pdf_integrates_to_one_and_checks_std():
    assert math.isclose(float(torch.trapezoid(theory.gaussian_pdf(X, 1.0, 0.7), X)), 1.0, abs_tol=1e-9)
    with pytest.raises(ValueError, match="std"):
        theory.gaussian_pdf(X, 0.0, 0.0)


def test_samplers_shapes_moments_and_repeatability():
    m = theory.sample_mixture1d(40_000, seed=3)
    assert m.shape == (40_000, 1) and m.dtype == torch.float32
    assert torch.equal(m, theory.sample_mixture1d(40_000, seed=3))
    assert abs(float(m.mean())) < 0.05 and abs(float(m.var()) - (4 + 0.25)) < 0.1   # means -2, 2; std 0.5
    g = theory.sample_gaussian(40_000, 1.5, 0.5, seed=1)
    assert abs(float(g.mean()) - 1.5) < 0.02 and abs(float(g.std()) - 0.5) < 0.02
    with pytest.raises(ValueError, match="positive integer"):
        theory.sample_mixture1d(0)


def test_value_function_at_optimum_equals_minus_log4_plus_2jsd():
    p_data = data.mixture1d_pdf(X)
    for mean, std in ((0.0, 1.0), (2.0, 0.5), (-1.0, 1.5)):
        p_g = theory.gaussian_pdf(X, mean, std)
        d_star = theory.optimal_discriminator(p_data, p_g)
        v_star = theory.value_function(d_star, p_data, p_g, X)
        jsd = theory.jsd_by_quadrature(p_data, p_g, X)
        assert math.isclose(v_star, -math.log(4) + 2 * jsd, abs_tol=1e-7)
        # D* is the maximiser: any other D scores lower
        for other in (torch.full_like(X, 0.5), (d_star * 0.9 + 0.05)):
            assert theory.value_function(other, p_data, p_g, X) < v_star
    # p_g = p_data: D* = 1/2 and V = -log 4
    d_half = theory.optimal_discriminator(p_data, p_data)
    assert math.isclose(theory.value_function(d_half, p_data, p_data, X), -math.log(4), abs_tol=1e-7)


def test_value_function_rejects_logits():
    p = theory.gaussian_pdf(X)
    with pytest.raises(ValueError, match="probabilities"):
        theory.value_function(X, p, p, X)


def test_fitted_discriminator_approaches_closed_form():
    real = theory.sample_mixture1d(20_000, seed=1)
    fake = theory.sample_gaussian(20_000, 0.5, 1.5, seed=2)
    x = torch.linspace(-6, 6, 601, dtype=torch.float64)
    p_data, p_g = data.mixture1d_pdf(x), theory.gaussian_pdf(x, 0.5, 1.5)
    d_star = theory.optimal_discriminator(p_data, p_g)
    threads = torch.get_num_threads()
    D = theory.fit_discriminator_1d(real, fake, steps=600, seed=0)
    assert torch.get_num_threads() == threads, "the caller's thread count must be restored"
    d = theory.discriminator_probs(D, x)
    assert d.shape == x.shape and bool(((d > 0) & (d < 1)).all())
    mask = (p_data + p_g) > 0.05
    assert float((d - d_star).abs()[mask].max()) < 0.08
    v, v_star = theory.value_function(d, p_data, p_g, x), theory.value_function(d_star, p_data, p_g, x)
    assert v <= v_star + 1e-6 and v_star - v < 0.02
    # repeatable on the CPU
    D2 = theory.fit_discriminator_1d(real, fake, steps=600, seed=0)
    assert torch.equal(theory.discriminator_probs(D2, x), d)


def test_fit_discriminator_rejects_flat_samples():
    with pytest.raises(ValueError, match=r"\(N, 1\)"):
        theory.fit_discriminator_1d(torch.zeros(10), torch.zeros(10, 1), steps=1)


def test_logit_gradient_matches_the_closed_forms():
    d = torch.tensor([0.01, 0.3, 0.5, 0.99], dtype=torch.float64)
    loss, grad = theory.logit_gradient(losses.g_loss_saturating, d)
    assert torch.allclose(loss, torch.log1p(-d)) and torch.allclose(grad, -d)
    loss, grad = theory.logit_gradient(losses.g_loss_nonsaturating, d)
    assert torch.allclose(loss, -torch.log(d)) and torch.allclose(grad, -(1 - d))
    _, grad = theory.logit_gradient(losses.g_loss_lsgan, d)
    assert torch.allclose(grad, torch.logit(d) - 1)
    _, grad = theory.logit_gradient(losses.g_loss_hinge, d)
    assert torch.allclose(grad, -torch.ones_like(d))
    with pytest.raises(ValueError, match="strictly between"):
        theory.logit_gradient(losses.g_loss_hinge, torch.tensor([0.0, 0.5]))


def test_jsd_and_optimal_discriminator_limits():
    p, q = theory.gaussian_pdf(X, -5, 1), theory.gaussian_pdf(X, 5, 1)
    assert theory.jsd_by_quadrature(p, p, X) == pytest.approx(0.0, abs=1e-9)
    assert theory.jsd_by_quadrature(p, q, X) == pytest.approx(math.log(2), abs=1e-3)
    d = theory.optimal_discriminator(p, p)
    assert torch.allclose(d, torch.full_like(d, 0.5))
    assert theory.optimal_discriminator(torch.zeros(3), torch.zeros(3)).tolist() == [0.5, 0.5, 0.5]
    d = theory.optimal_discriminator(p, q)
    assert float(d[X.argmin()]) > 0.999 and float(d[X.argmax()]) < 0.001  # D* -> 1 where only data lives
    with pytest.raises(ValueError, match="same length"):
        theory.jsd_by_quadrature(torch.ones(11), torch.ones(10), torch.linspace(-1, 1, 11))


@pytest.mark.parametrize("call, name", [
    (lambda: theory.sample_gaussian(2.5), "n"), (lambda: theory.sample_mixture1d(True), "n"),
    (lambda: theory.fit_discriminator_1d(torch.zeros(4, 1), torch.zeros(4, 1), steps=0), "steps"),
    (lambda: theory.fit_discriminator_1d(torch.zeros(4, 1), torch.zeros(4, 1), batch_size=-1), "batch_size"),
])
def test_counts_must_be_positive_integers(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, got "):
        call()


def test_fit_restores_the_thread_count():
    before = torch.get_num_threads()
    theory.fit_discriminator_1d(torch.zeros(8, 1), torch.ones(8, 1), steps=2, batch_size=4)
    assert torch.get_num_threads() == before


def test_gaussian_pdf_is_differentiable_in_its_mean_and_std():
    x = torch.tensor([-0.5, 0.3, 2.0], dtype=torch.float64)
    mean = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    std = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    p = data.gaussian_pdf(x, mean, std)
    d_mean, d_std = torch.autograd.grad(p.sum(), (mean, std))
    q = p.detach()
    u = (x - 0.4) / 0.8
    # d/dmean N = N (x - mean) / std^2 ;  d/dstd N = N (u^2 - 1) / std
    assert torch.allclose(d_mean, (q * (x - 0.4) / 0.8 ** 2).sum(), rtol=1e-12)
    assert torch.allclose(d_std, (q * (u ** 2 - 1) / 0.8).sum(), rtol=1e-12)
