"""Generators and discriminators.

* ``MLPGenerator`` / ``MLPDiscriminator``: for low-dimensional data (the 2-D mixtures).
* ``DCGANGenerator`` / ``DCGANDiscriminator``: for square images of size 8, 16, 32 or 64 with any channel
  count (Radford et al. 2015), optionally class-conditional (Mirza & Osindero 2014): the generator reads a
  label embedding beside z, the discriminator uses a projection head (Miyato & Koyama 2018).
* ``dcgan_weights_init``: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales, zero biases.

Every discriminator returns raw logits of shape (N,): apply ``torch.sigmoid`` to read D(x) as a probability.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .data import check_image_size
from .utils import check_int, check_positive_number

__all__ = ["MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "dcgan_weights_init",
           "build_models", "MODELS", "count_parameters"]

MODELS = ("mlp", "dcgan")


def _check_positive(**kwargs) -> None:
    """``check_int`` (a positive integer) on each keyword argument, in order."""
    for k, v in kwargs.items():
        check_int(k, v)


def _check_labels(y: torch.Tensor | None, num_classes: int | None, who: str) -> None:
    if num_classes is None:
        return
    if y is None:
        raise ValueError(f"{who} is class-conditional ({num_classes} classes): pass labels y of shape (N,)")
    if y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{who}: labels must be an integer tensor, got dtype {y.dtype}")


def check_latent_codes(name: str, codes: int, latent_dim: int) -> int:
    """Return ``codes`` if it is 0 (a Gaussian latent) or K in [2, latent_dim - 1]: K one-hot codes and at least
    one continuous coordinate (``MLPGenerator``; ``TrainConfig.latent_codes``); else raise ValueError."""
    if not (codes == 0 or 2 <= codes < latent_dim):
        raise ValueError(f"{name} must be 0 (a Gaussian latent) or in [2, latent_dim - 1] = [2, {latent_dim - 1}] "
                         f"(2 <= {name} < latent_dim: K codes plus at least one continuous coordinate), got {codes!r}")
    return codes


CODE_NOISE_SCALE = 0.1  # scale of the continuous part of a disconnected latent (the code is one-hot: norm 1)


class MLPGenerator(nn.Module):
    """z (N, latent_dim) -> x (N, out_dim), unbounded real values.

    ``depth`` hidden layers of width ``hidden`` with ReLU. With ``codes`` = K >= 2 the latent is
    disconnected: the network reads ``[one_hot(argmax z[:, :K]), code_scale * z[:, K:]]``, a code
    uniform over K values (the argmax of K iid Gaussians) and latent_dim - K small continuous coordinates:
    K separate islands of noise. A continuous generator of a connected latent (codes=0, z Gaussian) must
    pass between the modes of a mixture somewhere, and those samples are off the data; here it can send each
    island to one mode and place nothing between them (Khayatkhoei et al. 2018; Tanielian et al. 2020).
    z stays N(0, I) either way, so every sampler and checkpoint works unchanged.

    ``init_gain``: the first layer's weights start at ``init_gain`` times PyTorch's default (biases unchanged).
    Only the start changes: the weights (and checkpoints) are ordinary. ring8's recipe uses 15 (with batch 256
    and 4,000 steps; at batch 512 seed 4 fell to 95.8 % on the AMD EPYCs): ``benchmarks/RESULTS-recipes.md``, "What
    was tried".
    """

    def __init__(self, latent_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 3, codes: int = 0,
                 code_scale: float = CODE_NOISE_SCALE, init_gain: float = 1.0):
        super().__init__()
        _check_positive(latent_dim=latent_dim, out_dim=out_dim, hidden=hidden, depth=depth)
        check_positive_number("init_gain", init_gain)
        check_latent_codes("codes", codes, latent_dim)
        self.latent_dim, self.out_dim, self.num_classes, self.codes = latent_dim, out_dim, None, codes
        self.code_scale = code_scale
        layers, width = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.net[0].weight.mul_(init_gain)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"MLPGenerator expects z of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        if self.codes:
            k = self.codes
            z = torch.cat([F.one_hot(z[:, :k].argmax(1), k).to(z.dtype), self.code_scale * z[:, k:]], 1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x (N, in_dim) -> logits (N,). LeakyReLU(0.2) hidden layers; optional spectral normalisation."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, spectral_norm: bool = False):
        super().__init__()
        _check_positive(in_dim=in_dim, hidden=hidden, depth=depth)
        self.in_dim, self.num_classes = in_dim, None
        wrap = _sn if spectral_norm else (lambda m: m)
        layers, width = [], in_dim
        for _ in range(depth):
            layers += [wrap(nn.Linear(width, hidden)), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(wrap(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPDiscriminator expects x of shape (N, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)


def _n_upsamples(image_size: int) -> int:
    """Number of stride-2 layers between 4x4 and ``image_size``."""
    return int(math.log2(check_image_size(image_size))) - 2


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [+ labels (N,)] -> images (N, channels, S, S) in [-1, 1] (tanh).

    A 4x4 transposed convolution from z, then stride-2 transposed convolutions that double the size and halve
    the width down to ``width`` (ngf), batch norm and ReLU in between; S = ``image_size``.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 1, image_size: int = 32, width: int = 64,
                 num_classes: int | None = None, embed_dim: int = 32):
        super().__init__()
        _check_positive(latent_dim=latent_dim, channels=channels, width=width)
        n_up = _n_upsamples(image_size)
        self.latent_dim, self.channels = latent_dim, channels
        self.image_size, self.num_classes = image_size, num_classes
        in_dim = latent_dim
        if num_classes is not None:
            _check_positive(num_classes=num_classes, embed_dim=embed_dim)
            self.embed = nn.Embedding(num_classes, embed_dim)
            in_dim += embed_dim
        w = width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, w, 4, 1, 0, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(True)]
            w //= 2
        layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() == 4 and z.shape[2:] == (1, 1):
            z = z.flatten(1)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"DCGANGenerator expects z of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        _check_labels(y, self.num_classes, "DCGANGenerator")
        if self.num_classes is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """images (N, channels, S, S) [+ labels (N,)] -> logits (N,).

    Stride-2 convolutions that halve the size and double the width from ``width`` (ndf) down to 4x4,
    LeakyReLU(0.2), batch norm after the first layer (or spectral normalisation instead), then a linear head
    on the 4x4 features; the class-conditional version adds the projection term <embed(y), features>.
    """

    def __init__(self, channels: int = 1, image_size: int = 32, width: int = 64, num_classes: int | None = None,
                 spectral_norm: bool = False):
        super().__init__()
        _check_positive(channels=channels, width=width)
        n_down = _n_upsamples(image_size)
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        wrap = _sn if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [wrap(nn.Conv2d(channels, width, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, True)]
        w = width
        for _ in range(n_down - 1):
            layers.append(wrap(nn.Conv2d(w, w * 2, 4, 2, 1, bias=spectral_norm)))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(w * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            w *= 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = w * 16
        self.head = wrap(nn.Linear(self.feature_dim, 1))
        if num_classes is not None:
            _check_positive(num_classes=num_classes)
            self.embed = wrap(nn.Embedding(num_classes, self.feature_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"DCGANDiscriminator expects images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        _check_labels(y, self.num_classes, "DCGANDiscriminator")
        h = self.features(x).flatten(1)
        out = self.head(h).squeeze(1)
        if self.num_classes is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out


@torch.no_grad()
def dcgan_weights_init(module: nn.Module) -> None:
    """DCGAN initialisation, used as ``model.apply(dcgan_weights_init)``.

    Convolutions and linear layers: weights ~ N(0, 0.02); batch norm: scale ~ N(1, 0.02), shift 0; biases 0.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(model: str, sample_shape: tuple[int, ...], latent_dim: int, g_width: int, d_width: int,
                 depth: int = 3, num_classes: int | None = None, spectral_norm: bool = False, latent_codes: int = 0,
                 g_init_gain: float = 1.0) -> tuple[nn.Module, nn.Module]:
    """Build (G, D) for data whose samples have ``sample_shape`` ((D,) points or (C, S, S) images);
    ``latent_codes`` and ``g_init_gain``: the MLP generator's categorical code and first-layer gain
    (``MLPGenerator``'s ``codes`` and ``init_gain``)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid models are {', '.join(MODELS)}")
    if model == "mlp":
        if len(sample_shape) != 1:
            raise ValueError(f"the 'mlp' model is for point data of shape (N, D); these samples have shape "
                             f"{sample_shape}: use model='dcgan' for images")
        if num_classes is not None:
            raise ValueError("the 'mlp' model is unconditional; use model='dcgan' for a conditional GAN")
        return (MLPGenerator(latent_dim, sample_shape[0], g_width, depth, latent_codes, init_gain=g_init_gain),
                MLPDiscriminator(sample_shape[0], d_width, depth, spectral_norm))
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ValueError(f"the 'dcgan' model needs square images (C, S, S); got samples of shape {sample_shape}")
    if g_init_gain != 1.0:
        raise ValueError("g_init_gain is a feature of the 'mlp' model (points); use g_init_gain=1.0 with 'dcgan'")
    if latent_codes:
        raise ValueError("latent_codes is a feature of the 'mlp' model (points); use latent_codes=0 with 'dcgan'")
    c, s, _ = sample_shape
    G = DCGANGenerator(latent_dim, c, s, g_width, num_classes)
    D = DCGANDiscriminator(c, s, d_width, num_classes, spectral_norm)
    G.apply(dcgan_weights_init)
    D.apply(dcgan_weights_init)
    return G, D


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
