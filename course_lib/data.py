"""Datasets for the course, all held as tensors and batched by index.

Generated 2-D / 1-D mixtures (always offline):

* ``ring8``: 8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017, Unrolled GAN).
* ``grid25``: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (Srivastava et al. 2017, VEEGAN).
* ``mixture1d``: two 1-D Gaussians, for the theory notebook.

Images, values in [-1, 1], shape (N, C, H, W):

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (always offline), resized to ``image_size``.
* ``fashion-mnist``: Zalando's 70,000 clothing images, 28x28 (resized to ``image_size``, 32 by default), with the
  official split (``split="train"``: 60,000, ``"test"``: 10,000). Read directly from the original idx ``.gz``
  files: Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``), else the data
  folder, else a torchvision download when online.
* ``mnist``: the handwritten digits, read the same way from the data folder; only a download provides them.

Where the files are looked for and how they are read is ``course_lib.data_files`` (its names are re-exported
here): the data folder is ``root`` (argument), else ``$COURSE_DATA_DIR``, else ``~/.cache/gan-course``;
``COURSE_OFFLINE=1`` forbids any download.

Every dataset also carries what metrics need: mode centres and std for mixtures, labels for images.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checks import check_choice
from .data_files import (FASHION_APT_PACKAGE, IDX_DATASETS, SYSTEM_DIRS, DatasetCorruptError,
                         DatasetUnavailableError, data_dir, idx_candidates, idx_files, idx_sources, offline, read_idx,
                         read_idx_pair, split_files)
from .utils import check_int, is_int

__all__ = ["Dataset", "DatasetUnavailableError", "DatasetCorruptError", "DATASETS", "SPLITS", "load", "ring8",
           "grid25", "mixture1d", "mixture1d_pdf", "gaussian_pdf", "digits", "idx_images", "read_idx",
           "idx_sources", "idx_files", "torchvision_images", "check_image_size", "check_split", "offline",
           "data_dir", "FASHION_CLASSES", "CLASS_NAMES", "FASHION_APT_PACKAGE", "SYSTEM_DIRS"]

POINT_DATASETS = ("ring8", "grid25", "mixture1d")
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")
DATASETS = POINT_DATASETS + IMAGE_DATASETS
IMAGE_SIZES = (8, 16, 32, 64)
SPLITS = ("train", "test", "all")
KINDS = ("points", "images")


def check_split(name: str, value: Any) -> str:
    """Return ``value`` if it is a split of the data (``SPLITS``: ``"train"``, ``"test"`` or ``"all"``), else raise
    ValueError "unknown split 'val'; valid choices are train, test, all" (``name``: the argument's name)."""
    return check_choice(name, value, SPLITS)


@dataclass
class Dataset:
    """A dataset held in memory.

    Attributes:
        name: dataset name.
        x: (N, D) float32 points, or (N, C, H, W) images as float32 in [-1, 1] or uint8 in [0, 255].
        y: (N,) int64 labels, or None. With ``num_classes`` set they must lie in [0, num_classes) (checked here).
        kind: ``"points"`` or ``"images"`` (``KINDS``).
        num_classes: number of label values, or None.
        centres: (K, D) mode centres of a mixture, or None.
        std: per-coordinate standard deviation of each mixture component, or None.
        note: free text (for example the announcement of a fallback).
        meta: facts about where the data came from, for records and messages: ``image_size``, ``split``
            (``"train"``, ``"test"`` or ``"all"``), for files read from disk ``source`` (their folder), and
            after ``subset(n)`` ``subset`` (= n). Nothing in training depends on it.
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
        check_choice("kind", self.kind, KINDS, noun="dataset kind")
        if isinstance(self.x, torch.Tensor) and self.x.is_floating_point() and self.x.dtype != torch.float32:
            self.x = self.x.float()  # the models are float32
        self.check(values=False)

    def check(self, values: bool = True) -> "Dataset":
        """Check the dataset as it is now (a trainer calls it when it starts, since ``x``, ``y`` or ``num_classes``
        may have been changed after construction); return self.

        Checks: ``kind``; ``x`` a float32 tensor (points, or images in [-1, 1]) or uint8 images, of shape (N, D)
        or (N, C, H, W), not empty; ``y`` an integer tensor of one label per sample, in [0, num_classes) when
        ``num_classes`` is set; with ``values``, also every value of ``x`` finite and float images in [-1, 1]
        (a full pass over the data).

        Raises:
            TypeError, ValueError: naming the dataset, the problem and the fix.
        """
        name, x, y = self.name, self.x, self.y
        check_choice("kind", self.kind, KINDS, noun="dataset kind")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"dataset {name!r}: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.uint8, torch.float32):
            kind = "float32" if x.is_floating_point() else "floating point"
            raise TypeError(f"dataset {name!r}: x must be {kind} (points, or images in [-1, 1]) or uint8 images in "
                            f"[0, 255], got dtype {x.dtype}; convert with x.float() (the models are float32)")
        if x.dim() < 2 or (self.kind == "images" and x.dim() != 4):
            want = "(N, C, H, W)" if self.kind == "images" else "(N, D), e.g. x[:, None] for 1-D data"
            raise ValueError(f"dataset {name!r}: x must have shape {want}, got {tuple(x.shape)}")
        if y is not None and (not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool):
            raise TypeError(f"dataset {name!r}: labels y must be an integer tensor, got "
                            f"{getattr(y, 'dtype', type(y).__name__)}")
        if len(x) == 0:
            raise ValueError(f"dataset {name!r} is empty (0 samples); check the source or the split")
        if y is not None and (y.dim() != 1 or len(y) != len(x)):
            raise ValueError(f"dataset {name!r}: {len(x)} samples but {len(y) if y.dim() else 0} labels (y of shape "
                             f"{tuple(y.shape)}); y needs one label per sample, shape ({len(x)},)")
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes)
            if y is not None:
                lo, hi = int(y.min()), int(y.max())
                if lo < 0 or hi >= self.num_classes:
                    raise ValueError(f"dataset {name!r}: labels must lie in [0, {self.num_classes}) for "
                                     f"num_classes={self.num_classes}, got values from {lo} to {hi}; fix the labels "
                                     f"or pass the right num_classes")
        if values and x.is_floating_point():
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                raise ValueError(f"dataset {name!r}: x holds {bad} NaN or infinite values; the networks cannot learn "
                                 "from them: remove or replace those samples (e.g. ds.x.nan_to_num_())")
            if self.kind == "images":
                lo, hi = float(x.min()), float(x.max())
                if lo < -1 - 1e-4 or hi > 1 + 1e-4:
                    raise ValueError(f"dataset {name!r}: float images must lie in [-1, 1] (G's tanh output), got "
                                     f"values from {lo:.4g} to {hi:.4g}; rescale them (for [0, 1]: x * 2 - 1; for "
                                     "[0, 255]: x / 127.5 - 1) or store them as uint8")
        return self

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
        if check_split("split", part) == "all":
            return self
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)).to(self.x.device)
        cut = int(round(fraction * len(self)))
        return self._take(perm[:cut] if part == "train" else perm[cut:], split=part)

    def _take(self, idx: torch.Tensor, **meta) -> "Dataset":
        """The samples at ``idx`` as a new ``Dataset`` with the same classes, mixture and note; ``meta`` added."""
        return Dataset(self.name, self.x[idx], None if self.y is None else self.y[idx], self.kind,
                       self.num_classes, self.centres, self.std, self.note, dict(self.meta, **meta))

    def subset(self, n: int, seed: int = 0) -> "Dataset":
        """``n`` samples drawn without replacement from a fixed permutation (seeded by ``seed``), as a new
        ``Dataset`` with the same classes and metadata (``meta["subset"] = n``). For quick runs and tests: a
        notebook in quick mode trains on ``data.load("fashion-mnist", split="train").subset(2000)``. Labelled
        data keep every class in about its share (a random draw, not a stratified one).

        Raises:
            ValueError: ``n`` is not a positive integer, or larger than the dataset.
        """
        check_int("n", n)
        if n > len(self):
            raise ValueError(f"dataset {self.name!r} has {len(self):,} samples, fewer than the subset of {n:,} "
                             f"asked for; ask for at most {len(self):,}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].to(self.x.device)
        return self._take(idx, subset=n)


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


def gaussian_pdf(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Density of N(mean, std^2) at ``x`` (any shape), float64, same shape as ``x`` (the library's one Gaussian
    density: the mixtures here, the theory of notebooks 01 and 02 and its widgets use it). ``mean`` and ``std``
    are floats or 0-dim tensors; with tensors that require grad the density is differentiable in them (notebook
    02 differentiates a divergence with respect to a generator's mean and std)."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def mixture1d_pdf(x: torch.Tensor, means=MIXTURE1D["means"], std: float = MIXTURE1D["std"],
                  weights=MIXTURE1D["weights"]) -> torch.Tensor:
    """Density of the 1-D two-Gaussian mixture at ``x`` (any shape), same shape as ``x``."""
    out = sum(w * gaussian_pdf(x, m, std) for m, w in zip(means, weights))
    return out.to(x.dtype) if x.is_floating_point() else out


def mixture1d(n: int = 50_000, seed: int = 0) -> Dataset:
    """(n, 1) samples of the two-Gaussian mixture N(-2, 0.5^2) / N(2, 0.5^2), equal weights."""
    centres = torch.tensor(MIXTURE1D["means"], dtype=torch.float64)[:, None]
    return _mixture(centres, MIXTURE1D["std"], n, seed, "mixture1d")


# ----------------------------------------------------------------------------- images

def check_image_size(size: int) -> int:
    """Return ``size`` if it is a supported square image size (8, 16, 32, 64), else raise ValueError."""
    if not is_int(size) or size not in IMAGE_SIZES:
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


# ----------------------------------------------------------------------------- MNIST and Fashion-MNIST

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CLASS_NAMES = {"digits": tuple(str(i) for i in range(10)), "mnist": tuple(str(i) for i in range(10)),
               "fashion-mnist": FASHION_CLASSES}
"""Label -> class name for each labelled image dataset (``CLASS_NAMES[ds.name][label]``)."""


_IDX_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _read_split(images: Path, labels: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, S, S) uint8 images and (N,) int64 labels of one idx pair, cached per process (by path and mtime)."""
    key = (str(images), images.stat().st_mtime_ns, str(labels), labels.stat().st_mtime_ns, image_size)
    if key not in _IDX_CACHE:
        x, y = read_idx_pair(images, labels)
        out = torch.empty(len(x), 1, image_size, image_size, dtype=torch.uint8)
        for i in range(0, len(x), 10_000):  # resize in chunks: bounded float memory
            chunk = x[i:i + 10_000, None].float().div_(255.0)
            out[i:i + 10_000] = _resize(chunk, image_size).mul_(255).round_().to(torch.uint8)
        if len(_IDX_CACHE) >= 4:
            _IDX_CACHE.pop(next(iter(_IDX_CACHE)))
        _IDX_CACHE[key] = (out, y)
    return _IDX_CACHE[key]


def idx_images(name: str, image_size: int = 32, root: str | os.PathLike | None = None, split: str = "train",
               download_timeout: float = 20.0) -> Dataset:
    """MNIST or Fashion-MNIST from their original idx files, as (N, 1, S, S) uint8 images (read as [-1, 1]
    floats by ``Dataset.get``) and (N,) labels 0..9, with the official split.

    Reads the files directly (gzip + big-endian header + bytes; no torchvision, no unpacked copy), from the first
    folder of ``idx_sources`` that has them; downloads them with torchvision only when none has them, the
    machine is online and ``COURSE_OFFLINE`` is not set.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        image_size: S, one of ``IMAGE_SIZES`` (the 28x28 originals are resized bilinearly).
        root: the data folder (see ``data_dir``).
        split: ``"train"`` (the official 60,000), ``"test"`` (the official 10,000) or ``"all"`` (both, train first).

    Raises:
        DatasetUnavailableError: the files are missing and cannot be downloaded (one line: what provides them).
        DatasetCorruptError: a file is truncated or damaged (the message names it).
    """
    if name not in IDX_DATASETS:
        raise ValueError(f"idx_images reads 'mnist' or 'fashion-mnist', not {name!r}")
    check_image_size(image_size)
    check_split("split", split)
    parts = ("train", "test") if split == "all" else (split,)
    split_files(name, parts, root, download_timeout)  # downloads them when no folder has them
    read = [_read_first_intact(name, part, root, image_size) for part in parts]
    x = read[0][0] if len(read) == 1 else torch.cat([r[0] for r in read])
    y = read[0][1] if len(read) == 1 else torch.cat([r[1] for r in read])
    return Dataset(name, x, y, "images", 10, meta={"image_size": image_size, "split": split, "source": read[0][2]})


def _read_first_intact(name: str, part: str, root, image_size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(images, labels, folder) of the first copy of the split in ``idx_sources`` order that reads intact; a
    damaged copy (a broken system package) is skipped with a warning when a later one is intact."""
    errors: list[DatasetCorruptError] = []
    for images, labels in idx_candidates(name, part, root):
        try:
            x, y = _read_split(images, labels, image_size)
        except DatasetCorruptError as exc:
            errors.append(exc)
            continue
        if errors:
            warnings.warn(f"skipped a damaged copy of {name} ({errors[0]}); read the intact copy in "
                          f"{images.parent} instead", stacklevel=3)
        return x, y, str(images.parent)
    raise errors[0]


def torchvision_images(name: str, image_size: int = 32, root: str | os.PathLike | None = None,
                       train: bool = True, download_timeout: float = 20.0) -> Dataset:
    """Kept for older code: ``idx_images(name, image_size, root, "train" if train else "test")``."""
    return idx_images(name, image_size, root, "train" if train else "test", download_timeout)


# ----------------------------------------------------------------------------- entry point

def load(name: str, image_size: int | None = None, root: str | os.PathLike | None = None,
         fallback: bool = False, split: str = "all", n: int = 50_000, seed: int = 0) -> Dataset:
    """Load a dataset by name (one of ``DATASETS``).

    Args:
        name: ``ring8``, ``grid25``, ``mixture1d``, ``digits``, ``mnist`` or ``fashion-mnist``.
        image_size: square image size for image datasets (8, 16, 32 or 64; default 16 for digits, 32 otherwise).
        root: the data folder (see ``data_dir``) searched for MNIST / Fashion-MNIST files and downloaded into.
        fallback: if MNIST / Fashion-MNIST cannot be had (missing offline, or a damaged file), use ``digits``
            instead and say so (warning, printed line and ``Dataset.note``). Without it, the error is raised.
        split: ``"all"``, ``"train"`` or ``"test"``: the official split for MNIST / Fashion-MNIST (60,000 /
            10,000); for the other datasets a fixed 80 % / 20 % permutation split (``Dataset.split``).
        n, seed: sample count and seed of the generated mixtures.

    Raises:
        DatasetUnavailableError: MNIST / Fashion-MNIST missing and not downloadable (the message names the
            apt package or the download), or a damaged file (``DatasetCorruptError``, naming the file).
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {', '.join(DATASETS)}")
    check_split("split", split)
    name = name.lower()
    if name in POINT_DATASETS:
        if image_size is not None:
            raise ValueError(f"image_size is for image datasets; {name!r} is a point dataset")
        check_int("n", n)
        ds = {"ring8": ring8, "grid25": grid25, "mixture1d": mixture1d}[name](n=n, seed=seed)
    elif name == "digits":
        ds = digits(16 if image_size is None else image_size)
    else:
        size = 32 if image_size is None else image_size
        try:
            return idx_images(name, size, root, split)
        except DatasetUnavailableError as exc:
            if not fallback:
                raise
            msg = f"{name} is unavailable ({exc}); falling back to the offline 'digits' dataset at {size}x{size}."
            warnings.warn(msg, stacklevel=2)
            print(msg)
            ds = digits(size)
            ds.note = msg
    return ds.split(split)
