"""A small U-Net for a DDPM: predicts the noise eps in a noisy image x_t, given the step t.

    >>> net = UNet(channels=1, width=32)                 # 566,945 parameters at width 32 (1 channel)
    >>> eps_hat = net(x_t, t)                            # x_t: (N, 1, 32, 32); t: (N,) int64 in [0, T)

Two resolutions below the input's (so the image size must be a multiple of 4: 16, 28, 32 and 64 all work), one
residual block per level, no attention: small enough to train on a CPU. The step t enters every residual block
through a sinusoidal embedding (as in the Transformer, and as Ho et al. 2020 use it) and a small MLP.

    (C, S, S) -> conv -> [res w] -------------------------------> concat -> [res w] -> conv -> (C, S, S)
                           | down                                    ^ up
                         [res 2w] -----------------> concat -> [res 2w]
                           | down                      ^ up
                         [res 2w] -> [res 2w] (S/4) ---+
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .checks import check_int

__all__ = ["UNet", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps: (N,) int64 t in [0, T) -> (N, dim) float32 in [-1, 1].

    The first half holds sin(t * f_k), the second cos(t * f_k), with frequencies f_k = max_period^(-k / half)
    from 1 down to 1 / max_period: nearby steps get nearby vectors, and every step a distinct one."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """norm -> SiLU -> conv 3x3, plus the step's embedding (a per-channel shift), norm -> SiLU -> conv 3x3; added
    to the input (through a 1x1 conv where the channel count changes)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """The noise predictor eps_theta(x_t, t) of a DDPM.

    Args:
        channels: image channels (1 for grayscale).
        width: channels at full resolution (2 * width below); 32 gives 566,945 parameters for one channel, 16
            gives 142,673 (the count grows as width**2).

    ``forward(x, t)``: x (N, channels, S, S) float, a noisy image (about unit variance; S a multiple of 4),
    t (N,) int64 steps in [0, T) -> (N, channels, S, S) float32, the predicted noise (unbounded).
    """

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        check_int("channels", channels)
        check_int("width", width)
        self.channels, self.width = channels, width
        w, emb = width, 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(w, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = nn.Conv2d(channels, w, 3, padding=1)
        self.down0 = ResBlock(w, w, emb)
        self.pool0 = nn.Conv2d(w, w, 3, stride=2, padding=1)
        self.down1 = ResBlock(w, 2 * w, emb)
        self.pool1 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([ResBlock(2 * w, 2 * w, emb), ResBlock(2 * w, 2 * w, emb)])
        self.up_conv1 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.up1 = ResBlock(4 * w, 2 * w, emb)
        self.up_conv0 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.up0 = ResBlock(3 * w, w, emb)
        self.norm_out = _norm(w)
        self.conv_out = nn.Conv2d(w, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # the untrained network predicts eps = 0 (the loss starts near 1)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"the U-Net takes (N, {self.channels}, S, S) images with S a multiple of 4, got "
                             f"shape {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must hold one step per image, shape ({x.shape[0]},), got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.width))
        h0 = self.down0(self.conv_in(x), emb)                      # (N, w, S, S)
        h1 = self.down1(self.pool0(h0), emb)                       # (N, 2w, S/2, S/2)
        h = self.pool1(h1)                                         # (N, 2w, S/4, S/4)
        for block in self.mid:
            h = block(h, emb)
        h = self.up_conv1(F.interpolate(h, size=h1.shape[-2:], mode="nearest"))
        h = self.up1(torch.cat([h, h1], dim=1), emb)               # (N, 2w, S/2, S/2)
        h = self.up_conv0(F.interpolate(h, size=h0.shape[-2:], mode="nearest"))
        h = self.up0(torch.cat([h, h0], dim=1), emb)               # (N, w, S, S)
        return self.conv_out(F.silu(self.norm_out(h)))
