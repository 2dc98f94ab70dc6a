"""Controllable generation: truncated noise, a linear direction in z-space, walking along it, and bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from course_lib import control  # noqa: E402


def test_truncated_noise_stays_within_psi_with_the_right_shape():
    z = control.truncated_noise(500, 7, 0.5, torch.Generator().manual_seed(0))
    assert z.shape == (500, 7) and z.dtype == torch.float32
    assert z.abs().max() <= 0.5
    assert z.std() > 0.2   # spread over the interval, not collapsed to 0


def test_truncated_noise_is_reproducible_with_a_generator():
    a = control.truncated_noise(50, 4, 1.0, torch.Generator().manual_seed(3))
    b = control.truncated_noise(50, 4, 1.0, torch.Generator().manual_seed(3))
    c = control.truncated_noise(50, 4, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_large_psi_gives_a_standard_normal():
    z = control.truncated_noise(20_000, 5, 10.0, torch.Generator().manual_seed(0))
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1.0) < 0.03


@pytest.mark.parametrize("psi", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_psi_is_refused(psi):
    with pytest.raises(ValueError, match="psi must be a finite number > 0"):
        control.truncated_noise(4, 3, psi)


def _separable(n=400, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g)
    z = torch.randn(n, d, generator=g)
    y = (z @ w > 0.3).long()
    return z, y, w / w.norm()


def test_the_fitted_direction_separates_a_linear_set_and_is_a_unit_vector():
    z, y, w = _separable()
    d = control.fit_direction(z, y)
    assert d.accuracy > 0.95
    assert d.normal.shape == (6,) and abs(float(d.normal.norm()) - 1.0) < 1e-5
    assert float(d.normal @ w) > 0.9      # points towards label 1, along the true normal


def test_walking_along_the_direction_moves_a_linear_logit_monotonically():
    z, y, w = _separable(seed=1)
    d = control.fit_direction(z, y)
    steps = torch.linspace(-3, 3, 13)
    path = control.walk(torch.randn(6, generator=torch.Generator().manual_seed(2)), d.normal, steps)
    assert path.shape == (13, 6)
    logit = path @ w - 0.3                 # the synthetic linear "classifier"
    assert (logit.diff() > 0).all()


def test_onto_boundary_lands_on_the_boundary():
    z, y, _ = _separable(seed=3)
    d = control.fit_direction(z, y)
    on = control.onto_boundary(z[:5], d)
    assert torch.allclose(on @ d.normal + d.offset, torch.zeros(5), atol=1e-5)
    assert torch.allclose(control.onto_boundary(z[0], d), on[0])
    with pytest.raises(ValueError, match="must end with the direction's size"):
        control.onto_boundary(torch.zeros(3, 5), d)


def test_walk_readings_uses_generator_and_classifier():
    class Toy(nn.Module):   # a "generator" whose image brightness is z[0]
        latent_dim = 3

        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, z):
            return z[:, :1, None, None].expand(-1, 1, 4, 4).tanh() + 0 * self.p

    class Clf:              # probability of class 1 grows with brightness
        def predict_proba(self, x, batch_size=256):
            s = x.mean((1, 2, 3))
            return torch.stack([torch.sigmoid(-4 * s), torch.sigmoid(4 * s)], 1)

    images, probs = control.walk_readings(Toy(), Clf(), torch.zeros(3), torch.tensor([1.0, 0, 0]), [-1, 0, 1])
    assert images.shape == (3, 1, 4, 4) and probs.shape == (3, 2)
    assert (probs[:, 1].diff() > 0).all()
    fig = control.walk_figure(images, probs, [-1, 0, 1], (0, 1), ["dark", "light"])
    assert len(fig.axes) == 3
    direction = control.LatentDirection(torch.tensor([1.0, 0, 0]), 0.0, 1.0)
    explorer = control.direction_explorer(Toy(), Clf(), direction, torch.randn(4, 3), (0, 1), ["dark", "light"])
    explorer.update(start=2, step=1.5)
    assert explorer.render_count >= 1
    with pytest.raises(ValueError, match=r"starts must be \(N, latent_dim\)"):
        control.direction_explorer(Toy(), Clf(), direction, torch.randn(3), (0, 1), ["dark", "light"])


def test_two_class_labels_keeps_the_two_classes():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]])
    keep, y = control.two_class_labels(probs, 0, 2)
    assert keep.tolist() == [True, False, True, True] and y.tolist() == [0, 1, 1]


def test_truncation_figure_draws_both_panels():
    rows = [{"psi": p, "precision": 1 - p / 3, "recall": p / 3, "fd": 3 - p} for p in (0.5, 1.0, 2.0)]
    fig = control.truncation_figure(rows)
    assert len(fig.axes) == 2


def test_bad_shapes_and_labels_are_refused():
    z, y, _ = _separable()
    with pytest.raises(ValueError, match=r"z must be \(N, latent_dim\)"):
        control.fit_direction(z[0], y)
    with pytest.raises(ValueError, match=r"y must be \(N,\)"):
        control.fit_direction(z, y[:10])
    with pytest.raises(ValueError, match="labels 0 and 1"):
        control.fit_direction(z, y + 1)
    with pytest.raises(ValueError, match="both classes need samples"):
        control.fit_direction(z, torch.zeros(len(z), dtype=torch.long))
    with pytest.raises(ValueError, match="normal must have the shape of z0"):
        control.walk(torch.zeros(6), torch.zeros(5), [0.0])
    with pytest.raises(ValueError, match="z0 must be one noise vector"):
        control.walk(torch.zeros(2, 6), torch.zeros(6), [0.0])
    with pytest.raises(ValueError, match="two different classes"):
        control.two_class_labels(torch.rand(4, 3), 1, 1)
    with pytest.raises(ValueError, match="not a class index"):
        control.two_class_labels(torch.rand(4, 3), 0, 3)
