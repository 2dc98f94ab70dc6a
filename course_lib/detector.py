"""A small real-versus-generated image detector, for the notebook on applications and responsibility.

The question it answers: *can a classifier tell this generator's images from real ones, on images it has not
seen during its training?* Label 1 means generated, 0 means real. The split is balanced (as many real as
generated images, so chance is 50 %) and stratified (the same share of each set is held out), and the two
parts never share an image.

    >>> from course_lib import detector
    >>> split = detector.split_real_fake(real, fake, test_fraction=0.3, seed=0)
    >>> result = detector.detect(real, fake)            # split, train, measure
    >>> result["accuracy"]                                # held-out accuracy in [0, 1]; 0.5 = chance

A detector measures one generator at one moment. Whether it transfers to other generators depends on its
training data and augmentation (Wang et al. 2020, arXiv:1912.11035), and detectors trained on GAN images
have been found to fail on diffusion models (Ojha et al. 2023, arXiv:2302.10174): a high accuracy here says
nothing about images from elsewhere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .utils import check_int, eval_mode, preserved_torch_rng

__all__ = ["Detector", "split_real_fake", "train_detector", "accuracy", "detect"]


def _check_images(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{name} must be a (N, C, S, S) image tensor, got "
                         f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold float images in [-1, 1], got dtype {x.dtype}; convert uint8 images "
                        f"with x.float() / 127.5 - 1")
    if len(x) < 2:
        raise ValueError(f"{name} has {len(x)} images; the detector needs at least 2 of each kind")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach().to("cpu", torch.float32)


class Detector(nn.Module):
    """images (N, C, S, S) in [-1, 1] -> logits (N,) of "generated" (sigmoid > 0.5 means generated).

    Two stride-2 3x3 convolutions (LeakyReLU), global average pooling and a linear head: a few thousand
    parameters, trained in seconds on a CPU.
    """

    def __init__(self, channels: int = 1, width: int = 16):
        super().__init__()
        self.channels = check_int("channels", channels)
        check_int("width", width)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"Detector expects (N, {self.channels}, S, S) images, got {tuple(x.shape)}")
        return self.net(x).squeeze(1)


def split_real_fake(real: torch.Tensor, fake: torch.Tensor, test_fraction: float = 0.3, seed: int = 0) -> dict:
    """A balanced, stratified, disjoint train / test split of real (label 0) and generated (label 1) images.

    Uses ``n = min(len(real), len(fake))`` images of each kind (chosen at random), holds out
    ``round(test_fraction * n)`` of each kind for testing, and shuffles each part.

    Args:
        real, fake: (N, C, S, S) and (M, C, S, S) float images in [-1, 1].
        test_fraction: share of each kind held out, in (0, 1). seed: seeds the permutations.

    Returns:
        ``{"train_x": (T, C, S, S), "train_y": (T,) float 0/1, "test_x": (H, C, S, S), "test_y": (H,)}`` with
        T = 2 (n - h) and H = 2 h, half of each part real and half generated.
    """
    real, fake = _check_images(real, "real"), _check_images(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real images are {tuple(real.shape[1:])} but generated ones {tuple(fake.shape[1:])}; "
                         f"generate at the data's size")
    if not isinstance(test_fraction, float) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a float in (0, 1), got {test_fraction!r}")
    n = min(len(real), len(fake))
    h = round(test_fraction * n)
    if h < 1 or h > n - 1:
        raise ValueError(f"test_fraction={test_fraction} leaves {h} of {n} images per kind for testing; both parts "
                         f"need at least one image: use more images or another fraction")
    g = torch.Generator().manual_seed(seed)
    r = real[torch.randperm(len(real), generator=g)[:n]]
    f = fake[torch.randperm(len(fake), generator=g)[:n]]
    parts = {}
    for part, sl in (("train", slice(h, n)), ("test", slice(0, h))):
        x = torch.cat([r[sl], f[sl]])
        y = torch.cat([torch.zeros(len(r[sl])), torch.ones(len(f[sl]))])
        order = torch.randperm(len(x), generator=g)
        parts[f"{part}_x"], parts[f"{part}_y"] = x[order], y[order]
    return parts


def train_detector(train_x: torch.Tensor, train_y: torch.Tensor, epochs: int = 10, batch_size: int = 64,
                   lr: float = 2e-3, seed: int = 0) -> Detector:
    """Train a ``Detector`` with binary cross-entropy (Adam) on images ``train_x`` (N, C, S, S) and labels
    ``train_y`` (N,) in {0, 1}; random horizontal shifts of one pixel as augmentation. Deterministic for a
    given seed and thread count; a few seconds for 2,000 16x16 images."""
    x = _check_images(train_x, "train_x")
    y = torch.as_tensor(train_y).float().cpu()
    if y.shape != (len(x),):
        raise ValueError(f"train_y must have shape ({len(x)},), one label per image, got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("train_y must hold 0 (real) and 1 (generated) only")
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    with preserved_torch_rng():  # seeded initialisation without changing what the caller draws next
        torch.manual_seed(seed)
        model = Detector(x.shape[1])
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx]
            shift = int(torch.randint(-1, 2, (1,), generator=g))
            if shift:
                xb = torch.roll(xb, shifts=shift, dims=3)
            loss = F.binary_cross_entropy_with_logits(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: Detector, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images ``x`` (N, C, S, S) whose predicted label (logit > 0 means generated) equals ``y`` (N,)."""
    x = _check_images(x, "x")
    y = torch.as_tensor(y).float().cpu()
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    with eval_mode(model):
        pred = (model(x) > 0).float()
    return float((pred == y).float().mean())


def detect(real: torch.Tensor, fake: torch.Tensor, test_fraction: float = 0.3, epochs: int = 10,
           seed: int = 0) -> dict:
    """Split (``split_real_fake``), train (``train_detector``) and measure a real-versus-generated detector.

    Returns:
        ``{"accuracy": held-out accuracy in [0, 1] (0.5 = chance), "train_accuracy", "n_train", "n_test",
        "model": the trained Detector}``.
    """
    s = split_real_fake(real, fake, test_fraction, seed)
    model = train_detector(s["train_x"], s["train_y"], epochs=epochs, seed=seed)
    return {"accuracy": accuracy(model, s["test_x"], s["test_y"]),
            "train_accuracy": accuracy(model, s["train_x"], s["train_y"]),
            "n_train": len(s["train_x"]), "n_test": len(s["test_x"]), "model": model}
