"""The data folder and the files of MNIST / Fashion-MNIST: where they are looked for, how they are read and checked,
and the download when none is found.

Fashion-MNIST and MNIST come as their original idx ``.gz`` files: from Debian's package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``), else from the data folder, else from a torchvision download when online.
The data folder is ``root`` (argument), else ``$COURSE_DATA_DIR``, else ``~/.cache/gan-course``.
``COURSE_OFFLINE=1`` forbids any download.

    >>> from course_lib.data_files import idx_files, read_idx
    >>> images, labels = idx_files("fashion-mnist", "train")      # paths, or None when absent (nothing read)
    >>> read_idx(images, ndim=3).shape                            # torch.Size([60000, 28, 28]), uint8

``course_lib.data`` turns the files into a ``Dataset`` (``data.load("fashion-mnist")``).
"""
from __future__ import annotations

import gzip
import math
import os
import socket
import struct
import zlib
from pathlib import Path

import torch

from .utils import env_flag

__all__ = ["DatasetUnavailableError", "DatasetCorruptError", "offline", "data_dir", "read_idx", "idx_sources",
           "idx_files", "idx_candidates", "read_idx_pair", "split_files", "FASHION_APT_PACKAGE", "SYSTEM_DIRS",
           "IDX_DATASETS", "NET_PROBE_TIMEOUT"]


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be had here (offline, download failed); the message says what to do."""


def offline() -> bool:
    """True when ``COURSE_OFFLINE`` is set to a true value (1/true/yes/on): no download is ever attempted."""
    return env_flag("COURSE_OFFLINE", False)


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: ``root``, else ``$COURSE_DATA_DIR``, else ``~/.cache/gan-course``.

    Raises:
        DatasetUnavailableError: ``root`` or ``$COURSE_DATA_DIR`` names a file, not a folder.
    """
    if root is not None:
        folder, named = Path(root).expanduser(), f"root={str(root)!r}"
    elif os.environ.get("COURSE_DATA_DIR"):
        folder, named = Path(os.environ["COURSE_DATA_DIR"]).expanduser(), \
            f"COURSE_DATA_DIR={os.environ['COURSE_DATA_DIR']!r}"
    else:
        return Path.home() / ".cache" / "gan-course"
    if folder.exists() and not folder.is_dir():
        raise DatasetUnavailableError(f"{named} is a file, not a folder; point it at the folder that holds (or will "
                                      "hold) the datasets' idx files, or unset it to use ~/.cache/gan-course")
    return folder


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


IDX_DATASETS = ("fashion-mnist", "mnist")  # the datasets read from idx files
FASHION_APT_PACKAGE = "dataset-fashion-mnist"
# Folders a system package installs the original .gz files into, searched before the data folder.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
                                            "mnist": ()}
# Sub-folders of the data folder searched, in order: the folder itself, a folder named like the dataset, and
# torchvision's layout (<root>/FashionMNIST/raw), which a torchvision download creates.
_SUBDIRS = {"fashion-mnist": (".", "fashion-mnist", "FashionMNIST/raw"), "mnist": (".", "mnist", "MNIST/raw")}
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DatasetCorruptError(DatasetUnavailableError):
    """An idx data file is truncated, empty or not an idx file; the message names the file."""


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> torch.Tensor:
    """Read one idx file (the MNIST format), gzip-compressed or not, into a uint8 tensor.

    The format: a big-endian header, ``0x00 0x00 0x08 ndim`` (0x08: unsigned bytes), then one uint32 per
    dimension, then the values. Images are ``(N, 28, 28)`` (magic 0x00000803), labels ``(N,)`` (0x00000801).

    Args:
        path: the ``.gz`` or unpacked file.
        ndim: the number of dimensions expected (3 for images, 1 for labels), or None for any.

    Returns:
        A uint8 tensor of the file's shape.

    Raises:
        DatasetCorruptError: the file is empty, truncated, not gzip/idx, or not of ``ndim`` dimensions; the
            message names the file and how to replace it.
    """
    path = Path(path)

    def bad(why: str) -> DatasetCorruptError:
        return DatasetCorruptError(f"the data file {path} is damaged: {why}. Delete it and download it again, or "
                                   f"reinstall the package that provides it (for Fashion-MNIST: apt-get install "
                                   f"--reinstall {FASHION_APT_PACKAGE})")

    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip magic
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise bad(f"cannot be read or decompressed ({type(exc).__name__}: {exc})") from None
    if len(raw) == 0:
        raise bad("it is empty (0 bytes)")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise bad(f"it does not start with an idx header of unsigned bytes (magic {raw[:4].hex() or 'missing'}, "
                  f"expected 0000080{ndim or 'N'})")
    dims_n = raw[3]
    if ndim is not None and dims_n != ndim:
        raise bad(f"it holds a {dims_n}-dimensional array, expected {ndim} ({'images' if ndim == 3 else 'labels'})")
    header = 4 + 4 * dims_n
    if len(raw) < header:
        raise bad(f"the header is cut short ({len(raw)} bytes)")
    shape = struct.unpack(f">{dims_n}I", raw[4:header])
    count = math.prod(shape)
    if count == 0:
        raise bad(f"it holds no {'images' if dims_n == 3 else 'values'} (shape {shape})")
    if len(raw) - header != count:
        raise bad(f"it holds {len(raw) - header} values after the header, but its shape {shape} needs {count} "
                  f"(truncated download?)")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_sources(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for ``name``'s idx files, in order: the system package's folder (Fashion-MNIST:
    ``/usr/share/datasets/fashion-mnist``), then the data folder (``data_dir(root)``), its ``<name>/`` and
    torchvision's ``<FashionMNIST|MNIST>/raw/`` sub-folder."""
    folder = data_dir(root)
    return [*SYSTEM_DIRS.get(name, ()), *(folder / sub for sub in _SUBDIRS[name])]


def idx_files(name: str, split: str = "train", root: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """The (images, labels) idx files of ``split`` (``"train"`` or ``"test"``) of ``name`` (``"mnist"`` or
    ``"fashion-mnist"``) that ``load`` would read, from the first folder of ``idx_sources`` that has both; None
    when no folder has them (then ``load`` would download, or fail offline). Reads nothing, downloads nothing
    (the environment report of notebook 00 uses it)."""
    if name not in _SUBDIRS or split not in _IDX_FILES:
        raise ValueError(f"idx_files knows {', '.join(_SUBDIRS)} and the splits {', '.join(_IDX_FILES)}, "
                         f"got {name!r}, {split!r}")
    return _idx_pair(name, split, root)


def idx_candidates(name: str, split: str, root: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """Every (images, labels) pair of one split, one per folder of ``idx_sources`` that has both, in search
    order (a reader falls back to the next when one is damaged)."""
    pairs = []
    for folder in idx_sources(name, root):
        files = [_find_idx(folder, stem) for stem in _IDX_FILES[split]]
        if all(files):
            pairs.append((files[0], files[1]))
    return pairs


def _idx_pair(name: str, split: str, root) -> tuple[Path, Path] | None:
    """(images, labels) files of one split in the first folder that has both, or None."""
    pairs = idx_candidates(name, split, root)
    return pairs[0] if pairs else None


def read_idx_pair(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, 28, 28) uint8 images and (N,) int64 labels (0..9) of one split's two idx files, checked to belong
    together (as many labels as images, every label a class 0..9).

    Raises:
        DatasetCorruptError: a file is damaged (``read_idx``), or the two files do not match; the message names them.
    """
    x, y = read_idx(images, ndim=3), read_idx(labels, ndim=1).long()
    if len(x) != len(y):
        raise DatasetCorruptError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels; the "
                                  f"files do not belong together: replace both")
    if len(y) and int(y.max()) > 9:
        raise DatasetCorruptError(f"the data file {labels} is damaged: labels must lie in 0..9, found "
                                  f"{int(y.max())}; replace it")
    return x, y


def _missing_message(name: str, folder: Path, why: str) -> str:
    where = ", ".join(str(p) for p in SYSTEM_DIRS.get(name, ())) or None
    get = (f"install the Debian/Ubuntu package: sudo apt-get install {FASHION_APT_PACKAGE} (files in {where}); or "
           if name == "fashion-mnist" else "")
    return (f"{name} is not on this machine (searched {where + ', ' if where else ''}{folder}) and {why}. To get it: "
            f"{get}run once online without COURSE_OFFLINE to download it into {folder} (torchvision); or point "
            f"COURSE_DATA_DIR at a folder holding its idx files; or use the offline dataset 'digits' "
            f"(fallback=True / --fallback does so automatically).")


def _download(name: str, folder: Path, download_timeout: float) -> None:
    """Download ``name`` with torchvision into ``folder/<FashionMNIST|MNIST>/raw`` (only when online)."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    if offline():
        raise DatasetUnavailableError(_missing_message(name, folder, "downloads are disabled (COURSE_OFFLINE=1)"))
    unreachable = _network_problem(getattr(cls, "mirrors", []), NET_PROBE_TIMEOUT)
    if unreachable:
        raise DatasetUnavailableError(_missing_message(
            name, folder, f"cannot be downloaded: {unreachable} (set COURSE_OFFLINE=1 to stop trying)"))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download_timeout)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cls(str(folder), train=True, download=True)  # fetches the four files of both splits
    except Exception as exc:  # network errors come in many types
        raise DatasetUnavailableError(_missing_message(
            name, folder, f"could not be downloaded: {type(exc).__name__}: {exc}")) from exc
    finally:
        socket.setdefaulttimeout(old)


def split_files(name: str, parts: tuple[str, ...], root: str | os.PathLike | None = None,
                download_timeout: float = 20.0) -> list[tuple[Path, Path]]:
    """The (images, labels) idx files of each split in ``parts`` (``"train"``, ``"test"``) of ``name``, from the
    first folder of ``idx_sources`` that has them; downloaded first (``_download``) when one is missing, the machine
    is online and ``COURSE_OFFLINE`` is not set.

    Raises:
        DatasetUnavailableError: the files are missing and cannot be downloaded (one line: what provides them).
    """
    pairs = [_idx_pair(name, part, root) for part in parts]
    if not all(pairs):
        folder = data_dir(root)
        _download(name, folder, download_timeout)
        pairs = [_idx_pair(name, part, root) for part in parts]
        if not all(pairs):
            raise DatasetUnavailableError(_missing_message(name, folder, "the download did not produce its files"))
    return pairs
