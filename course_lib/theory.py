r"""The maths of GAN theory, computed (notebooks 01 and 02; ``widgets.divergence_explorer`` draws it).

* ``gaussian_pdf``, ``sample_gaussian``, ``sample_mixture1d``: the 1-D densities and samplers of the theory
  notebook (the data's density is ``course_lib.data.mixture1d_pdf``).
* ``optimal_discriminator``: $D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))$ from the two densities.
* ``jsd_by_quadrature``: the Jensen-Shannon divergence of two densities on a grid.
* ``fit_discriminator_1d``: train a small discriminator to convergence on two fixed 1-D sample sets; by the
  theory its output approaches $D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))$.
* ``value_function``: $V(D, G) = \int p_{data}\log D + p_g \log(1 - D)\,dx$ by quadrature on a grid.
* ``logit_gradient``: a generator loss and its derivative with respect to the logit, one value per $D(G(z))$.

    >>> from course_lib import theory
    >>> D = theory.fit_discriminator_1d(real, fake, steps=2000)      # real, fake: (N, 1) samples
    >>> d = theory.discriminator_probs(D, x)                          # x: (K,) grid -> (K,) D(x) in (0, 1)
"""
from __future__ import annotations

from typing import Callable

import torch

from .data import MIXTURE1D, gaussian_pdf  # the one Gaussian density of the library
from .models import MLPDiscriminator
from .utils import check_int, one_thread

__all__ = ["gaussian_pdf", "sample_gaussian", "sample_mixture1d", "optimal_discriminator", "jsd_by_quadrature",
           "fit_discriminator_1d", "discriminator_probs", "value_function", "logit_gradient"]


def sample_gaussian(n: int, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(n, 1) float32 samples of N(mean, std^2), repeatable through ``seed``."""
    check_int("n", n)
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    g = torch.Generator().manual_seed(seed)
    return (mean + std * torch.randn(n, 1, generator=g)).float()


def sample_mixture1d(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1) float32 samples of the data mixture of ``course_lib.data.mixture1d`` (density ``mixture1d_pdf``)."""
    check_int("n", n)
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor(MIXTURE1D["means"])
    which = torch.multinomial(torch.tensor(MIXTURE1D["weights"]), n, replacement=True, generator=g)
    return (means[which] + MIXTURE1D["std"] * torch.randn(n, generator=g))[:, None].float()


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    r"""$D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))$ elementwise: the discriminator that maximises
    $V(D, G)$ for a fixed $G$. Densities of any (equal) shape; 1/2 where both vanish; values in [0, 1]."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300), torch.full_like(total, 0.5))


def jsd_by_quadrature(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    r"""Jensen-Shannon divergence (natural log, in [0, log 2]) of two densities sampled on the uniform grid ``x``.

    $\mathrm{JSD}(p\|q) = \tfrac12 \mathrm{KL}(p\|m) + \tfrac12 \mathrm{KL}(q\|m)$, $m = (p + q)/2$, by the
    trapezoidal rule. ``p``, ``q``, ``x``: 1-D tensors of the same length (K,); $0 \log 0 = 0$.
    """
    if not (p.shape == q.shape == x.shape and x.dim() == 1):
        raise ValueError("p, q and x must be 1-D tensors of the same length")
    p, q, x = p.double(), q.double(), x.double()
    m = 0.5 * (p + q)

    def kl_term(a):
        return torch.where(a > 0, a * (torch.log(a.clamp_min(1e-300)) - torch.log(m.clamp_min(1e-300))),
                           torch.zeros_like(a))

    return float(0.5 * torch.trapezoid(kl_term(p), x) + 0.5 * torch.trapezoid(kl_term(q), x))


def fit_discriminator_1d(real: torch.Tensor, fake: torch.Tensor, steps: int = 2000, batch_size: int = 512,
                         hidden: int = 64, depth: int = 2, lr: float = 3e-3, seed: int = 0) -> MLPDiscriminator:
    r"""Train a discriminator on fixed samples until it (nearly) maximises $V(D, G)$ for that fixed $p_g$.

    Minimises the binary cross-entropy $-\mathbb{E}_{real}[\log D] - \mathbb{E}_{fake}[\log(1 - D)]$ with Adam,
    on minibatches of ``batch_size`` real and ``batch_size`` fake samples, with a cosine-decaying learning rate
    so that the last steps average out the minibatch noise. The network is tiny, so training runs on the CPU with
    one thread (the caller's thread count is restored afterwards): on a busy or small machine that is many times
    faster than several threads.

    Args:
        real: (N, 1) samples of $p_{data}$. fake: (M, 1) samples of $p_g$.
        steps: optimiser steps. batch_size: samples of each kind per step.
        hidden, depth: width and number of hidden layers of the ``MLPDiscriminator``.
        lr: peak learning rate. seed: initialisation and minibatch seed (the result is repeatable on CPU).

    Returns:
        The trained ``MLPDiscriminator`` (in eval mode, on the CPU): (K, 1) points -> (K,) logits.
    """
    for name, t in (("real", real), ("fake", fake)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != 1 or len(t) == 0:
            raise ValueError(f"{name} must be a non-empty (N, 1) tensor of 1-D samples, got "
                             f"{getattr(t, 'shape', type(t))}; use x[:, None] to add the feature dimension")
    check_int("steps", steps)
    check_int("batch_size", batch_size)
    from torch.nn.functional import softplus

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    D = MLPDiscriminator(in_dim=1, hidden=hidden, depth=depth)
    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.01)
    D.train()
    with one_thread():
        for _ in range(steps):
            xr = real[torch.randint(len(real), (batch_size,), generator=gen)]
            xf = fake[torch.randint(len(fake), (batch_size,), generator=gen)]
            loss = softplus(-D(xr)).mean() + softplus(D(xf)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return D.eval()


@torch.no_grad()
def discriminator_probs(D: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """D(x) = sigmoid(logit) of a 1-D discriminator on the grid ``x`` ((K,) tensor) -> (K,) float64 in (0, 1)."""
    x = torch.as_tensor(x)
    if x.dim() != 1:
        raise ValueError(f"x must be a 1-D grid of shape (K,), got {tuple(x.shape)}")
    return torch.sigmoid(D(x.float()[:, None]).reshape(-1)).double()


def value_function(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> float:
    r"""$V(D, G) = \int p_{data}(x)\log D(x) + p_g(x)\log(1 - D(x))\,dx$ by the trapezoidal rule.

    Args:
        d: (K,) values of $D(x)$ in [0, 1] on the grid. p_data, p_g: (K,) densities on the grid.
        x: (K,) uniform grid, wide enough that both densities are negligible at its ends.

    A term whose density is 0 contributes 0 (the convention $0 \log 0 = 0$); $D$ is clamped to
    $[10^{-300}, 1 - 10^{-16}]$ elsewhere, so a confident mistake costs a large but finite amount.
    """
    if not (d.shape == p_data.shape == p_g.shape == x.shape and x.dim() == 1):
        raise ValueError("d, p_data, p_g and x must be 1-D tensors of the same length")
    d, p_data, p_g, x = d.double(), p_data.double(), p_g.double(), x.double()
    if bool(((d < 0) | (d > 1)).any()):
        raise ValueError("d holds values outside [0, 1]; pass probabilities D(x), not logits")
    log_d = torch.log(d.clamp_min(1e-300))
    log_1md = torch.log((1 - d).clamp_min(1e-16))
    integrand = torch.where(p_data > 0, p_data * log_d, torch.zeros_like(d)) \
        + torch.where(p_g > 0, p_g * log_1md, torch.zeros_like(d))
    return float(torch.trapezoid(integrand, x))


def logit_gradient(g_loss: Callable[[torch.Tensor], torch.Tensor], d_fake: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A generator loss and its derivative with respect to the logit, at given values of $D(G(z))$.

    Args:
        g_loss: a generator loss on logits, such as ``course_lib.losses.g_loss_nonsaturating``.
        d_fake: (K,) values of $D(G(z))$ in (0, 1).

    Returns:
        ``(loss, grad)``, each (K,) float64: the loss of a batch holding the one logit
        $\ell = \log(D / (1 - D))$, and $\partial\,\mathrm{loss} / \partial \ell$ by autograd.
    """
    d_fake = torch.as_tensor(d_fake, dtype=torch.float64)
    if d_fake.dim() != 1 or bool(((d_fake <= 0) | (d_fake >= 1)).any()):
        raise ValueError("d_fake must be a 1-D tensor of probabilities strictly between 0 and 1")
    logits = torch.logit(d_fake).requires_grad_(True)
    values = torch.stack([g_loss(logit.view(1)) for logit in logits])
    (grad,) = torch.autograd.grad(values.sum(), logits)
    return values.detach(), grad
