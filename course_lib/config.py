"""``TrainConfig``: everything that defines a training run, checked by one table, with one resume rule.

    >>> from course_lib.config import TrainConfig
    >>> cfg = TrainConfig.for_data("ring8", steps=2000)       # the course's recipe, one field changed
    >>> cfg.n_critic, cfg.gp_weight                           # None resolved once: the loss's defaults
    (1, 0.0)

Each field carries its description in ``dataclasses.field(metadata=...)``:

* ``help``: one line, shown by ``python -m course_lib train --help`` (the CLI builds its flags from it);
* ``check``: the row of the validation table, ``check(name, value)`` raising ValueError / TypeError (a check of
  ``course_lib.checks``, or one below for what only a field here needs);
* ``choices``: the valid values of a text field (its check is ``checks.check_choice``);
* ``model``: the field defines the networks' shapes (``MODEL_FIELDS``: a checkpoint loads only into a
  config that agrees on all of them);
* ``resume``: the field may change when a run is resumed (``RESUMABLE_FIELDS``); every other field that
  differs from the checkpoint is refused, by ``GANTrainer.from_checkpoint`` and by the CLI alike;
* ``family``: ``"gan"`` or ``"ddpm"`` for a field that only that family of models uses (``GAN_FIELDS``,
  ``DDPM_FIELDS``): a config of the other family must leave it at its default;
* ``cli``: True for a flag whose text is converted to the field's type and refused by its ``check``
  (``cli.argtype``); another check to refuse it by instead (``--ema 0`` means no EMA); False for no flag.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np
import torch

from . import data as data_mod
from .checkpoint import STEP_MAX, CheckpointError
from .checks import (InvalidValue, check_bool, check_choice, check_int, check_nonneg_number, check_positive_number,
                     check_seed, check_unit_interval, is_int, is_number)
from .diffusion import SCHEDULES
from .families import DIFFUSION_MODELS
from .losses import LOSSES, get_loss
from .models import MODELS, check_latent_codes
from .recipes import DDPM, RECIPES

__all__ = ["TrainConfig", "MODEL_FIELDS", "RESUMABLE_FIELDS", "AMP_CHOICES", "NAN_POLICIES", "LR_SCHEDULES",
           "SPLITS", "GAN_FIELDS", "DDPM_FIELDS", "resume_conflicts", "resume_config", "ResumeConflictError",
           "plain_value"]

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
NAN_POLICIES = ("stop", "skip")
LR_SCHEDULES = ("constant", "linear")
SPLITS = data_mod.SPLITS  # the parts of the data; data.check_split is their one check


# ----------------------------------------------------------------------------- the rows of the table
# The general checks come from ``course_lib.checks``; these are the ones only a TrainConfig field needs, with the
# same signature ``check(name, value)``.

def _check_image_size(name: str, value: Any) -> Any:
    """None (the dataset's own size) or a size the DCGAN models support (``data.check_image_size``)."""
    if value is not None:
        if not is_int(value):
            raise ValueError(f"{name} must be an integer (8, 16, 32 or 64) or None, got {value!r}")
        data_mod.check_image_size(value)
    return value


def _check_ema_decay(name: str, value: Any) -> Any:
    """None (no EMA of G) or a float in (0, 1)."""
    if value is not None and not (isinstance(value, float) and 0 < value < 1):
        raise ValueError(f"{name} must be a float in (0, 1) (e.g. 0.999) or None, got {value!r}")
    return value


def _check_betas(name: str, value: Any) -> Any:
    """Adam's two betas, each in [0, 1)."""
    if not (isinstance(value, tuple) and len(value) == 2 and all(is_number(b) and 0 <= b < 1 for b in value)):
        raise ValueError(f"{name} must be two numbers in [0, 1), such as (0.5, 0.999), got {value!r}")
    return value


def _check_device(name: str, value: Any) -> Any:
    """A device name (checked against the machine when the trainer starts: ``device.get_device``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string such as 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps', got {value!r}")
    return value


def _check_steps(name: str, value: Any) -> Any:
    """A positive integer the step counter can hold (checkpoints store it as a 64-bit integer)."""
    check_int(name, value)
    if value > STEP_MAX:
        raise InvalidValue(name, "a positive integer of at most 2**63 - 1 (the step counter's range)", value)
    return value


def plain_value(name: str, value: Any) -> Any:
    """``value`` with NumPy and 0-dim tensor numbers turned into Python ``bool`` / ``int`` / ``float`` (by their
    kind; a NumPy string into ``str``; a tuple item by item); anything else is returned as it is, for its
    field's check to judge. A config holds plain values, so a checkpoint that stores it always loads.

    Raises:
        ValueError: a number that has no exact Python equal (a long double, a complex number).
    """
    if isinstance(value, tuple):
        return tuple(plain_value(name, v) for v in value)
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = value.item()  # bool, int or float (exact: a double holds every float32, bfloat16, float16)
    if isinstance(value, np.generic) and not isinstance(value, np.number):
        return bool(value) if isinstance(value, np.bool_) else str(value) if isinstance(value, np.str_) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating) and float(value) == value:
        return float(value)
    if isinstance(value, (np.number, complex)):
        kind = f"{type(value).__module__}.{type(value).__name__}"
        raise ValueError(f"{name}={value!r} ({kind}) cannot be converted exactly to a Python float or int; pass "
                         "float(value) or int(value) if the rounding is what you mean")
    return value


def option(default: Any, help: str, check: Callable[..., Any], *, choices: tuple[str, ...] = (), model: bool = False,
           resume: bool = False, cli: bool | Callable[..., Any] = True, flag: str | None = None,
           family: str | None = None) -> Any:
    """A ``TrainConfig`` field with its metadata (see the module docstring)."""
    return field(default=default, metadata={"help": help, "check": check, "choices": choices, "model": model,
                                            "resume": resume, "cli": cli, "flag": flag, "family": family})


def choice(default: str, help: str, choices: tuple[str, ...], noun: str | None = None, valid: str = "choices",
           **kw: Any) -> Any:
    """A text field whose value is one of ``choices``: an ``option`` checked by ``checks.check_choice``
    ("unknown <noun> 'x'; valid <valid> are ...")."""
    return option(default, help, partial(check_choice, choices=choices, noun=noun, valid=valid), choices=choices,
                  **kw)


# ----------------------------------------------------------------------------- the config

@dataclass
class TrainConfig:
    """Everything that defines a training run. ``TrainConfig.for_data(name, **changes)`` starts from the
    course's recipe for that dataset (``course_lib.recipes``).

    Sizes: ``batch_size`` is the global batch (split over processes under DDP); ``steps`` counts generator
    updates. ``n_critic`` and ``gp_weight`` given as None take the loss's defaults (5 and 10 for wgan-gp,
    1 and 0 otherwise), resolved when the config is built, so the stored config says what runs. Speed options
    (``amp``, ``channels_last``, ``compile``, ``cudnn_benchmark``) are ``"auto"``/``None`` by default: on
    where safe on CUDA, off on CPU and MPS. ``lr_schedule``: ``"constant"``, or ``"linear"`` decay of both
    learning rates to zero over ``steps`` (see ``lr_factor``). ``r1_gamma``: weight of the R1 penalty
    (gamma/2) E||grad_x D(x)||^2 on real data; with ``r1_every`` = k > 1 it is computed on every k-th
    generator step only and weighted k times as much (lazy regularisation, Karras et al. 2020).
    ``log_every``: the statistics stay on the device and are read (one host synchronisation) every that many
    steps, and before callbacks and checkpoints (see ``GANTrainer``).
    """

    data: str = choice("ring8", "dataset", data_mod.DATASETS, "dataset", "names", model=True)
    image_size: int | None = option(None, "image size for image data (8, 16, 32 or 64)", _check_image_size,
                                    model=True)
    split: str = option("train", "part of the data to train on", data_mod.check_split, choices=SPLITS)
    fallback: bool = option(False, "use the offline 'digits' data if MNIST / Fashion-MNIST cannot be downloaded",
                            check_bool)
    model: str = choice("mlp", "network family (mlp for points, dcgan for images; ddpm: a diffusion model for "
                               "images)", tuple(MODELS) + DIFFUSION_MODELS, valid="models",
                        model=True)
    loss: str = choice("nonsaturating", "GAN loss", tuple(LOSSES), valid="losses", family="gan")
    latent_dim: int = option(8, "size of z", check_int, model=True, family="gan")
    latent_codes: int = option(0, "read the first K of z's coordinates as a categorical code of K values (a "
                                  "disconnected latent; mlp only; 0: Gaussian z)", partial(check_int, minimum=0),
                               model=True, family="gan")
    g_init_gain: float = option(1.0, "the generator's first layer starts with its weights times this gain (mlp "
                                     "only; 1: PyTorch's default)", check_positive_number, family="gan")
    g_width: int = option(128, "width of the generator (ddpm: of the U-Net)", check_int, model=True)
    d_width: int = option(128, "width of the discriminator", check_int, model=True, family="gan")
    depth: int = option(3, "hidden layers of the MLPs", check_int, model=True, family="gan")
    conditional: bool = option(False, "class-conditional GAN (labelled image data; on for the digits recipe)",
                               check_bool, model=True, family="gan")
    spectral_norm: bool = option(False, "spectral normalisation in D", check_bool, model=True, family="gan")
    diffusion_steps: int = option(1000, "steps T of the DDPM's noise schedule (ddpm only)",
                                  partial(check_int, minimum=2), model=True, family="ddpm")
    noise_schedule: str = choice("linear", "the DDPM's noise schedule: linear (Ho et al. 2020) or cosine (Nichol & "
                                 "Dhariwal 2021) (ddpm only)", SCHEDULES, "noise schedule", model=True,
                                 family="ddpm")
    steps: int = option(3000, "generator steps (on resume: the new total)", _check_steps, resume=True)
    batch_size: int = option(256, "global batch size", check_int)
    lr_g: float = option(2e-4, "learning rate of G (ddpm: of the U-Net)", check_positive_number)
    lr_d: float = option(2e-4, "learning rate of D", check_positive_number, family="gan")
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks", _check_betas,
                                        cli=check_unit_interval)
    lr_schedule: str = choice("constant", "constant, or linear decay to 0 over the run", LR_SCHEDULES)
    n_critic: int | None = option(None, "discriminator steps per generator step (default: the loss's)",
                                  partial(check_int, allow_none=True), family="gan")
    label_smoothing: float = option(0.0, "one-sided label smoothing of real targets", check_unit_interval, family="gan")
    gp_weight: float | None = option(None, "weight of the WGAN-GP gradient penalty (default: the loss's)",
                                     partial(check_nonneg_number, allow_none=True), family="gan")
    r1_gamma: float = option(0.0, "weight of the R1 penalty", check_nonneg_number, family="gan")
    r1_every: int = option(1, "compute R1 every k steps, weighted k times (lazy R1)", check_int, family="gan")
    ema_decay: float | None = option(None, "EMA decay of the generator (0 turns EMA off)", _check_ema_decay,
                                     cli=check_unit_interval, flag="--ema")
    seed: int = option(0, "random seed", check_seed)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", _check_device, resume=True)
    amp: str = choice("auto", "mixed precision", AMP_CHOICES, "amp mode", resume=True, family="gan")
    channels_last: bool | None = option(None, "channels-last memory format (default: on for convolutions on "
                                              "CUDA)", partial(check_bool, allow_none=True), resume=True, family="gan")
    compile: bool | None = option(None, "torch.compile (default: on CUDA only)", partial(check_bool, allow_none=True),
                                  resume=True, family="gan")
    cudnn_benchmark: bool | None = option(None, "cuDNN autotuning (default: on CUDA)",
                                          partial(check_bool, allow_none=True), resume=True, family="gan")
    sync_bn: bool = option(False, "SyncBatchNorm: batch norm over the whole batch of all DDP processes (GPUs "
                                  "only; announced no-op in one process or on CPU)", check_bool, resume=True,
                                  family="gan")
    checkpoint_every: int = option(1000, "steps between checkpoints", check_int, resume=True)
    callback_every: int = option(100, "steps between callbacks (live plots)", check_int, resume=True, cli=False)
    log_every: int = option(50, "steps between reads of the statistics from the device (history, progress bar)",
                            check_int, resume=True)
    nan_policy: str = choice("stop", "on a NaN/inf loss: stop (keep the last good checkpoint) or skip the step",
                             NAN_POLICIES, resume=True, family="gan")

    @classmethod
    def for_data(cls, data: str, **changes: Any) -> "TrainConfig":
        """The recipe for ``data`` (see ``course_lib.recipes.RECIPES``) with ``changes`` applied."""
        if data not in RECIPES:
            raise ValueError(f"unknown dataset {data!r}; valid names are {', '.join(RECIPES)}")
        if changes.get("model") in DIFFUSION_MODELS:  # the DDPM's recipe (it shares no GAN field)
            if data not in DDPM:
                raise ValueError(f"model={changes['model']!r} is a diffusion model for images, but the dataset "
                                 f"{data!r} holds points; use one of {', '.join(DDPM)}")
            unknown = set(changes) - set(FIELD_NAMES)
            if unknown:
                raise TypeError(f"unknown TrainConfig field(s) {sorted(unknown)}; valid fields are "
                                f"{list(FIELD_NAMES)}")
            return cls(**{**DDPM[data], "data": data, **changes})
        unknown = set(changes) - set(FIELD_NAMES)
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {sorted(unknown)}; valid fields are {list(FIELD_NAMES)}")
        return cls(**{**RECIPES[data], "data": data, **changes})

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):  # lists from JSON
            self.betas = tuple(self.betas)
        self.validate()
        loss = get_loss(self.loss)  # resolve the loss's defaults once
        if self.n_critic is None:
            self.n_critic = loss.n_critic
        if self.gp_weight is None:
            self.gp_weight = float(loss.gp_weight)

    def validate(self) -> None:
        """Turn NumPy and 0-dim tensor numbers into Python ones (``plain_value``), then raise ValueError /
        TypeError naming the first bad field and its valid values: each field's row of the table (its ``check``
        metadata), then the rules that relate fields. ``GANTrainer`` calls it again when it starts, so a field
        set after construction is checked too."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, plain_value(f.name, getattr(self, f.name)))
            f.metadata["check"](f.name, getattr(self, f.name))
        if self.label_smoothing and not get_loss(self.loss).smoothing:
            raise ValueError(f"label_smoothing applies to the cross-entropy losses (saturating, nonsaturating), "
                             f"not to {self.loss!r}")
        if self.model == "mlp" and self.data in data_mod.IMAGE_DATASETS:
            raise ValueError(f"dataset {self.data!r} holds images: use model='dcgan' (the 'mlp' model is for points)")
        if self.model in DIFFUSION_MODELS:
            self._check_family_fields()
        elif any(getattr(self, k) != FIELD_DEFAULTS[k] for k in DDPM_FIELDS):
            given = ", ".join(f"{k}={getattr(self, k)!r}" for k in DDPM_FIELDS if getattr(self, k) != FIELD_DEFAULTS[k])
            raise ValueError(f"{given}: DDPM options, but model={self.model!r} is a GAN; use model='ddpm' or leave "
                             "them at their defaults")
        if self.model == "dcgan" and self.data in data_mod.POINT_DATASETS:
            raise ValueError(f"dataset {self.data!r} holds points: use model='mlp' (the 'dcgan' model is for images)")
        if self.latent_codes and self.model != "mlp":
            raise ValueError(f"latent_codes={self.latent_codes} needs model='mlp' (points); 0 turns it off")
        check_latent_codes("latent_codes", self.latent_codes, self.latent_dim)
        if self.g_init_gain != 1.0 and self.model != "mlp":
            raise ValueError(f"g_init_gain={self.g_init_gain} needs model='mlp' (points); 1.0 turns it off")
        if self.conditional and self.model != "dcgan":
            raise ValueError("conditional=True needs model='dcgan' on a labelled image dataset")

    def _check_family_fields(self) -> None:
        """A DDPM config: image data, and every GAN-only field at its default (the loss's n_critic / gp_weight)."""
        if self.data in data_mod.POINT_DATASETS:
            raise ValueError(f"model={self.model!r} is a diffusion model for images, but the dataset {self.data!r} "
                             f"holds points; use an image dataset ({', '.join(data_mod.IMAGE_DATASETS)}) or a "
                             "GAN (model='mlp')")
        loss = get_loss(self.loss)
        given = [f"{k}={getattr(self, k)!r}" for k in GAN_FIELDS if getattr(self, k) != FIELD_DEFAULTS[k] and not (
            k in ("n_critic", "gp_weight") and getattr(self, k) == getattr(loss, k))]
        if given:
            raise ValueError(f"{', '.join(given)}: GAN options, which model={self.model!r} (a diffusion model, "
                             "trained in float32 in one process) does not use; leave them at their defaults")

    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier for generator step ``step`` (0-based): 1 for ``"constant"``; for ``"linear"``
        it falls from 1 at step 0 to 1/steps at the last step (a linear decay to zero over the run, which lets
        the generator settle on the modes instead of circling them). A pure function of the step, so a resumed
        run follows the same schedule without extra state."""
        if self.lr_schedule == "linear":
            return max(1.0 - step / self.steps, 0.0) or 1.0 / self.steps
        return 1.0

    def uses_double_backward(self) -> bool:
        """Whether D's update differentiates a gradient (WGAN-GP or R1 penalty): no torch.compile for D then."""
        return self.gp_weight > 0 or self.r1_gamma > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``betas`` as a list); ``from_dict`` reads it back equal."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The config of ``d`` (keys that are not fields are ignored: checkpoints of older versions)."""
        if not isinstance(d, dict):
            raise TypeError(f"a config must be a dict of TrainConfig fields, got {type(d).__name__}")
        return cls(**{k: v for k, v in d.items() if k in FIELD_NAMES})


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Fields that define the networks' shapes: a checkpoint only loads into a config that agrees on all of them.
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["model"])
# The one rule for resuming: these fields may change (how long, where and how fast the run goes on); every
# other field is the run itself, and a value that differs from the checkpoint's is refused.
RESUMABLE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["resume"])
# The fields that only one family of models uses (a config of the other family leaves them at their defaults).
GAN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["family"] == "gan")
DDPM_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["family"] == "ddpm")
FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


class ResumeConflictError(CheckpointError):
    """A resume asked to change fields that define the run; ``fields`` names them (config field names)."""

    def __init__(self, fields: list[str], message: str):
        super().__init__(message)
        self.fields = list(fields)


def resume_conflicts(saved: TrainConfig, changes: dict[str, Any]) -> list[str]:
    """The fields of ``changes`` outside ``RESUMABLE_FIELDS`` whose value differs from the checkpoint's
    ``saved`` config (sorted; an equal value is no conflict). Used by ``GANTrainer.from_checkpoint`` and so
    by ``python -m course_lib train --resume``."""
    def same(k: str, v: Any) -> bool:
        if k == "betas" and isinstance(v, list):
            v = tuple(v)
        if v is None and k in ("n_critic", "gp_weight"):  # None: the loss's default
            v = getattr(get_loss(saved.loss), k)
        return v == getattr(saved, k)
    return sorted(k for k, v in changes.items() if k not in RESUMABLE_FIELDS and not same(k, v))


def resume_config(saved: Any, step: Any, changes: dict[str, Any], source: str = "checkpoint") -> TrainConfig:
    """The config of a resumed run: the checkpoint's ``saved`` config dict with ``changes`` applied.

    Raises:
        TypeError: a change names no TrainConfig field.
        CheckpointError: ``saved`` is not a valid config.
        ResumeConflictError: a change outside ``RESUMABLE_FIELDS`` differs from the saved value (the
            message lists the fields; an equal value is fine).
        ValueError: a change is invalid, or ``steps`` (the new total) is not beyond the checkpoint's ``step``.
    """
    unknown = sorted(set(changes) - set(FIELD_NAMES))
    if unknown:
        raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid fields are {list(FIELD_NAMES)}")
    try:
        old = TrainConfig.from_dict(saved)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an invalid config: {exc}") from None
    bad = resume_conflicts(old, changes)
    if bad:
        raise ResumeConflictError(bad, f"cannot change {bad} when resuming: they define the run saved in {source}; "
                                       f"only {', '.join(RESUMABLE_FIELDS)} may change (start a new run to change "
                                       f"the others)")
    new = TrainConfig.from_dict({**old.to_dict(), **changes})
    if "steps" in changes and is_int(step) and new.steps <= step:
        raise ValueError(f"steps={new.steps} is not beyond the step {step} of {source}: steps is the new total; "
                         f"give more than {step} to train further")
    return new
