"""A small CNN classifier for the course's offline image metrics.

Inception-based FID needs downloaded weights; the course instead trains its own small classifier on the
dataset's training split (seconds for digits, a few CPU minutes for Fashion-MNIST), and measures generated
images through it (``course_lib.metrics``):
its class probabilities give the classifier score and class coverage, its penultimate features the Frechet
distance, precision/recall and density/coverage. The numbers are therefore only comparable between runs that
use the same classifier (same dataset, image size and seed), never with published FID values.

    >>> from course_lib.classifier import get_classifier
    >>> clf = get_classifier("digits", image_size=16)      # trains once (a few seconds), then cached
    >>> clf.accuracy                                        # held-out accuracy on the test split, >= 0.97
    >>> clf.features(x).shape                               # x: (N, 1, 16, 16) in [-1, 1] -> (N, 64)

It never trains on the test split (the metrics' reference) nor on the *floor pool* (``floor_pool``): a fixed
part of the training split kept back so that the metrics' floor, real images scored like generated ones, is
drawn from images the classifier has not seen either.

The trained weights are cached in memory per process and on disk under ``data_dir()/classifiers/``
(read back with ``weights_only=True``); a missing, stale or damaged file is silently replaced by retraining.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .utils import atomic_write, check_int, eval_mode, one_thread, preserved_torch_rng

__all__ = ["Classifier", "get_classifier", "train_classifier", "floor_pool", "FEATURE_DIM", "FLOOR_POOL"]

FEATURE_DIM = 64
_VERSION = 2  # bump when the architecture or the training recipe changes: old cache files are then retrained
_CACHE: dict[tuple, "Classifier"] = {}
# training budget per dataset: (epochs, largest number of training images used; None: all but the pool)
_BUDGET = {"digits": (20, None), "mnist": (2, None), "fashion-mnist": (3, None)}
FLOOR_POOL = {"digits": 478, "mnist": 10_000, "fashion-mnist": 10_000}
"""Training images per dataset kept back from the classifier, from which the metrics' floor is drawn."""
_POOL_SEED = 20240601  # the pool is a property of the dataset, the same for every classifier seed


def floor_pool(data: str, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the train split's indices 0..n_train-1 into (fit, pool): the classifier trains on ``fit``;
    ``pool`` (``FLOOR_POOL[data]`` images, at most a third of the split) is real data it never sees. Fixed for
    a dataset (one permutation, independent of the classifier's seed); both index tensors are sorted."""
    size = min(FLOOR_POOL.get(data, 0), n_train // 3)
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(_POOL_SEED))
    return perm[size:].sort().values, perm[:size].sort().values


class Classifier(nn.Module):
    """images (N, C, S, S) in [-1, 1] -> logits (N, num_classes).

    Two blocks of [3x3 conv, batch norm, ReLU] x 2 with 2x2 max-pooling, global average pooling, then a
    ``FEATURE_DIM``-wide hidden layer (the *features*) and a linear head.

    Attributes:
        accuracy: held-out accuracy in [0, 1] on the dataset's test split (NaN before training).
        data, image_size, seed: what it was trained on.
    """

    def __init__(self, channels: int = 1, image_size: int = 16, num_classes: int = 10,
                 feature_dim: int = FEATURE_DIM, width: int = 32):
        super().__init__()
        data_mod.check_image_size(image_size)
        self.channels, self.image_size = channels, image_size
        self.num_classes, self.feature_dim = num_classes, feature_dim
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(channels, w // 2), *block(w // 2, w // 2), nn.MaxPool2d(2),
                                  *block(w // 2, w), *block(w, w), nn.MaxPool2d(2) if image_size > 8 else nn.Identity(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(w * 4, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)
        self.accuracy = float("nan")
        self.data, self.seed = "", 0

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"the classifier expects images of shape (N, {', '.join(map(str, expected))}) in "
                             f"[-1, 1], got {tuple(getattr(x, 'shape', ()))}; resize them or use the classifier "
                             f"of the right image size")
        if x.dtype == torch.uint8:
            x = x.float().div(127.5).sub(1.0)
        return x.to(next(self.parameters()).device, torch.float32)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) images in [-1, 1] -> (N, feature_dim) penultimate features (ReLU outputs, >= 0)."""
        return self.hidden(self.body(self._check(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) images in [-1, 1] -> (N, num_classes) logits."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, C, S, S) images -> (N, num_classes) class probabilities (rows sum to 1), in eval mode, on CPU."""
        return self.embed(x, batch_size)[1]

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, feature_dim) and probabilities (N, num_classes) in one pass, eval mode, CPU float32.

        ``x``: (N, C, S, S) images, float in [-1, 1] or uint8 in [0, 255] (converted batch by batch). Batches of
        ``batch_size`` bound the memory: 256 images keep the activations near 20 MB."""
        feats, probs = [], []
        with eval_mode(self):
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                if xb.dtype == torch.uint8:
                    xb = xb.float().div_(127.5).sub_(1.0)
                h = self.features(xb)
                feats.append(h.float().cpu())
                probs.append(torch.softmax(self.head(h).float(), dim=1).cpu())
        if not feats:
            raise ValueError("no images given (N = 0)")
        return torch.cat(feats), torch.cat(probs)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 1 pixel (with -1 = background padding): (N, C, S, S) -> same shape."""
    n, _, s, _ = x.shape
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=g).tolist()
    return pad[:, :, dy:dy + s, dx:dx + s]


def train_classifier(data: str = "digits", image_size: int = 16, seed: int = 0, verbose: bool = False
                     ) -> Classifier:
    """Train a ``Classifier`` on ``data``'s train split, less the floor pool (``floor_pool``), and measure
    its accuracy on the test split.

    Takes a few seconds on a CPU for ``digits`` (20 epochs of 960 images, on one thread, which is faster than
    several for such small convolutions), a few minutes for Fashion-MNIST (3 epochs of 50,000). Deterministic
    for a given seed.
    """
    if data not in data_mod.IMAGE_DATASETS:
        raise ValueError(f"the classifier is for image datasets {data_mod.IMAGE_DATASETS}, not {data!r}")
    t0 = time.perf_counter()
    train = data_mod.load(data, image_size=image_size, split="train")
    test = data_mod.load(data, image_size=image_size, split="test")
    epochs, cap = _BUDGET.get(data, (3, 12_000))
    with one_thread():  # small convolutions: one thread is faster than several (thread overhead)
        return _train(data, image_size, seed, verbose, t0, epochs, cap, train, test)


def _train(data, image_size, seed, verbose, t0, epochs, cap, train, test) -> Classifier:
    g = torch.Generator().manual_seed(seed)
    with preserved_torch_rng():  # seeded initialisation without changing what the caller draws next
        torch.manual_seed(seed)
        model = Classifier(train.sample_shape[0], image_size, train.num_classes or 10)
    idx_all = floor_pool(data, len(train))[0]
    if cap is not None and len(train) > cap:
        idx_all = idx_all[torch.randperm(len(idx_all), generator=g)[:cap]]
    batch = 64
    steps = epochs * (len(idx_all) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    model.train()
    step = 0
    for _ in range(epochs):
        perm = idx_all[torch.randperm(len(idx_all), generator=g)]
        for i in range(0, len(perm) - batch + 1, batch):
            x, y = train.get(perm[i:i + batch])
            x = _augment(x, g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    model.eval()
    probs = model.predict_proba(test.get(torch.arange(len(test)))[0])
    model.accuracy = float((probs.argmax(1) == test.y).double().mean())
    model.data, model.seed = data, seed
    if verbose:
        print(f"[course_lib] classifier for {data} {image_size}x{image_size}: held-out accuracy "
              f"{model.accuracy:.3f} ({time.perf_counter() - t0:.1f} s)")
    return model


def _cache_path(data: str, image_size: int, seed: int) -> Path:
    return data_mod.data_dir() / "classifiers" / f"{data}-{image_size}px-seed{seed}-v{_VERSION}.pt"


def _load_cached(path: Path, data: str, image_size: int, seed: int) -> Classifier | None:
    """The classifier stored at ``path``, or None if it is missing, damaged or does not match."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("version") != _VERSION or state.get("data") != data or state.get("image_size") != image_size:
            return None
        model = Classifier(state["channels"], image_size, state["num_classes"])
        model.load_state_dict(state["weights"])
        model.accuracy, model.data, model.seed = float(state["accuracy"]), data, seed
        return model.eval()
    except Exception:  # any problem with the file: retrain instead
        return None


def _save_cached(model: Classifier, path: Path) -> None:
    """Write the weights atomically; silently skip when the folder is not writable."""
    state = {"version": _VERSION, "data": model.data, "image_size": model.image_size, "channels": model.channels,
             "num_classes": model.num_classes, "accuracy": model.accuracy, "weights": model.state_dict()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(state, f), fsync=False)
    except OSError:
        pass


def get_classifier(data: str = "digits", image_size: int = 16, seed: int = 0, disk_cache: bool = True
                   ) -> Classifier:
    """The course's classifier for ``data`` at ``image_size``, in eval mode on the CPU.

    Cached in memory for the process and (``disk_cache``) on disk under ``data_dir()/classifiers/``; trained
    (a few seconds for ``digits``) when neither cache has it. For MNIST / Fashion-MNIST the data must be
    available (see ``course_lib.data.load``).
    """
    if data not in data_mod.IMAGE_DATASETS:
        raise ValueError(f"there is a classifier only for the image datasets {', '.join(data_mod.IMAGE_DATASETS)}; "
                         f"got {data!r}")
    data_mod.check_image_size(image_size)
    check_int("seed", seed, minimum=0)
    key = (data, image_size, seed)
    if key in _CACHE:
        return _CACHE[key]
    path = _cache_path(data, image_size, seed)
    model = _load_cached(path, data, image_size, seed) if disk_cache and path.is_file() else None
    if model is None:
        model = train_classifier(data, image_size, seed)
        if disk_cache:
            _save_cached(model, path)
    model.requires_grad_(False)
    _CACHE[key] = model
    return model
