r"""GAN losses, all computed from discriminator **logits** (never from probabilities).

Notation (the same as in the notebooks): $D(x) = \sigma(\ell(x))$ where $\ell$ is the logit the discriminator
returns, $\sigma$ the sigmoid, $p_{data}$ the data, $z \sim p_z$ the noise, and $\mathrm{sp}(t) = \log(1 + e^t)$
the softplus. Two identities make every formula stable:

$$-\log D(x) = \mathrm{sp}(-\ell(x)), \qquad -\log(1 - D(x)) = \mathrm{sp}(\ell(x)).$$

Every function averages over the batch and returns a scalar tensor. Inputs: ``real_logits`` (N,) for a real batch,
``fake_logits`` (N,) for a generated batch. The losses are minimised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["d_loss_bce", "g_loss_saturating", "g_loss_nonsaturating", "d_loss_lsgan", "g_loss_lsgan",
           "d_loss_hinge", "g_loss_hinge", "d_loss_wgan", "g_loss_wgan", "gradient_penalty", "r1_penalty",
           "GANLoss", "LOSSES", "get_loss"]


def _check_logits(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"losses take logits as torch tensors, got {type(t).__name__}")
        if t.dim() != 1:
            raise ValueError(f"logits must have shape (N,), got {tuple(t.shape)}; a discriminator output of "
                             "shape (N, 1) or (N, 1, 1, 1) should be flattened with .view(-1)")
        if not t.is_floating_point():
            raise TypeError(f"logits must be floating point, got dtype {t.dtype}")


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    r"""Discriminator loss of the original GAN (binary cross-entropy), the negated value function:

    $$L_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]
          = \mathbb{E}_x[\mathrm{sp}(-\ell(x))] + \mathbb{E}_z[\mathrm{sp}(\ell(G(z)))].$$

    With one-sided label smoothing $s$ (Salimans et al. 2016) the real target is $1 - s$:
    $L_D = \mathbb{E}_x[(1-s)\,\mathrm{sp}(-\ell) + s\,\mathrm{sp}(\ell)] + \mathbb{E}_z[\mathrm{sp}(\ell(G(z)))]$.
    A discriminator that outputs $D = 1/2$ everywhere (logit 0) scores $\log 4$.
    """
    _check_logits(real_logits, fake_logits)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    target = torch.full_like(real_logits, 1.0 - label_smoothing)
    return (F.binary_cross_entropy_with_logits(real_logits, target)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The original minimax generator loss, minimised by G:

    $$L_G^{\mathrm{sat}} = \mathbb{E}_z[\log(1 - D(G(z)))] = -\mathbb{E}_z[\mathrm{sp}(\ell(G(z)))].$$

    Its gradient with respect to the logit is $-D(G(z))$: it vanishes when D confidently rejects the fakes
    ($D(G(z)) \to 0$), which is exactly the situation early in training.
    """
    _check_logits(fake_logits)
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating generator loss (Goodfellow et al. 2014, section 3):

    $$L_G^{\mathrm{ns}} = -\mathbb{E}_z[\log D(G(z))] = \mathbb{E}_z[\mathrm{sp}(-\ell(G(z)))].$$

    Its gradient with respect to the logit is $-(1 - D(G(z)))$, close to $-1$ when D rejects the fakes.
    """
    _check_logits(fake_logits)
    return F.softplus(-fake_logits).mean()


def d_loss_lsgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Least-squares discriminator loss (Mao et al. 2017, targets a=0, b=1) on the raw output $\ell$:

    $$L_D = \tfrac12\mathbb{E}_x[(\ell(x) - 1)^2] + \tfrac12\mathbb{E}_z[\ell(G(z))^2].$$"""
    _check_logits(real_logits, fake_logits)
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


def g_loss_lsgan(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Least-squares generator loss (c=1): $L_G = \tfrac12\mathbb{E}_z[(\ell(G(z)) - 1)^2]$."""
    _check_logits(fake_logits)
    return 0.5 * ((fake_logits - 1) ** 2).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018):

    $$L_D = \mathbb{E}_x[\max(0, 1 - \ell(x))] + \mathbb{E}_z[\max(0, 1 + \ell(G(z)))].$$"""
    _check_logits(real_logits, fake_logits)
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Hinge generator loss: $L_G = -\mathbb{E}_z[\ell(G(z))]$."""
    _check_logits(fake_logits)
    return -fake_logits.mean()


def d_loss_wgan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Wasserstein critic loss (Arjovsky et al. 2017): $L_D = \mathbb{E}_z[\ell(G(z))] - \mathbb{E}_x[\ell(x)]$,
    the negated estimate of $W(p_{data}, p_g)$ when $\ell$ is 1-Lipschitz (see ``gradient_penalty``)."""
    _check_logits(real_logits, fake_logits)
    return fake_logits.mean() - real_logits.mean()


def g_loss_wgan(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""Wasserstein generator loss: $L_G = -\mathbb{E}_z[\ell(G(z))]$."""
    _check_logits(fake_logits)
    return -fake_logits.mean()


def _grad_norm_sq(D: Callable, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Per-sample squared norm of d l(x) / d x, (N,), keeping the graph for a second backward."""
    x = x.detach().requires_grad_(True)
    out = D(x) if y is None else D(x, y)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


def gradient_penalty(D: Callable, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    r"""WGAN-GP penalty (Gulrajani et al. 2017), to be multiplied by $\lambda$ (10 in the paper):

    $$\mathrm{GP} = \mathbb{E}_{\hat x}[(\lVert \nabla_{\hat x} \ell(\hat x) \rVert_2 - 1)^2], \quad
      \hat x = \epsilon x + (1 - \epsilon) G(z),\ \epsilon \sim U[0, 1] \text{ per sample}.$$

    ``real`` and ``fake`` have the same shape (N, ...); ``generator`` draws $\epsilon$ (for repeatable runs).
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} shapes differ")
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype,
                     generator=generator)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    return (_grad_norm_sq(D, x_hat, y).add(1e-12).sqrt() - 1).pow(2).mean()


def r1_penalty(D: Callable, real: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    r"""R1 penalty (Mescheder et al. 2018), to be multiplied by $\gamma / 2$:
    $R_1 = \mathbb{E}_x[\lVert \nabla_x \ell(x) \rVert_2^2]$ on real data only."""
    return _grad_norm_sq(D, real, y).mean()


@dataclass(frozen=True)
class GANLoss:
    """A named pair of losses with its training defaults.

    Attributes:
        d: ``d(real_logits, fake_logits) -> scalar`` discriminator loss.
        g: ``g(fake_logits) -> scalar`` generator loss.
        n_critic: discriminator steps per generator step.
        gp_weight: default weight of ``gradient_penalty`` (0: none).
        smoothing: whether ``d`` accepts ``label_smoothing``.
    """

    name: str
    d: Callable[..., torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    n_critic: int = 1
    gp_weight: float = 0.0
    smoothing: bool = False


LOSSES: dict[str, GANLoss] = {
    "saturating": GANLoss("saturating", d_loss_bce, g_loss_saturating, smoothing=True),
    "nonsaturating": GANLoss("nonsaturating", d_loss_bce, g_loss_nonsaturating, smoothing=True),
    "lsgan": GANLoss("lsgan", d_loss_lsgan, g_loss_lsgan),
    "hinge": GANLoss("hinge", d_loss_hinge, g_loss_hinge),
    "wgan-gp": GANLoss("wgan-gp", d_loss_wgan, g_loss_wgan, n_critic=5, gp_weight=10.0),
}


def outputs_probabilities(loss: str | None) -> bool:
    """Whether the sigmoid of D's output is a probability under ``loss``: True for the BCE losses (``saturating``,
    ``nonsaturating``) and for ``None`` (unknown), False for ``lsgan``, ``hinge`` and ``wgan-gp`` (a score)."""
    return loss is None or get_loss(loss).d is d_loss_bce


def d_output_labels(loss: str | None) -> tuple[str, str]:
    """Names for the mean sigmoid of D's outputs on real and on generated data, as plots and the progress bar
    show them. Under the BCE losses (``saturating``, ``nonsaturating``; and ``None``: unknown, as before) D's
    output is a logit, so sigmoid(logit) = D(x), D's probability that x is real: ``("D(x)", "D(G(z))")``. Under
    ``lsgan``, ``hinge`` and ``wgan-gp`` the output is a score, not a log-odds: its sigmoid is only a squashed
    score, and the names say so: ``("sigmoid(D(x)) [hinge: a score]", ...)``."""
    if outputs_probabilities(loss):
        return "D(x)", "D(G(z))"
    return f"sigmoid(D(x)) [{loss}: a score]", f"sigmoid(D(G(z))) [{loss}: a score]"


def get_loss(name: str) -> GANLoss:
    """The ``GANLoss`` called ``name`` (one of ``LOSSES``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses are {', '.join(LOSSES)}")
    return LOSSES[name]
