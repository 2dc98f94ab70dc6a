"""A compact DDPM: the training step of a diffusion model, and its parts (noise schedule, forward process, samplers).

Read ``diffusion_step`` first: the epsilon-prediction loss of Ho, Jain & Abbeel (2020) and one optimiser step.
Then the parts it uses:

* ``NoiseSchedule``: the betas of T steps (linear 1e-4 .. 0.02 as in Ho et al., or the cosine schedule of Nichol &
  Dhariwal 2021) and their closed forms alpha_t = 1 - beta_t, abar_t = prod_{s <= t} alpha_s;
* ``q_sample``: the forward (noising) process in one jump, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps;
* ``ancestral_sample``: the reverse process of Ho et al. (Algorithm 2, sigma_t^2 = beta_t), T network evaluations;
* ``ddim_sample``: DDIM (Song, Meng & Ermon 2021) on a sub-sequence of ``steps`` of the T steps, deterministic
  at eta = 0: fewer network evaluations for the same trained network.

The network is ``course_lib.unet.UNet``; the loop around the step (data, budgets, seeding, checkpoints, run
folders, as for the GAN) is ``course_lib.diffusion_train.DDPMTrainer``:

    >>> trainer = DDPMTrainer(TrainConfig.for_data("fashion-mnist", model="ddpm", steps=2000))
    >>> trainer.fit()
    >>> x = trainer.sample(64, sampling_steps=50)      # (64, 1, 32, 32) in [-1, 1], 50 DDIM steps

Conventions: images are (N, C, S, S) float in [-1, 1]; steps t are int64 in [0, T) (t = 0 is the first noising
step, t = T - 1 the last: x_{T-1} is almost pure N(0, I) noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .checks import check_choice, check_int, is_int
from .utils import eval_mode

__all__ = ["diffusion_step", "diffusion_loss", "NoiseSchedule", "SCHEDULES", "make_schedule", "q_sample",
           "predict_x0", "ancestral_sample", "ddim_sample", "ddim_timesteps", "check_sampling_steps",
           "network_evaluations"]

SCHEDULES = ("linear", "cosine")


# ============================================================================ the loss, and one step

def diffusion_loss(net: nn.Module, schedule: "NoiseSchedule", x0: torch.Tensor, t: torch.Tensor,
                   noise: torch.Tensor) -> torch.Tensor:
    """L_simple of Ho et al. (2020): the mean squared error between the noise ``noise`` that made x_t from
    ``x0`` at steps ``t`` and the network's prediction of it, eps_theta(x_t, t).

    Args: x0 (N, C, S, S) clean images in [-1, 1]; t (N,) int64 in [0, T); noise (N, C, S, S) from N(0, I).
    Returns: a 0-dim float32 tensor (about 1 for a network that predicts 0, 0 for one that knows the noise)."""
    x_t = q_sample(schedule, x0, t, noise)            # (2) the noisy images, in one jump from x_0
    return F.mse_loss(net(x_t, t).float(), noise)     # (3) || eps - eps_theta(x_t, t) ||^2, averaged


def diffusion_step(net: nn.Module, opt: torch.optim.Optimizer, schedule: "NoiseSchedule", x0: torch.Tensor,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One training step of a DDPM (Algorithm 1 of Ho et al. 2020): minimise ``diffusion_loss`` over ``net``.

    Args:
        net: the noise predictor eps_theta(x_t, t) (``UNet``). opt: its optimiser.
        x0: (N, C, S, S) a real batch in [-1, 1].
        generator: the random generator of t and the noise (on x0's device); None: torch's global one.
    Returns: the detached scalar ``loss`` (a 0-dim tensor on x0's device: no host sync)."""
    n = x0.shape[0]
    t = torch.randint(schedule.T, (n,), device=x0.device, generator=generator)          # (1) a step per image
    noise = torch.randn(x0.shape, device=x0.device, generator=generator)                #     and its noise
    loss = diffusion_loss(net, schedule, x0, t, noise)                                  # (2), (3)
    opt.zero_grad(set_to_none=True)                   # (4) forget the gradients of earlier steps
    loss.backward()                                   # (5) d loss / d theta by backpropagation
    opt.step()                                        # (6) theta <- theta - Adam step
    return {"loss": loss.detach()}


# ============================================================================ the noise schedule

@dataclass(frozen=True)
class NoiseSchedule:
    """The noise schedule of a DDPM: ``betas`` (T,) float64 in (0, 1), the variance added at each step.

    Closed forms (Ho et al. 2020, eq. 4): alpha_t = 1 - beta_t and abar_t = prod_{s=0..t} alpha_s, so that
    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I). Kept in float64 (the product of 1,000 factors), handed to
    the networks in float32."""

    betas: torch.Tensor
    name: str = "linear"

    @property
    def T(self) -> int:
        """The number of steps of the forward process."""
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        """(T,) float64: alpha_t = 1 - beta_t."""
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        """(T,) float64, falling from alpha_0 to near 0: abar_t = alpha_0 * alpha_1 * ... * alpha_t."""
        return torch.cumprod(self.alphas, dim=0)

    def at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` as float32 on ``like``'s device, shaped (N, 1, 1, 1) to scale (N, C, S, S) images."""
        return values.float().to(like.device)[t].view(-1, *([1] * (like.dim() - 1)))  # float32: MPS has no float64


def make_schedule(name: str = "linear", T: int = 1000) -> NoiseSchedule:
    """The noise schedule ``name`` over ``T`` steps.

    ``"linear"``: betas from 1e-4 to 0.02 (Ho et al. 2020) for T = 1000; for another T both ends are scaled by
    1000 / T (as in Nichol & Dhariwal's code), so the data is destroyed as fully in fewer steps.
    ``"cosine"``: abar_t = f(t + 1) / f(0) with f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2, s = 0.008
    (Nichol & Dhariwal 2021): the noise grows more slowly at the start; betas capped at 0.999.
    """
    check_choice("schedule", name, SCHEDULES, noun="noise schedule")
    check_int("T", T, minimum=2)
    if name == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T, dtype=torch.float64)
    else:
        s = 0.008
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return NoiseSchedule(betas, name)


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The forward process in one jump: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, a sample of q(x_t | x_0).

    x0: (N, C, S, S) in [-1, 1]; t: (N,) int64 in [0, T); noise: (N, C, S, S) from N(0, I) -> (N, C, S, S)."""
    abar = schedule.at(schedule.alpha_bars, t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


# ============================================================================ sampling: the reverse process

def check_sampling_steps(name: str, steps: Any, T: int) -> int | None:
    """``steps`` if it is None (every one of the T steps) or an integer in [1, T], else a ValueError that names
    ``name`` (e.g. ``"--sampling-steps"``) and the training schedule's T."""
    if steps is None:
        return None
    if not is_int(steps):
        raise TypeError(f"{name} must be an integer in [1, {T}] (the number of DDIM steps), got {steps!r}")
    if not 1 <= steps <= T:
        why = "beyond the training schedule's" if steps > T else "not a positive number of steps; the schedule has"
        raise ValueError(f"{name} {steps} is {why} T = {T} steps; give an integer from 1 to {T} (fewer steps: "
                         "faster sampling, usually lower quality)")
    return steps


def network_evaluations(schedule: NoiseSchedule, sampling_steps: int | None = None) -> int:
    """Network evaluations per image: T for ancestral sampling (``sampling_steps`` None), else the DDIM steps."""
    return schedule.T if check_sampling_steps("sampling_steps", sampling_steps, schedule.T) is None \
        else sampling_steps


def _start(shape: tuple[int, ...], x_T: torch.Tensor | None, device: torch.device,
           generator: torch.Generator | None) -> torch.Tensor:
    """x_T: the given noise (checked) or a fresh N(0, I) draw."""
    if x_T is None:
        return torch.randn(shape, device=device, generator=generator)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
    return x_T.to(device=device, dtype=torch.float32)


def predict_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, eps: torch.Tensor,
               clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean image that x_t and the predicted noise imply, x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
    and the noise it implies back. With ``clip`` x0_hat is clamped to the data's range [-1, 1] and eps recomputed
    from it, as Ho et al.'s code does: early in sampling, where abar_t is tiny, a small error of eps would be
    amplified by 1 / sqrt(abar_t) (about 150 at t = T - 1). Returns ``(x0_hat, eps)``, both shaped like x_t."""
    a = float(schedule.alpha_bars[t])
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x_t - math.sqrt(a) * x0) / math.sqrt(1 - a)
    return x0, eps


@torch.no_grad()
def ancestral_sample(net: nn.Module, schedule: NoiseSchedule, shape: tuple[int, ...],
                     x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu", clip: bool = True) -> torch.Tensor:
    """Images by the reverse process of Ho et al. (2020, Algorithm 2), T network evaluations, sigma_t^2 = beta_t:

        x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) * eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z,  z ~ N(0, I)

    (no noise at the last step), written as the mean of q(x_{t-1} | x_t, x0_hat), which is the same without
    ``clip``; with it the predicted clean image is kept in [-1, 1] (``predict_x0``). ``shape``: (N, C, S, S);
    ``x_T``: the starting noise of that shape (default: drawn from ``generator``). Returns (N, C, S, S) float32 on
    ``device``, clamped to [-1, 1]."""
    x = _start(shape, x_T, torch.device(device), generator)
    betas, abars = schedule.betas.tolist(), schedule.alpha_bars.tolist()  # Python floats: any device takes them
    with eval_mode(net):
        for t in range(schedule.T - 1, -1, -1):
            eps = net(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).float()
            x0, _ = predict_x0(schedule, x, t, eps, clip)
            a_prev = abars[t - 1] if t > 0 else 1.0
            x = (math.sqrt(a_prev) * betas[t] * x0 + math.sqrt(1 - betas[t]) * (1 - a_prev) * x) / (1 - abars[t])
            if t > 0:
                x = x + math.sqrt(betas[t]) * torch.randn(x.shape, device=x.device, generator=generator)
    return x.float().clamp(-1, 1)


def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    """The sub-sequence of DDIM: ``steps`` distinct steps from T - 1 down to 0, evenly spaced, (steps,) int64
    (one step: just T - 1, straight to a clean image)."""
    check_sampling_steps("steps", steps, T)
    return torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long()


@torch.no_grad()
def ddim_sample(net: nn.Module, schedule: NoiseSchedule, shape: tuple[int, ...], steps: int, eta: float = 0.0,
                x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", clip: bool = True) -> torch.Tensor:
    """Images by DDIM (Song, Meng & Ermon 2021, eq. 12) on ``ddim_timesteps(T, steps)``: ``steps`` network
    evaluations. At each step t (next: t', with abar = 1 after the last), from the predicted clean image

        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
        x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma z,
        sigma = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t')).

    ``eta`` = 0: deterministic (the same x_T gives the same images); 1: DDPM-like noise. ``clip``: x0_hat kept in
    [-1, 1] (``predict_x0``). ``shape``, ``x_T``, ``generator``, ``device`` and the result as in
    ``ancestral_sample``."""
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1] (0: deterministic DDIM), got {eta!r}")
    x = _start(shape, x_T, torch.device(device), generator)
    abars = schedule.alpha_bars.tolist()
    ts = ddim_timesteps(schedule.T, steps).tolist()
    with eval_mode(net):
        for i, t in enumerate(ts):
            a_t = abars[t]
            a_next = abars[ts[i + 1]] if i + 1 < len(ts) else 1.0
            eps = net(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).float()
            x0_hat, eps = predict_x0(schedule, x, t, eps, clip)
            sigma = eta * math.sqrt((1 - a_next) / (1 - a_t) * (1 - a_t / a_next))
            x = math.sqrt(a_next) * x0_hat + math.sqrt(max(1 - a_next - sigma ** 2, 0.0)) * eps
            if eta > 0 and i + 1 < len(ts):
                x = x + sigma * torch.randn(x.shape, device=x.device, generator=generator)
    return x.float().clamp(-1, 1)
