"""Datasets for the course, all held as tensors and batched by index.

Generated 2-D / 1-D mixtures (always offline):

* ``ring8``: 8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017, Unrolled GAN).
* ``grid25``: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (Srivastava et al. 2017, VEEGAN).
* ``mixture1d``: two 1-D Gaussians, for the theory notebook.

Images, values in [-1, 1], shape (N, C, H, W):

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (always offline), resized to ``image_size``.
* ``mnist``, ``fashion-mnist``: through torchvision, downloaded when online into ``root`` (argument), else
  ``$COURSE_DATA_DIR``, else ``~/.cache/gan-course``. ``COURSE_OFFLINE=1`` forbids any download.

Every dataset also carries what metrics need: mode centres and std for mixtures, labels for images.
"""
from __future__ import annotations

import math
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["Dataset", "DatasetUnavailableError", "DATASETS", "load", "ring8", "grid25", "mixture1d",
           "mixture1d_pdf", "digits", "torchvision_images", "check_image_size", "offline", "data_dir"]

POINT_DATASETS = ("ring8", "grid25", "mixture1d")
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")
DATASETS = POINT_DATASETS + IMAGE_DATASETS
IMAGE_SIZES = (8, 16, 32, 64)


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be had here (offline, download failed); the message says what to do."""


@dataclass
class Dataset:
    """A dataset held in memory.

    Attributes:
        name: dataset name.
        x: (N, D) float32 points, or (N, C, H, W) images as float32 in [-1, 1] or uint8 in [0, 255].
        y: (N,) int64 labels, or None.
        kind: ``"points"`` or ``"images"``.
        num_classes: number of label values, or None.
        centres: (K, D) mode centres of a mixture, or None.
        std: per-coordinate standard deviation of each mixture component, or None.
        note: free text (for example the announcement of a fallback).
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor | None = None
    kind: str = "points"
    num_classes: int | None = None
    centres: torch.Tensor | None = None
    std: float | None = None
    note: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor):
            raise TypeError(f"dataset {self.name!r}: x must be a torch.Tensor, got {type(self.x).__name__}")
        if self.x.dtype != torch.uint8 and not self.x.is_floating_point():
            raise TypeError(f"dataset {self.name!r}: x must be floating point (points, or images in [-1, 1]) or "
                            f"uint8 images in [0, 255], got dtype {self.x.dtype}; convert with x.float()")
        if self.x.is_floating_point() and self.x.dtype != torch.float32:
            self.x = self.x.float()  # the models are float32
        if self.x.dim() < 2 or (self.kind == "images" and self.x.dim() != 4):
            want = "(N, C, H, W)" if self.kind == "images" else "(N, D), e.g. x[:, None] for 1-D data"
            raise ValueError(f"dataset {self.name!r}: x must have shape {want}, got {tuple(self.x.shape)}")
        if self.y is not None and (not isinstance(self.y, torch.Tensor) or self.y.is_floating_point()
                                   or self.y.dtype == torch.bool):
            raise TypeError(f"dataset {self.name!r}: labels y must be an integer tensor, got "
                            f"{getattr(self.y, 'dtype', type(self.y).__name__)}")
        if len(self.x) == 0:
            raise ValueError(f"dataset {self.name!r} is empty (0 samples); check the source or the split")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"dataset {self.name!r}: {len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (D,) for points, (C, H, W) for images."""
        return tuple(self.x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> "Dataset":
        """Move the tensors to ``device`` (once, before training) and return self."""
        self.x = self.x.to(device)
        if self.y is not None:
            self.y = self.y.to(device)
        return self

    def get(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Samples at ``index`` ((B,) int64 on the data's device) as float32 (uint8 images become [-1, 1])."""
        x = self.x[index]
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)
        y = None if self.y is None else self.y[index]
        return x, y

    def split(self, part: str, fraction: float = 0.8, seed: int = 0) -> "Dataset":
        """A deterministic ``"train"`` (first ``fraction``) or ``"test"`` part of a fixed permutation."""
        if part == "all":
            return self
        if part not in ("train", "test"):
            raise ValueError(f"unknown split {part!r}; use 'train', 'test' or 'all'")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)).to(self.x.device)
        cut = int(round(fraction * len(self)))
        idx = perm[:cut] if part == "train" else perm[cut:]
        return Dataset(self.name, self.x[idx], None if self.y is None else self.y[idx], self.kind,
                       self.num_classes, self.centres, self.std, self.note, dict(self.meta, split=part))


# ----------------------------------------------------------------------------- mixtures

def _mixture(centres: torch.Tensor, std: float, n: int, seed: int, name: str) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(centres), (n,), generator=g)
    x = centres[which] + std * torch.randn(n, centres.shape[1], generator=g)
    return Dataset(name, x.float(), which, "points", None, centres.float(), std)


def ring8(n: int = 50_000, radius: float = 2.0, std: float = 0.02, seed: int = 0) -> Dataset:
    """(n, 2) points from 8 Gaussians at angles 2*pi*k/8, k = 0..7 (no repeated end point), radius 2."""
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return _mixture(centres, std, n, seed, "ring8")


def grid25(n: int = 50_000, std: float = 0.05, seed: int = 0) -> Dataset:
    """(n, 2) points from 25 Gaussians centred on {-4, -2, 0, 2, 4}^2, std 0.05."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    centres = torch.cartesian_prod(axis, axis)
    return _mixture(centres, std, n, seed, "grid25")


MIXTURE1D = {"means": (-2.0, 2.0), "std": 0.5, "weights": (0.5, 0.5)}


def mixture1d_pdf(x: torch.Tensor, means=MIXTURE1D["means"], std: float = MIXTURE1D["std"],
                  weights=MIXTURE1D["weights"]) -> torch.Tensor:
    """Density of the 1-D two-Gaussian mixture at ``x`` (any shape), same shape as ``x``."""
    out = torch.zeros_like(x, dtype=torch.float64)
    for m, w in zip(means, weights):
        out = out + w * torch.exp(-0.5 * ((x.double() - m) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return out.to(x.dtype) if x.is_floating_point() else out


def mixture1d(n: int = 50_000, seed: int = 0) -> Dataset:
    """(n, 1) samples of the two-Gaussian mixture N(-2, 0.5^2) / N(2, 0.5^2), equal weights."""
    centres = torch.tensor(MIXTURE1D["means"], dtype=torch.float64)[:, None]
    return _mixture(centres, MIXTURE1D["std"], n, seed, "mixture1d")


# ----------------------------------------------------------------------------- images

def check_image_size(size: int) -> int:
    """Return ``size`` if it is a supported square image size (8, 16, 32, 64), else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, int) or size not in IMAGE_SIZES:
        raise ValueError(f"image size {size!r} is not supported; the DCGAN models need a power of two in "
                         f"{IMAGE_SIZES}")
    return size


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, h, w) float images in [0, 1] -> (N, C, size, size), clamped to [0, 1]."""
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < x.shape[-1])
    return x.clamp_(0, 1)


def digits(image_size: int = 16) -> Dataset:
    """scikit-learn's 1,797 handwritten digits as (1797, 1, S, S) float32 in [-1, 1], labels 0..9."""
    from sklearn.datasets import load_digits

    check_image_size(image_size)
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    x = _resize(x, image_size) * 2 - 1
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return Dataset("digits", x.contiguous(), y, "images", 10, meta={"image_size": image_size})


def offline() -> bool:
    """True when ``COURSE_OFFLINE`` is set to a true value: no download is ever attempted."""
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: ``root``, else ``$COURSE_DATA_DIR``, else ``~/.cache/gan-course``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("COURSE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gan-course"


NET_PROBE_TIMEOUT = 3.0  # seconds to find and reach a download server before giving up


def _network_problem(urls: list[str], timeout: float) -> str | None:
    """None if one of the servers in ``urls`` accepts a connection within ``timeout`` seconds, else the reason.

    Name lookup is not bounded by socket timeouts, so the probe runs in a daemon thread that is abandoned if
    it takes too long: without a network this returns within ``timeout`` seconds instead of hanging.
    """
    import threading
    from urllib.parse import urlsplit

    from urllib.request import getproxies, proxy_bypass

    proxies = getproxies()
    targets = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in proxies and parts.hostname and not proxy_bypass(parts.hostname):
            parts = urlsplit(proxies[parts.scheme])  # downloads go through the proxy: probe it instead
        if parts.hostname:
            targets.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    if not targets:
        return None
    errors: list[str] = []
    ok = threading.Event()

    def probe() -> None:
        for host, port in targets:
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                ok.set()
                return
            except OSError as exc:
                errors.append(f"{host}: {type(exc).__name__}: {exc}")

    worker = threading.Thread(target=probe, name="course_lib-net-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if ok.is_set():
        return None
    if worker.is_alive():
        return f"no answer from {targets[0][0]} within {timeout:g} s (no network?)"
    return "no download server could be reached (" + "; ".join(errors) + ")"


def torchvision_images(name: str, image_size: int = 32, root: str | os.PathLike | None = None,
                       train: bool = True, download_timeout: float = 20.0) -> Dataset:
    """MNIST or Fashion-MNIST as (N, 1, S, S) uint8 tensors (read as [-1, 1] floats by ``Dataset.get``).

    Uses files already in the data folder; downloads only when online and ``COURSE_OFFLINE`` is not set.

    Raises:
        DatasetUnavailableError: the files are missing and cannot be downloaded (the message says why and
            what to do).
    """
    from torchvision import datasets

    check_image_size(image_size)
    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    folder = data_dir(root)
    try:  # files already there: never touch the network
        ds = cls(str(folder), train=train, download=False)
    except RuntimeError:
        if offline():
            raise DatasetUnavailableError(
                f"{name} is not in {folder} and downloads are disabled (COURSE_OFFLINE=1). Run once online "
                f"without COURSE_OFFLINE to download it, point COURSE_DATA_DIR at a folder that has it, or use "
                f"the offline dataset 'digits' (or pass fallback=True / --fallback to use it automatically)."
            ) from None
        unreachable = _network_problem(getattr(cls, "mirrors", []), NET_PROBE_TIMEOUT)
        if unreachable:
            raise DatasetUnavailableError(
                f"{name} is not in {folder} and cannot be downloaded: {unreachable}. Check the network (or set "
                f"COURSE_OFFLINE=1 to stop trying), point COURSE_DATA_DIR at a folder that has it, or use the "
                f"offline dataset 'digits' (fallback=True / --fallback does so automatically).")
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(download_timeout)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ds = cls(str(folder), train=train, download=True)
        except Exception as exc:  # network errors come in many types
            raise DatasetUnavailableError(
                f"{name} could not be downloaded into {folder}: {type(exc).__name__}: {exc}. Check the network, "
                f"or use the offline dataset 'digits' (fallback=True / --fallback does so automatically)."
            ) from exc
        finally:
            socket.setdefaulttimeout(old)
    x = ds.data[:, None].float() / 255.0
    x = (_resize(x, image_size) * 255).round().to(torch.uint8)
    return Dataset(name, x, ds.targets.clone().long(), "images", 10, meta={"image_size": image_size})


# ----------------------------------------------------------------------------- entry point

def load(name: str, image_size: int | None = None, root: str | os.PathLike | None = None,
         fallback: bool = False, split: str = "all", n: int = 50_000, seed: int = 0) -> Dataset:
    """Load a dataset by name (one of ``DATASETS``).

    Args:
        name: ``ring8``, ``grid25``, ``mixture1d``, ``digits``, ``mnist`` or ``fashion-mnist``.
        image_size: square image size for image datasets (8, 16, 32 or 64; default 16 for digits, 32 otherwise).
        root: data folder for downloads (see ``data_dir``).
        fallback: if MNIST / Fashion-MNIST cannot be had, use ``digits`` instead and say so (warning and
            ``Dataset.note``). Without it, the error is raised.
        split: ``"all"``, ``"train"`` (80 %) or ``"test"`` (20 %), a fixed split for held-out metrics.
        n, seed: sample count and seed of the generated mixtures.
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {', '.join(DATASETS)}")
    name = name.lower()
    if name in POINT_DATASETS:
        if image_size is not None:
            raise ValueError(f"image_size is for image datasets; {name!r} is a point dataset")
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive number of samples, got {n!r}")
        ds = {"ring8": ring8, "grid25": grid25, "mixture1d": mixture1d}[name](n=n, seed=seed)
    elif name == "digits":
        ds = digits(16 if image_size is None else image_size)
    else:
        size = 32 if image_size is None else image_size
        try:
            ds = torchvision_images(name, size, root)
        except DatasetUnavailableError as exc:
            if not fallback:
                raise
            msg = f"{name} is unavailable ({exc}); falling back to the offline 'digits' dataset at {size}x{size}."
            warnings.warn(msg, stacklevel=2)
            print(msg)
            ds = digits(size)
            ds.note = msg
    return ds.split(split)
