"""Trained models that ship with the course, loaded by name.

    >>> from course_lib.pretrained import load_pretrained, names
    >>> names()
    ('fashion-dcgan', 'fashion-cgan', 'fashion-recipe', 'fashion-recipe-long', 'ring8', 'fashion-ddpm')
    >>> G = load_pretrained("fashion-recipe")               # an nn.Module in eval mode, on the CPU
    >>> x = G(torch.randn(64, G.latent_dim))                # (64, 1, 32, 32) images in [-1, 1]
    >>> ddpm = load_pretrained_model("fashion-ddpm")        # a generation.LoadedModel: 50 DDIM steps by default
    >>> x = ddpm.sample(64)                                 # (64, 1, 32, 32) images in [-1, 1]

and on the command line ``python -m course_lib sample --checkpoint pretrained:fashion-recipe --out x.png``,
``python -m course_lib evaluate --checkpoint pretrained:fashion-recipe`` and ``python -m course_lib pretrained``
(the list).

Each model is a row of ``MODELS``: the recipe (``TrainConfig.for_data(data, **changes)``) and the seed that
made it. ``python tools/make_pretrained.py NAME`` trains it, writes ``course_lib/pretrained/NAME.pt`` and records
the file's SHA-256, size and metrics in ``course_lib/pretrained/manifest.json`` (and the table
``benchmarks/RESULTS-pretrained.md``).

A shipped file is an ordinary course checkpoint (``course_lib.checkpoint``: read with ``weights_only``, its schema
and its internal checksum checked) that holds the generator only: ``G`` is the generator that sampling uses (the
EMA of the weights when the recipe keeps one), ``D`` is empty and there are no optimiser states, so it samples and
evaluates but cannot resume training. A DDPM (``fashion-ddpm``) is shipped the same way: its ``G`` is the EMA
of its U-Net; it is sampled and evaluated with its ``sampling_steps`` DDIM steps unless ``--sampling-steps`` says
otherwise (``default_sampling_steps``). Before it is read, the whole file's SHA-256 is compared with the manifest: a
changed or missing file is refused, naming the file and the command that re-makes it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .checkpoint import CheckpointError
from .config import TrainConfig
from .recipes import DCGAN

if TYPE_CHECKING:
    from .generation import LoadedModel

__all__ = ["PretrainedModel", "MODELS", "PREFIX", "PRETRAINED_DIR", "MANIFEST", "names", "get", "manifest",
           "remake_command", "pretrained_path", "resolve_checkpoint", "evaluation_out", "load_pretrained",
           "file_sha256", "generator_only_state", "load_pretrained_model", "default_sampling_steps",
           "evaluation_samples", "class_shares", "metric_line", "describe"]

PREFIX = "pretrained:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
MANIFEST = PRETRAINED_DIR / "manifest.json"
MAX_FILE_BYTES = 5 * 2**20  # each shipped file: at most 5 MiB
MAX_TOTAL_BYTES = 25 * 2**20  # all of them together


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model: ``TrainConfig.for_data(data, seed=seed, **changes)`` trained to its last step.

    ``summary`` says in one line what it is (shown by ``python -m course_lib pretrained``); ``notebook`` names the
    notebook that trains the same model; ``recipe`` is the ``changes`` as the source writes them (for the table)."""

    name: str
    summary: str
    data: str
    notebook: str
    changes: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    recipe: str = ""
    sampling_steps: int | None = None  # a DDPM's DDIM steps when it is sampled and evaluated (None: a GAN)

    def config(self) -> TrainConfig:
        """The training configuration that makes this model (CPU, no speed options)."""
        return TrainConfig.for_data(self.data, **{**self.changes, "seed": self.seed, "device": "cpu"})

    @property
    def recipe_call(self) -> str:
        """The call that makes the config, as text: ``TrainConfig.for_data('ring8', seed=0)``."""
        changes = self.recipe or "".join(f", {k}={v!r}" for k, v in self.changes.items()).lstrip(", ")
        return f"TrainConfig.for_data({self.data!r}, seed={self.seed}" + (f", {changes}" if changes else "") + ")"

    @property
    def file(self) -> Path:
        """Where the shipped file lives: ``course_lib/pretrained/<name>.pt``."""
        return PRETRAINED_DIR / f"{self.name}.pt"


MODELS: dict[str, PretrainedModel] = {m.name: m for m in (
    PretrainedModel("fashion-dcgan", "Radford et al.'s DCGAN (batch norm, BCE, Adam (0.5, 0.999)) on Fashion-MNIST "
                    "32x32, unconditional", "fashion-mnist", "04", dict(DCGAN["fashion-mnist"]),
                    recipe='**recipes.DCGAN["fashion-mnist"]'),
    PretrainedModel("fashion-cgan", "class-conditional DCGAN (label embedding in G, projection D) with the course "
                    "recipe on Fashion-MNIST 32x32", "fashion-mnist", "08", dict(conditional=True)),
    PretrainedModel("fashion-recipe", "the course's unconditional recipe (hinge, spectral norm, TTUR, EMA) on "
                    "Fashion-MNIST 32x32", "fashion-mnist", "07", dict(conditional=False)),
    PretrainedModel("fashion-recipe-long", "the same recipe trained for 5,400 steps, about the training CPU time of "
                    "fashion-ddpm (notebook 10 compares the two at equal cost)", "fashion-mnist", "10",
                    dict(conditional=False, steps=5400)),
    PretrainedModel("ring8", "the course's ring8 recipe: an MLP GAN on 8 Gaussians in a ring (2-D points)", "ring8",
                    "03"),
    PretrainedModel("fashion-ddpm", "a small DDPM (U-Net width 16, T = 1000, linear schedule, EMA) on "
                    "Fashion-MNIST 32x32, sampled with 50 DDIM steps", "fashion-mnist", "10",
                    dict(model="ddpm", g_width=16, steps=2000, checkpoint_every=500),
                    recipe='model="ddpm", g_width=16, steps=2000, checkpoint_every=500', sampling_steps=50),
)}


def names() -> tuple[str, ...]:
    """The names of the shipped models, in the order of ``MODELS``."""
    return tuple(MODELS)


def remake_command(name: str) -> str:
    """The command line (run in the repository's root) that trains ``name`` again and writes its file."""
    return f"python tools/make_pretrained.py {name}"


def get(name: str) -> PretrainedModel:
    """The registry row of ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; the shipped models are {', '.join(MODELS)} "
                         "(python -m course_lib pretrained lists them)")
    return MODELS[name]


def manifest() -> dict[str, dict[str, Any]]:
    """``manifest.json``: for each made model its ``file``, ``sha256``, ``bytes``, ``step``, ``config``,
    ``train_cpu_seconds`` (CPU seconds of its training loop) and ``metric`` (a line of its evaluation); {} when no
    model has been made."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (64 hex digits) of the bytes of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pretrained_path(name: str) -> Path:
    """The checked path of the shipped file of ``name``: it exists and its SHA-256 is the manifest's.

    Raises:
        ValueError: ``name`` is not a shipped model (the message lists the known ones).
        CheckpointError: the file is missing, or has changed since it was made (the message names the file and
            the command that re-makes it).
    """
    model = get(name)
    path, entry = model.file, manifest().get(name)
    remake = f"re-make it with: {remake_command(name)}"
    if entry is None or not path.is_file():
        what = "is missing" if not path.is_file() else "is not in the manifest " + str(MANIFEST)
        raise CheckpointError(f"the shipped model {name!r} ({path}) {what}; reinstall the course or {remake}")
    if file_sha256(path) != entry["sha256"]:
        raise CheckpointError(f"the shipped model {name!r} ({path}) has changed: its SHA-256 is not the one "
                              f"recorded in {MANIFEST.name} ({entry['sha256'][:16]}...), so it is refused. Restore "
                              f"the file from the course's repository (course_lib/pretrained/{path.name}) or {remake}")
    return path


def resolve_checkpoint(text: str | os.PathLike) -> Path:
    """A ``--checkpoint`` value as a path: ``pretrained:NAME`` is the checked shipped file of NAME
    (``pretrained_path``); anything else is returned as a path unchanged."""
    text = str(text)
    return pretrained_path(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(text)


def evaluation_out(text: str | os.PathLike) -> Path:
    """The default JSON file of ``evaluate --checkpoint TEXT``: ``evaluation.json`` beside a checkpoint file, and
    ``NAME-evaluation.json`` in the current folder for ``pretrained:NAME`` (never inside the installed package)."""
    text = str(text)
    if text.startswith(PREFIX):
        return Path(f"{get(text[len(PREFIX):]).name}-evaluation.json")
    return Path(text).parent / "evaluation.json"


def default_sampling_steps(text: str | os.PathLike) -> int | None:
    """The DDIM steps with which a ``--checkpoint`` value is sampled when none are given: the shipped DDPM's
    ``sampling_steps`` for ``pretrained:NAME``, else None (a GAN, or a checkpoint file: ancestral sampling)."""
    text = str(text)
    return get(text[len(PREFIX):]).sampling_steps if text.startswith(PREFIX) else None


def load_pretrained_model(name: str, device: str | torch.device = "cpu",
                          sampling_steps: int | None = None) -> LoadedModel:
    """The shipped model ``name`` of either family as a ``generation.LoadedModel`` (``.sample(n, labels, seed)``
    gives (n, 1, 32, 32) images in [-1, 1] or (n, 2) points; ``.network_evaluations`` per sample), checked as in
    ``load_pretrained``. A DDPM samples with ``sampling_steps`` DDIM steps (default: the model's own)."""
    from .generation import load_model

    steps = sampling_steps if sampling_steps is not None else get(name).sampling_steps
    return load_model(pretrained_path(name), device=device, sampling_steps=steps)


def load_pretrained(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """The generating network of the shipped model ``name``, in eval mode on ``device``: a GAN's generator, or a
    DDPM's noise-predicting U-Net (``fashion-ddpm``; sample it with ``load_pretrained_model``).

    A generator maps ``(N, latent_dim)`` noise (``G.latent_dim``; a conditional one also takes ``(N,)`` int64 labels in
    ``[0, G.num_classes)``) to ``(N, 1, 32, 32)`` images in [-1, 1], or ``(N, 2)`` points for ``ring8``.
    Loaded through ``sampling.load_generator`` (``weights_only``, schema, checksum, finite weights).

    Raises:
        ValueError: unknown name (lists the known ones). CheckpointError: a missing or changed file (names the
        command that re-makes it), or a file the checkpoint reader refuses.
    """
    return load_pretrained_model(name, device).network


def generator_only_state(state: dict[str, Any]) -> dict[str, Any]:
    """The shipped form of a training checkpoint's ``state``: its config, step, data description and fixed noise,
    with ``G`` = the generator that sampling uses (``G_ema`` when present, else ``G``) and an empty ``D``; no
    optimiser, scaler, random-generator state or history. Save it with ``checkpoint.save_checkpoint``."""
    weights = state["G_ema"] if state.get("G_ema") is not None else state["G"]
    kept = {k: state[k] for k in ("config", "step", "data_info", "fixed_noise") if state.get(k) is not None}
    return {**kept, "G": {k: v.detach().cpu().clone() for k, v in weights.items()}, "D": {},
            "generator_only": {"G": "ema" if state.get("G_ema") is not None else "raw"}}


def evaluation_samples(name: str, n: int | None = None, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The samples ``python -m course_lib evaluate --checkpoint pretrained:NAME --seed SEED`` measures (a DDPM with its
    ``sampling_steps``): ``(x,
    labels)``, x (n, 1, 32, 32) images in [-1, 1] or (n, 2) points, float32 on the CPU; labels (n,) int64 for a
    conditional model (drawn by ``metrics.summary_request``), else None. ``n`` defaults to evaluate's."""
    from . import metrics

    model = load_pretrained_model(name)
    info = model.info
    n, labels = metrics.summary_request(info.get("name") or model.config.data, num_classes=info.get("num_classes"),
                                        seed=seed, n=n)
    return model.sample(n, labels=labels, seed=seed), labels


def class_shares(name: str, n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """For an image model, the classes that the course's classifier sees in ``evaluation_samples(name, n, seed)``:
    ``{"class_shares": the 10 shares in [0, 1], summing to 1}``, plus for a conditional model ``"label_accuracy"``
    (share of samples classified as the class they were asked for, in [0, 1]); {} for a point model."""
    from .classifier import get_classifier
    from .metrics import class_coverage

    x, labels = evaluation_samples(name, n, seed)
    if x.dim() != 4:
        return {}
    model = get(name)
    clf = get_classifier(model.data, image_size=x.shape[-1])
    predicted = clf.predict_proba(x, batch_size=256).argmax(1)
    out: dict[str, Any] = {"class_shares": class_coverage(predicted, clf.num_classes)["histogram"]}
    if labels is not None:
        out["label_accuracy"] = float((predicted == labels).float().mean())
    return out


def metric_line(row: dict[str, Any]) -> str:
    """A short summary of a model's evaluation row (``benchmarks/results-pretrained.json``) for the list."""
    if "frechet_distance" in row:
        text = f"FD {row['frechet_distance']:.2f} (real floor {row['frechet_distance_real']:.2f}), smallest class " \
               f"share {100 * row['min_class_share']:.1f} %"
        return text + (f", {100 * row['label_accuracy']:.0f} % in the asked class" if "label_accuracy" in row else "")
    if "modes" in row:
        return f"{row['modes']}/{row['num_modes']} modes, {100 * row['high_quality']:.1f} % high-quality samples"
    return "no metric recorded"


def describe() -> list[str]:
    """One line per shipped model for ``python -m course_lib pretrained``: name, what it is, size and metric
    (or that it has not been made)."""
    made, lines = manifest(), []
    for name, model in MODELS.items():
        entry = made.get(name)
        if entry is None:
            state = f"not made yet: {remake_command(name)}"
        else:
            state = f"{entry['bytes'] / 2**20:.1f} MiB, {entry.get('metric', 'no metric recorded')}"
        lines.append(f"pretrained:{name:<15} {model.summary} [{state}]")
    return lines
