"""Standard FID and KID in Inception-v3 features, optional.

Papers report FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) in the features of one particular
Inception-v3 network, ``pt_inception-2015-12-05``. Its weights cannot be shipped with the course or downloaded
offline, so the course's own metrics (``course_lib.metrics``) use its small classifier instead. When the weights
file is at hand, point ``COURSE_FID_WEIGHTS`` at it and install the extra (``pip install -e ".[fid]"``, which
brings torch-fidelity): ``metrics.evaluate_images`` then also reports ``standard_fid``, ``standard_kid`` and
``standard_kid_sd``, computed by torch-fidelity (``feature_extractor_weights_path``), never by a hand-written
Inception. Nothing here ever downloads: without the variable one line says how to enable it.

The file is ``weights-inception-2015-12-05-6726825d.pth`` from torch-fidelity's or pytorch-fid's releases
(the TensorFlow FID network converted to PyTorch); download it once on a machine with internet.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["WEIGHTS_ENV", "StandardFIDUnavailable", "weights_path", "standard_metrics", "compute_standard"]

WEIGHTS_ENV = "COURSE_FID_WEIGHTS"
NOT_SET = (f"standard FID/KID not computed: set {WEIGHTS_ENV} to the pt_inception-2015-12-05 weights file and "
           f"pip install -e \".[fid]\" to report them (the course's own metrics are above)")


class StandardFIDUnavailable(RuntimeError):
    """Standard FID was asked for (``COURSE_FID_WEIGHTS`` is set) but cannot be computed; the message says why."""


def weights_path() -> Path | None:
    """The Inception weights file named by ``COURSE_FID_WEIGHTS``, or None when the variable is unset or empty.

    Raises:
        StandardFIDUnavailable: the variable names no readable file (no download is attempted).
    """
    raw = os.environ.get(WEIGHTS_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise StandardFIDUnavailable(f"{WEIGHTS_ENV}={raw!r} is not a file; point it at the downloaded "
                                     f"pt_inception-2015-12-05 weights (nothing is downloaded), or unset it")
    return path


def _as_rgb_uint8(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> (N, 3, H, W) uint8 (grey images repeated over 3 channels)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"standard FID needs grey or RGB images, got {x.shape[1]} channels")
    return x.contiguous()


class _Images(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def compute_standard(fake: torch.Tensor, real: torch.Tensor, weights: str | os.PathLike,
                     kid_subset_size: int = 1000) -> dict:
    """Standard FID and KID of ``fake`` against ``real`` with torch-fidelity and the given weights file.

    Args:
        fake: (N, C, H, W), real: (M, C, H, W) images in [-1, 1], C = 1 or 3 (resized to 299 inside).
        weights: the pt_inception-2015-12-05 weights file.

    Returns:
        ``{"standard_fid", "standard_kid", "standard_kid_sd", "standard_weights"}``.

    Raises:
        StandardFIDUnavailable: torch-fidelity is not installed (the message gives the pip command).
    """
    try:
        import torch_fidelity
    except ImportError:
        raise StandardFIDUnavailable(f"{WEIGHTS_ENV} is set but torch-fidelity is not installed; run "
                                     f"pip install -e \".[fid]\" (or unset {WEIGHTS_ENV})") from None
    a, b = _as_rgb_uint8(fake), _as_rgb_uint8(real)
    result = torch_fidelity.calculate_metrics(
        input1=_Images(a), input2=_Images(b), fid=True, kid=True, isc=False,
        kid_subset_size=min(kid_subset_size, len(a), len(b)), feature_extractor_weights_path=str(weights),
        cuda=torch.cuda.is_available(), cache=False, verbose=False)
    return {"standard_fid": float(result["frechet_inception_distance"]),
            "standard_kid": float(result["kernel_inception_distance_mean"]),
            "standard_kid_sd": float(result["kernel_inception_distance_std"]), "standard_weights": str(weights)}


def standard_metrics(fake: torch.Tensor, real: torch.Tensor) -> dict:
    """Standard FID / KID when ``COURSE_FID_WEIGHTS`` is set (``compute_standard``), else
    ``{"standard_fid": one line saying how to enable it}``. Never downloads.

    Raises:
        StandardFIDUnavailable: the variable is set but the file or torch-fidelity is missing.
    """
    path = weights_path()
    if path is None:
        return {"standard_fid": NOT_SET}
    return compute_standard(fake, real, path)
