"""The one training loop of the course.

    >>> from course_lib.train import TrainConfig, GANTrainer
    >>> trainer = GANTrainer(TrainConfig.for_data("ring8", steps=2000))
    >>> trainer.fit()                      # progress bar, history, optional checkpoints
    >>> x = trainer.sample(2500)           # (2500, 2) points in data space

One *step* is ``n_critic`` discriminator updates followed by one generator update:

1. draw a real batch (by index from a tensor already on the device) and noise z;
2. discriminator: minimise ``loss.d(D(x), D(G(z).detach()))`` (+ gradient penalty / R1), G untouched;
3. generator: minimise ``loss.g(D(G(z)))`` with fresh noise.

Every step records the losses and the mean D(x) and D(G(z)) in ``trainer.history``. Options: mixed precision
(bfloat16, or float16 with gradient scaling), channels-last, ``torch.compile``, an exponential moving average
(EMA) of the generator, checkpoints that save and resume everything (written atomically), a guard against NaN
or infinite losses, a clean stop on Ctrl-C / the notebook's stop button, and DistributedDataParallel under
``torchrun``. On CPU the defaults leave all speed options off, so results are exactly repeatable.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import signal
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from . import data as data_mod
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .device import DeviceError, get_device, seed_everything
from .losses import get_loss, gradient_penalty, r1_penalty
from .models import MODELS, build_models
from .recipes import RECIPES

__all__ = ["TrainConfig", "GANTrainer", "NonFiniteLossError", "load_generator", "MODEL_FIELDS"]

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
NAN_POLICIES = ("stop", "skip")
LR_SCHEDULES = ("constant", "linear")
# Fields that define the networks' shapes: a checkpoint only loads into a config that agrees on all of them.
MODEL_FIELDS = ("data", "model", "image_size", "latent_dim", "g_width", "d_width", "depth", "conditional",
                "spectral_norm")
HISTORY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "penalty")


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient became NaN or infinite; the message names the step and the likely causes."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``TrainConfig.for_data(name, **changes)`` starts from the
    course's recipe for that dataset (``course_lib.recipes``).

    Sizes: ``batch_size`` is the global batch (split over processes under DDP); ``steps`` counts generator
    updates. Speed options (``amp``, ``channels_last``, ``compile``, ``cudnn_benchmark``) are ``"auto"``/``None``
    by default: on where safe on CUDA, off on CPU and MPS. ``lr_schedule``: ``"constant"``, or ``"linear"``
    decay of both learning rates to zero over ``steps`` (see ``lr_factor``). ``r1_gamma``: weight of the R1
    penalty (gamma/2) E||grad_x D(x)||^2 on real data; with ``r1_every`` = k > 1 it is computed on every k-th
    generator step only and weighted k times as much (lazy regularisation, Karras et al. 2020: about the same
    effect at a fraction of the cost of the double backward).
    """

    data: str = "ring8"
    image_size: int | None = None
    split: str = "train"
    fallback: bool = False
    model: str = "mlp"
    loss: str = "nonsaturating"
    latent_dim: int = 8
    g_width: int = 128
    d_width: int = 128
    depth: int = 3
    conditional: bool = False
    spectral_norm: bool = False
    steps: int = 3000
    batch_size: int = 256
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_schedule: str = "constant"
    n_critic: int | None = None
    label_smoothing: float = 0.0
    gp_weight: float | None = None
    r1_gamma: float = 0.0
    r1_every: int = 1
    ema_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | None = None
    compile: bool | None = None
    cudnn_benchmark: bool | None = None
    checkpoint_every: int = 1000
    callback_every: int = 100
    nan_policy: str = "stop"

    @classmethod
    def for_data(cls, data: str, **changes: Any) -> "TrainConfig":
        """The recipe for ``data`` (see ``course_lib.recipes.RECIPES``) with ``changes`` applied."""
        if data not in RECIPES:
            raise ValueError(f"unknown dataset {data!r}; valid names are {', '.join(RECIPES)}")
        unknown = set(changes) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {sorted(unknown)}; valid fields are "
                            f"{[f.name for f in dataclasses.fields(cls)]}")
        return cls(**{**RECIPES[data], "data": data, **changes})

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # lists from JSON
        self.validate()

    def validate(self) -> None:
        """Raise ValueError / TypeError naming the first bad field and its valid values."""
        if self.data not in data_mod.DATASETS:
            raise ValueError(f"unknown dataset {self.data!r}; valid names are {', '.join(data_mod.DATASETS)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; valid models are {', '.join(MODELS)}")
        get_loss(self.loss)
        if self.image_size is not None:
            data_mod.check_image_size(self.image_size)
        for name in ("latent_dim", "g_width", "d_width", "depth", "steps", "batch_size", "checkpoint_every",
                     "callback_every", "r1_every"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.n_critic is not None and (not _is_int(self.n_critic) or self.n_critic <= 0):
            raise ValueError(f"n_critic must be a positive integer or None, got {self.n_critic!r}")
        for name in ("lr_g", "lr_d"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.label_smoothing and not get_loss(self.loss).smoothing:
            raise ValueError(f"label_smoothing applies to the cross-entropy losses (saturating, nonsaturating), "
                             f"not to {self.loss!r}")
        for name in ("gp_weight", "r1_gamma"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        if self.ema_decay is not None and not (isinstance(self.ema_decay, float) and 0 < self.ema_decay < 1):
            raise ValueError(f"ema_decay must be a float in (0, 1) (e.g. 0.999) or None, got {self.ema_decay!r}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"unknown amp mode {self.amp!r}; valid choices are {', '.join(AMP_CHOICES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; valid choices are {', '.join(LR_SCHEDULES)}")
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"unknown nan_policy {self.nan_policy!r}; valid choices are {', '.join(NAN_POLICIES)}")
        if self.split not in ("train", "test", "all"):
            raise ValueError(f"unknown split {self.split!r}; use 'train', 'test' or 'all'")
        if self.model == "mlp" and self.data in data_mod.IMAGE_DATASETS:
            raise ValueError(f"dataset {self.data!r} holds images: use model='dcgan' (the 'mlp' model is for points)")
        if self.model == "dcgan" and self.data in data_mod.POINT_DATASETS:
            raise ValueError(f"dataset {self.data!r} holds points: use model='mlp' (the 'dcgan' model is for images)")
        if self.conditional and self.model != "dcgan":
            raise ValueError("conditional=True needs model='dcgan' on a labelled image dataset")

    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier for generator step ``step`` (0-based): 1 for ``"constant"``; for ``"linear"``
        it falls from 1 at step 0 to 1/steps at the last step (a linear decay to zero over the run, which lets
        the generator settle on the modes instead of circling them). A pure function of the step, so a resumed
        run follows the same schedule without extra state."""
        if self.lr_schedule == "linear":
            return max(1.0 - step / self.steps, 0.0) or 1.0 / self.steps
        return 1.0

    @property
    def n_critic_effective(self) -> int:
        return self.n_critic if self.n_critic is not None else get_loss(self.loss).n_critic

    @property
    def gp_weight_effective(self) -> float:
        return float(self.gp_weight if self.gp_weight is not None else get_loss(self.loss).gp_weight)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _cuda_bf16(native: bool) -> bool:
    """Whether the current CUDA device runs bfloat16: natively (compute capability 8.0+, or ROCm) when
    ``native``, else at all (older GPUs emulate it, slowly)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=not native)
    except TypeError:  # a torch without the argument
        return torch.cuda.is_bf16_supported()


def _dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment, 1 process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


class GANTrainer:
    """Trains a GAN described by a ``TrainConfig``.

    Args:
        config: the run's configuration.
        dataset: a ``course_lib.data.Dataset``; loaded from ``config.data`` when omitted.
        out_dir: folder for ``checkpoint.pt`` (every ``config.checkpoint_every`` steps, at the end and on
            interruption); None writes nothing.
        callbacks: functions ``f(trainer)`` called every ``config.callback_every`` steps and at the end (live
            plots, logging). They must not draw random numbers from the trainer's generator.
        G, D: networks to use instead of building them from the config (for notebooks that write their own).
        verbose: show a progress bar and messages.

    Attributes:
        history: dict of lists, one value per step: ``d_loss``, ``g_loss``, ``d_real`` (mean D(x)),
            ``d_fake`` (mean D(G(z)) in the discriminator step), ``penalty``.
        step: generator updates done. ``fixed_noise``: (64, latent_dim) noise for progress images.
    """

    def __init__(self, config: TrainConfig, dataset: data_mod.Dataset | None = None,
                 out_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[Callable[["GANTrainer"], None]] = (),
                 G: nn.Module | None = None, D: nn.Module | None = None, verbose: bool = True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        config.validate()
        self.config = cfg = config
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.loss = get_loss(cfg.loss)

        # processes and device
        self.rank, self.local_rank, self.world_size = _dist_info()
        self.distributed = self.world_size > 1
        if cfg.batch_size % self.world_size:  # checked before any process group is set up: fail fast
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the world size {self.world_size}; "
                             f"choose a multiple of {self.world_size} (it is the global batch, split over processes)")
        self.device = get_device(cfg.device)
        if self.distributed:
            if self.device.type == "cuda":
                if self.local_rank >= torch.cuda.device_count():
                    raise DeviceError(f"process with LOCAL_RANK {self.local_rank} has no GPU: this machine has "
                                      f"{torch.cuda.device_count()}; use --nproc_per_node "
                                      f"{torch.cuda.device_count()} or fewer")
                self.device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.local_batch = cfg.batch_size // self.world_size
        seed_everything(cfg.seed)

        # data, held on the device
        if dataset is None:
            dataset = data_mod.load(cfg.data, image_size=cfg.image_size, fallback=cfg.fallback, split=cfg.split)
        if not isinstance(dataset, data_mod.Dataset):
            raise TypeError(f"dataset must be a course_lib.data.Dataset, got {type(dataset).__name__}")
        self.dataset = dataset.to(self.device)
        self.shard_size = len(dataset) // self.world_size
        if self.local_batch > self.shard_size:
            raise ValueError(f"batch size {self.local_batch} per process is larger than the dataset "
                             f"({len(dataset)} samples over {self.world_size} process(es)); lower batch_size")
        self.num_classes = dataset.num_classes if cfg.conditional else None
        if cfg.conditional and (dataset.y is None or not dataset.num_classes):
            raise ValueError(f"conditional=True needs a labelled dataset; {dataset.name!r} has no labels")

        # networks and optimisers
        if (G is None) != (D is None):
            raise ValueError("pass both G and D, or neither (then they are built from the config)")
        if G is None:
            G, D = build_models(cfg.model, dataset.sample_shape, cfg.latent_dim, cfg.g_width, cfg.d_width,
                                cfg.depth, self.num_classes, cfg.spectral_norm)
        self._resolve_speed_options()
        self.G, self.D = G.to(self.device), D.to(self.device)
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.G_ema = None
        if cfg.ema_decay is not None:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

        # wrapped modules used for the forward passes (DDP, compile); self.G / self.D stay plain for saving
        self._G, self._D = self.G, self.D
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._G = nn.parallel.DistributedDataParallel(self.G, device_ids=ids)
            self._D = nn.parallel.DistributedDataParallel(self.D, device_ids=ids)
        if self.compile_G:
            self._G = torch.compile(self._G)
        if self.compile_D:
            self._D = torch.compile(self._D)

        # randomness: one generator on the device for noise, labels and penalties (saved in checkpoints)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(cfg.seed * 1000 + self.rank + 1)
        fixed = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_noise = torch.randn(64, cfg.latent_dim, generator=fixed).to(self.device)
        self.fixed_labels = (torch.arange(64) % self.num_classes).to(self.device) if self.num_classes else None

        self.step = 0
        self.batches_drawn = 0
        self.skipped_steps = 0
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.interrupted = False
        self._perm_cache: tuple[int, torch.Tensor] | None = None
        self._stop_requested = False
        self._skip_counted_at = -1
        self.last_checkpoint: Path | None = None
        if self.verbose and self.rank == 0:
            self._announce()

    # ------------------------------------------------------------------ options
    def _resolve_speed_options(self) -> None:
        cfg, dev = self.config, self.device.type
        cuda = dev == "cuda"
        amp = cfg.amp
        if amp == "auto":
            # CUDA: bfloat16 where the GPU has it natively (no scaler needed), else float16 with a gradient scaler
            amp = ("bf16" if _cuda_bf16(native=True) else "fp16") if cuda else "off"
        if amp == "fp16" and dev == "cpu":
            warnings.warn("AMP float16 is not used on the CPU (many CPU kernels lack fast float16 paths, and "
                          "float16 needs a gradient scaler); using bfloat16 autocast instead (amp='off' for full "
                          "precision)", stacklevel=3)
            amp = "bf16"
        if amp == "bf16" and cuda and not _cuda_bf16(native=False):
            warnings.warn("this GPU does not support bfloat16; using float16 with gradient scaling",
                          stacklevel=3)
            amp = "fp16"
        self.amp_mode = amp
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        conv = cfg.model == "dcgan"
        self.channels_last = conv and (cuda if cfg.channels_last is None else cfg.channels_last)
        want_compile = cuda if cfg.compile is None else cfg.compile
        double_backward = cfg.gp_weight_effective > 0 or cfg.r1_gamma > 0
        self.compile_G = bool(want_compile)
        self.compile_D = bool(want_compile) and not double_backward
        if want_compile and double_backward and cfg.compile:
            warnings.warn("torch.compile does not support the double backward of gradient penalties; the "
                          "discriminator runs eagerly, the generator is compiled", stacklevel=3)
        if cuda:  # a global switch: set it both ways, so cudnn_benchmark=False undoes an earlier trainer's True
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark is not False

    def _announce(self) -> None:
        cfg = self.config
        eff = f"batch {cfg.batch_size}"
        lr = f"lr G {cfg.lr_g:g} D {cfg.lr_d:g}" + (" (linear decay to 0)" if cfg.lr_schedule == "linear" else "")
        if self.distributed:
            eff = f"effective batch {cfg.batch_size} = {self.world_size} processes x {self.local_batch}"
            lr = f"effective {lr} (gradients are averaged over processes; the lr is not scaled)"
        print(f"[course_lib] {cfg.data} ({len(self.dataset)} samples) | {cfg.model} | loss {cfg.loss} | {eff} | "
              f"{lr} | device {self.device} | amp {self.amp_mode} | "
              f"channels_last {self.channels_last} | compile {self.compile_G or self.compile_D}")

    # ------------------------------------------------------------------ batches
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next real batch: epoch e uses a fixed permutation of seed and e, this process's shard of it."""
        per_epoch = self.shard_size // self.local_batch
        epoch, k = divmod(self.batches_drawn, per_epoch)
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
            perm = torch.randperm(len(self.dataset), generator=g)[self.rank::self.world_size][:self.shard_size]
            self._perm_cache = (epoch, perm.to(self.device))
        idx = self._perm_cache[1][k * self.local_batch:(k + 1) * self.local_batch]
        self.batches_drawn += 1
        x, y = self.dataset.get(idx)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y if self.num_classes else None)

    def _noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(n, self.config.latent_dim, device=self.device, generator=self.rng)
        y = None
        if self.num_classes:
            y = torch.randint(self.num_classes, (n,), device=self.device, generator=self.rng)
        return z, y

    @staticmethod
    def _call(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return model(x) if y is None else model(x, y)

    # ------------------------------------------------------------------ one step
    def _check_finite(self, what: str, loss: torch.Tensor, params: Iterable[torch.Tensor], scaled: bool) -> bool:
        """True if the loss (and, without gradient scaling, the gradient norm) is finite."""
        value = loss.detach().float()
        if not scaled:
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                value = value + torch.nn.utils.get_total_norm(grads).float()
        if bool(torch.isfinite(value)):
            return True
        if self.config.nan_policy == "skip":
            if self._skip_counted_at != self.step:  # count steps, not the D and G updates within one
                self.skipped_steps += 1
                self._skip_counted_at = self.step
            if self.verbose and self.rank == 0:
                print(f"[course_lib] step {self.step + 1}: non-finite {what} loss or gradient, update skipped "
                      f"({self.skipped_steps} skipped so far)")
            return False
        kept = self._kept_checkpoint()
        regularised = self.config.gp_weight_effective > 0 or self.config.r1_gamma > 0 or self.config.spectral_norm
        hint = ("try spectral_norm=True or a smaller gp_weight / r1_gamma" if regularised
                else "a penalty on D (r1_gamma, gp_weight) or spectral_norm=True keeps its logits bounded")
        raise NonFiniteLossError(
            f"training stopped at step {self.step + 1}: the {what} loss or its gradient is "
            f"{value.item()} (not finite). Likely causes: a learning rate too high (lr_g={self.config.lr_g}, "
            f"lr_d={self.config.lr_d}; try 10x lower), the loss choice (loss={self.config.loss!r}; {hint}), or "
            f"float16 overflow under AMP (amp={self.amp_mode!r}; try amp='bf16' or 'off'). The update was not "
            f"applied; {kept}. nan_policy='skip' skips such steps instead (and counts them).")

    def _kept_checkpoint(self) -> str:
        """Where the last good checkpoint of this run is, for error messages."""
        path = self.last_checkpoint
        if path is None and self.out_dir is not None and (self.out_dir / "checkpoint.pt").is_file():
            path = self.out_dir / "checkpoint.pt"
        if path is None:
            return "no checkpoint was written (pass out_dir to keep one)"
        return f"the last good checkpoint is kept at {path}"

    def _check_weights_finite(self) -> None:
        """Raise NonFiniteLossError if a weight of G, D or the EMA is NaN or infinite (checked before saving)."""
        for name, model in (("generator", self.G), ("discriminator", self.D), ("EMA generator", self.G_ema)):
            if model is None:
                continue
            params = [p.detach() for p in model.parameters()]
            if params and not bool(torch.isfinite(torch.stack([p.float().abs().max() for p in params])).all()):
                kept = self._kept_checkpoint()
                raise NonFiniteLossError(
                    f"training stopped at step {self.step}: the {name}'s weights are not finite (NaN or inf), "
                    f"so they were not saved; {kept}. Likely causes: a learning rate too high "
                    f"(lr_g={self.config.lr_g}, lr_d={self.config.lr_d}), the loss choice "
                    f"(loss={self.config.loss!r}), or float16 overflow under AMP (amp={self.amp_mode!r}).")

    def train_step(self) -> dict[str, float]:
        """One generator step (after ``n_critic`` discriminator steps); returns its statistics."""
        cfg = self.config
        B = self.local_batch
        gp_w = cfg.gp_weight_effective
        factor = cfg.lr_factor(self.step)
        for opt, lr in ((self.opt_G, cfg.lr_g), (self.opt_D, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor
        for _ in range(cfg.n_critic_effective):
            x, y = self._real_batch()
            z, _ = self._noise(B)
            with torch.no_grad(), self._autocast():
                fake = self._call(self._G, z, y)
            with self._autocast():
                real_logits = self._call(self._D, x, y).float()
                fake_logits = self._call(self._D, fake, y).float()
                kwargs = {"label_smoothing": cfg.label_smoothing} if cfg.label_smoothing else {}
                d_loss = self.loss.d(real_logits, fake_logits, **kwargs)
            penalty = torch.zeros((), device=self.device)
            if gp_w > 0:  # penalties in float32, outside autocast
                penalty = penalty + gp_w * gradient_penalty(self._D, x.float(), fake.float(), y, self.rng)
            if cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0:
                # lazy R1 (Karras et al. 2020): every r1_every-th step, weighted r1_every times as much
                penalty = penalty + 0.5 * cfg.r1_gamma * cfg.r1_every * r1_penalty(self._D, x.float(), y)
            total = d_loss + penalty
            self.opt_D.zero_grad(set_to_none=True)
            self.scaler_D.scale(total).backward()
            if self._check_finite("discriminator", total, self.D.parameters(), self.scaler_D.is_enabled()):
                self.scaler_D.step(self.opt_D)
                self.scaler_D.update()

        z, yg = self._noise(B)
        with self._autocast():
            g_logits = self._call(self._D, self._call(self._G, z, yg), yg).float()
            g_loss = self.loss.g(g_logits)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler_G.scale(g_loss).backward()
        if self._check_finite("generator", g_loss, self.G.parameters(), self.scaler_G.is_enabled()):
            self.scaler_G.step(self.opt_G)
            self.scaler_G.update()
            self._update_ema()
        self.step += 1

        stats = torch.stack([d_loss.detach(), g_loss.detach(), torch.sigmoid(real_logits.detach()).mean(),
                             torch.sigmoid(fake_logits.detach()).mean(), penalty.detach()]).float()
        if self.distributed:
            dist.all_reduce(stats)
            stats /= self.world_size
        values = dict(zip(HISTORY_KEYS, stats.tolist()))
        for k, v in values.items():
            self.history[k].append(v)
        return values

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        # warm-up: the average starts as a copy and lengthens its horizon (as in many EMA implementations)
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        ema_p, p = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, p, 1 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ the loop
    def fit(self, steps: int | None = None, progress: bool | None = None) -> dict[str, list[float]]:
        """Train until ``config.steps`` generator steps are done (or ``steps`` more, if given).

        Ctrl-C (or the notebook's stop button) and SIGTERM stop cleanly after the current step: a checkpoint is
        written (when ``out_dir`` is set), ``self.interrupted`` is set, and calling ``fit()`` again continues.
        Returns ``self.history``.
        """
        target = self.config.steps if steps is None else self.step + steps
        if steps is not None and (not _is_int(steps) or steps < 0):
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        from tqdm.auto import tqdm

        show = (self.verbose if progress is None else progress) and self.rank == 0
        self.interrupted = self._stop_requested = False
        restore = self._install_signal_handlers()
        quiet_env = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no")
        bar = tqdm(total=target, initial=self.step, disable=not show or quiet_env, desc=f"{self.config.data} GAN",
                   unit="step", mininterval=0.5, dynamic_ncols=True)
        try:
            self.G.train()
            self.D.train()
            while self.step < target:
                stats = self.train_step()
                bar.update(1)
                if self.step % 50 == 0 or self.step == target:
                    bar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats['g_loss']:.3f}",
                                    Dx=f"{stats['d_real']:.2f}", DGz=f"{stats['d_fake']:.2f}", refresh=False)
                if self.out_dir is not None and self.step % self.config.checkpoint_every == 0:
                    self._check_weights_finite()  # never replace a good checkpoint with broken weights
                    self.save(self.out_dir / "checkpoint.pt")
                if self.callbacks and (self.step % self.config.callback_every == 0 or self.step == target):
                    for cb in self.callbacks:
                        cb(self)
                if self._stop_requested:
                    self.interrupted = True
                    break
        finally:
            bar.close()
            restore()
        if self.out_dir is not None and (self.interrupted or self.step == target):
            self._check_weights_finite()
            self.save(self.out_dir / "checkpoint.pt")
        if self.interrupted and self.verbose and self.rank == 0:
            where = f"; checkpoint saved to {self.last_checkpoint}" if self.out_dir is not None else ""
            print(f"[course_lib] interrupted after step {self.step}{where}. Call fit() again, or run "
                  f"`python -m course_lib train --resume <checkpoint>`, to continue the same run.")
        return self.history

    def _install_signal_handlers(self) -> Callable[[], None]:
        """Turn SIGINT / SIGTERM into a request to stop after the current step (a second one stops at once)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}

        def handler(signum, frame):
            if self._stop_requested:  # second press: give up immediately
                for sig, old in previous.items():
                    signal.signal(sig, old)
                raise KeyboardInterrupt
            self._stop_requested = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # not allowed here
                pass

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)
        return restore

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def close(self) -> None:
        """End a distributed run cleanly: drop the DistributedDataParallel wrappers, wait for every process,
        then destroy the process group (gloo or NCCL threads still running at interpreter exit can abort the
        process). Sampling and saving keep working; training does not. A no-op in a single process."""
        if not self.distributed:
            return
        self._G, self._D = self.G, self.D
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def sample(self, n: int, labels: torch.Tensor | None = None, use_ema: bool = True,
               noise: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
        """``n`` samples on the CPU, float32, in data space: (n, D) points or (n, C, S, S) images in [-1, 1].

        Uses the EMA generator when there is one (and ``use_ema``), in eval mode. Draws its noise from a
        separate generator seeded by the step, so sampling never changes the course of training.
        """
        G = self.G_ema if (use_ema and self.G_ema is not None) else self.G
        return generate(G, n, self.config.latent_dim, self.device, labels=labels, noise=noise,
                        num_classes=self.num_classes, seed=self.config.seed * 7919 + self.step,
                        batch_size=batch_size)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        rng = {"trainer": self.rng.get_state(), "torch": torch.get_rng_state()}
        return {
            "config": self.config.to_dict(), "step": self.step, "batches_drawn": self.batches_drawn,
            "skipped_steps": self.skipped_steps, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict(), "rng": rng,
            "history": {k: list(v) for k, v in self.history.items()},
            "fixed_noise": self.fixed_noise.cpu(),
            "data_info": {"name": self.dataset.name, "sample_shape": list(self.dataset.sample_shape),
                          "num_classes": self.num_classes, "note": self.dataset.note},
            "world_size": self.world_size,
        }

    def save(self, path: str | os.PathLike) -> Path | None:
        """Write a checkpoint atomically (rank 0 only under DDP); return its path."""
        if self.rank != 0:
            return None
        self.last_checkpoint = save_checkpoint(self.state_dict(), path)
        return self.last_checkpoint

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore everything from ``state`` (as read by ``load_checkpoint``); models must match the config."""
        check_compatible(self.config, state, source)
        saved_shape = tuple((state.get("data_info") or {}).get("sample_shape") or ())
        if saved_shape and saved_shape != tuple(self.dataset.sample_shape):
            raise CheckpointError(f"{source} was trained on samples of shape {saved_shape} (points: (dim,); images: "
                                  f"(channels, height, width)), but this dataset's samples have shape "
                                  f"{tuple(self.dataset.sample_shape)}; resume with the same data")
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{source} does not fit the models of this config: {_first_lines(exc)}") from None
        self.scaler_G.load_state_dict(state.get("scaler_G") or {})
        self.scaler_D.load_state_dict(state.get("scaler_D") or {})
        self.step = int(state["step"])
        self.batches_drawn = int(state.get("batches_drawn", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.history = {k: list(state.get("history", {}).get(k, [])) for k in HISTORY_KEYS}
        rng = state.get("rng", {})
        same_kind = "trainer" in rng and rng["trainer"].numel() == self.rng.get_state().numel()  # CPU vs CUDA
        if self.rank == 0 and state.get("world_size", 1) == self.world_size and same_kind:
            self.rng.set_state(rng["trainer"].to(self.rng.get_state().device))
            torch.set_rng_state(rng["torch"])
        else:  # another process layout: a fresh, still repeatable stream for each rank
            self.rng.manual_seed(self.config.seed * 1000 + self.rank + 1 + 7 * self.step)
        self._perm_cache = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                        dataset: data_mod.Dataset | None = None, callbacks: Sequence[Callable] = (),
                        verbose: bool = True, **changes: Any) -> "GANTrainer":
        """Resume a run: rebuild the trainer from the checkpoint's config (``changes`` may set fields that
        do not define the models, such as ``steps``, ``device`` or ``checkpoint_every``) and load its state."""
        state = load_checkpoint(path)
        bad = sorted(set(changes) & set(MODEL_FIELDS))
        if bad:
            raise CheckpointError(f"cannot change {bad} when resuming: they define the models saved in {path}")
        try:
            config = TrainConfig.from_dict({**state["config"], **changes})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from None
        trainer = cls(config, dataset=dataset, out_dir=out_dir, callbacks=callbacks, verbose=verbose)
        trainer.load_state_dict(state, source=f"checkpoint {path}")
        return trainer


def _first_lines(exc: BaseException, n: int = 2) -> str:
    """The first ``n`` non-empty lines of an error (load_state_dict's headline and first mismatch)."""
    return " ".join([ln.strip() for ln in str(exc).splitlines() if ln.strip()][:n])


def check_compatible(config: TrainConfig, state: dict[str, Any], source: str = "checkpoint") -> None:
    """Raise CheckpointError listing every model-defining field where ``state['config']`` and ``config`` differ."""
    saved = state.get("config", {})
    diffs = [f"{k}: {source} has {saved.get(k)!r}, the model asked for has {getattr(config, k)!r}"
             for k in MODEL_FIELDS if k in saved and saved.get(k) != getattr(config, k)]
    if diffs:
        raise CheckpointError(f"{source} does not match the requested model:\n  " + "\n  ".join(diffs))


@torch.no_grad()
def generate(G: nn.Module, n: int, latent_dim: int, device: torch.device, labels: torch.Tensor | None = None,
             noise: torch.Tensor | None = None, num_classes: int | None = None, seed: int = 0,
             batch_size: int = 1024) -> torch.Tensor:
    """``n`` samples of generator ``G`` in eval mode, on the CPU (float32), produced in batches.

    ``labels`` (n,) int64 picks the classes of a conditional G (default: 0, 1, 2, ... cycling); ``noise``
    (n, latent_dim) fixes z (default: drawn from a generator seeded with ``seed``).
    """
    if not _is_int(n) or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if noise is None:
        noise = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    if not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor of shape ({n}, {latent_dim}), got "
                        f"{getattr(noise, 'dtype', type(noise).__name__)}")
    if noise.shape != (n, latent_dim):
        raise ValueError(f"noise must have shape ({n}, {latent_dim}), got {tuple(noise.shape)}")
    noise = noise.float()
    if num_classes:
        if labels is None:
            labels = torch.arange(n) % num_classes
        else:
            labels = torch.as_tensor(labels)
            if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
                raise TypeError(f"labels must be an integer tensor (class indices), got dtype {labels.dtype}")
            labels = labels.long().cpu()
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), one class per sample, got {tuple(labels.shape)}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must be class indices in [0, {num_classes}), got values from "
                             f"{int(labels.min())} to {int(labels.max())}")
    elif labels is not None:
        raise ValueError("labels were given but this generator is unconditional (no classes); train with "
                         "conditional=True to choose classes")
    was_training = G.training
    G.eval()
    try:
        out = []
        for i in range(0, n, batch_size):
            z = noise[i:i + batch_size].to(device)
            y = None if not num_classes else labels[i:i + batch_size].to(device)
            out.append((G(z) if y is None else G(z, y)).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True
                   ) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Load the generator of a checkpoint (the EMA one when present) for sampling.

    Returns ``(G, config, data_info)``; G is in eval mode on ``device``.
    """
    state = load_checkpoint(path)
    config = TrainConfig.from_dict(state["config"])
    info = state.get("data_info") or {}
    shape = tuple(info.get("sample_shape") or ())
    if not shape:
        raise CheckpointError(f"checkpoint {path} does not record the data's sample shape")
    G, _ = build_models(config.model, shape, config.latent_dim, config.g_width, config.d_width, config.depth,
                        info.get("num_classes"), config.spectral_norm)
    weights = state["G_ema"] if (use_ema and state.get("G_ema") is not None) else state["G"]
    try:
        G.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: generator weights do not fit its config: "
                              f"{_first_lines(exc)}") from None
    return G.to(get_device(device) if isinstance(device, str) else device).eval(), config, info
