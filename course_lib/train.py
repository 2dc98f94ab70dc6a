"""The training step of a GAN, and the course's one training loop around it.

Read ``d_step`` and ``g_step`` first: notebook 03's steps (4) to (14) as library functions. ``GANTrainer``
runs ``n_critic`` of the first and one of the second per step, and adds the options: gradient penalties,
mixed precision, a NaN guard, an EMA of G, the lr schedule, checkpoints and exact resume:

    >>> trainer = GANTrainer(TrainConfig.for_data("ring8", steps=2000))
    >>> trainer.fit()                      # progress bar, history, optional checkpoints
    >>> x = trainer.sample(2500)           # (2500, 2) points in data space

Elsewhere: the config and its resume rule (``config``), the NaN guard (``guard``), the speed options
(``speed_options``), several processes (``distributed``), random streams and data order (``streams``), the EMA
(``ema``), what the run prints (``progress``, ``stopping``), sampling (``sampling``).
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import data as data_mod
from .checkpoint import CheckpointError, check_finite_weights, load_checkpoint, save_checkpoint
from .checks import check_int
from .config import (AMP_CHOICES, LR_SCHEDULES, MODEL_FIELDS, NAN_POLICIES, RESUMABLE_FIELDS, ResumeConflictError,
                     TrainConfig, resume_config)
from .device import seed_everything
from .distributed import convert_sync_batchnorm, leave_process_group, setup_processes, wrap_for_forward
from .ema import ema_decay, ema_update
from .families import check_family
from .guard import (NO_GUARD, NoGuard, NonFiniteGuard, NonFiniteLossError, check_weights_finite, kept_checkpoint_text,
                    nonfinite_loss_message, skipped_message)
from .losses import GANLoss, get_loss, gradient_penalty, r1_penalty
from .models import build_models
from .optim import load_optimizer
from .progress import progress_bar, progress_postfix, run_summary
from .run_inputs import check_history_in_step, check_run_inputs, resume_dataset
from .sampling import check_compatible, check_same_data, first_lines, generate, load_generator
from .speed_options import SpeedOptions, resolve_speed_options
from .loop import run_steps
from .streams import batches_per_epoch, check_dataset, epoch_permutation, restore_rng, stream_seed
from .utils import frozen

__all__ = ["d_step", "g_step", "GANTrainer", "HISTORY_KEYS",  # and, re-exported: the names of config, sampling
           "TrainConfig", "NonFiniteLossError", "ResumeConflictError", "generate", "load_generator", "check_compatible",
           "MODEL_FIELDS", "RESUMABLE_FIELDS", "AMP_CHOICES", "LR_SCHEDULES", "NAN_POLICIES"]

HISTORY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "penalty")
PLAIN = torch.amp.GradScaler("cpu", enabled=False)  # no loss scaling: scale(loss) is loss, step(opt) is opt.step()


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``model(x)``, or ``model(x, y)`` for a class-conditional model (``y``: (N,) int64 labels)."""
    return model(x) if y is None else model(x, y)


# ============================================================================ the GAN: one step of each network

def d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, loss: GANLoss | str, real: torch.Tensor,
           z: torch.Tensor, y: torch.Tensor | None = None, *, label_smoothing: float = 0.0,
           penalty: Callable[..., torch.Tensor] | None = None, autocast: Callable = contextlib.nullcontext,
           scaler: torch.amp.GradScaler = PLAIN, guard: NonFiniteGuard | NoGuard = NO_GUARD) -> dict[str, Any]:
    """One discriminator update: minimise ``loss.d(D(x), D(G(z)))`` over D's weights, G untouched.

    Args:
        real: (N, ...) real batch (step (2) of notebook 03); z: (N, latent_dim) noise (step (3));
            y: (N,) labels of the real batch for a conditional GAN (the fakes get the same labels).
        loss: a ``GANLoss`` or its name (``"nonsaturating"``, ``"hinge"``, ...).
        penalty: ``penalty(real, fake, y) -> scalar`` added to the loss (gradient penalty, R1).
        autocast, scaler, guard: the trainer's mixed precision, its float16 loss scaling (``GradScaler``) and its
            NaN guard (``guard.NonFiniteGuard``); by default none of them: plain ``backward()`` and ``step()``.
    Returns: detached scalars ``d_loss``, ``d_real`` (mean D(x) = sigmoid(logit)), ``d_fake``, ``penalty``, and
        ``ok``: the guard's 0-dim bool flag that the update was kept (None without a guard)."""
    loss = get_loss(loss) if isinstance(loss, str) else loss
    with torch.no_grad(), autocast():
        fake = _forward(G, z, y)                      # (4) fake batch; no graph: this update must not reach G
    with autocast():
        real_logits = _forward(D, real, y).float()    # (5) logits, (N,) each
        fake_logits = _forward(D, fake, y).float()
        smoothing = {"label_smoothing": label_smoothing} if label_smoothing else {}
        d_loss = loss.d(real_logits, fake_logits, **smoothing)   # (6) L_D: real -> "real", fake -> "fake"
    extra = penalty(real, fake, y) if penalty is not None else torch.zeros((), device=real.device)
    total = d_loss + extra
    opt_D.zero_grad(set_to_none=True)                 # (7) forget the gradients of earlier steps
    scaler.scale(total).backward()                    # (8) dL_D / d(theta_D) by backpropagation (float16: scaled)
    ok = guard.check(total, D.parameters(), scaled=scaler.is_enabled())   # finite? a device flag, no host sync
    with guard.masked(ok, "discriminator", opt_D):    # a non-finite update is undone (torch.where on the device)
        scaler.step(opt_D)                            # (9) theta_D <- theta_D - Adam step (opt_D.step(), unscaled)
    scaler.update()
    return {"d_loss": d_loss.detach(), "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(), "penalty": extra.detach(), "ok": ok}


def g_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, loss: GANLoss | str, z: torch.Tensor,
           y: torch.Tensor | None = None, *, autocast: Callable = contextlib.nullcontext,
           scaler: torch.amp.GradScaler = PLAIN, guard: NonFiniteGuard | NoGuard = NO_GUARD) -> dict[str, Any]:
    """One generator update: minimise ``loss.g(D(G(z)))`` over G's weights (only ``opt_G`` steps).

    ``z``: (N, latent_dim) fresh noise (step (10) of notebook 03); ``y``: (N,) classes for a conditional GAN.
    ``autocast``, ``scaler`` and ``guard`` as in ``d_step``. Returns the detached scalar ``g_loss`` and the
    guard's flag ``ok`` (None without a guard).
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    with autocast(), frozen(D):                       # D is a fixed function here: no gradients for its weights
        g_logits = _forward(D, _forward(G, z, y), y).float()   # (11) no detach: the gradient flows through D
        g_loss = loss.g(g_logits)                     # (12) L_G, e.g. -E[log D(G(z))] (non-saturating)
    opt_G.zero_grad(set_to_none=True)
    scaler.scale(g_loss).backward()                   # (13) fills G's gradients (through D, to its input only)
    ok = guard.check(g_loss, G.parameters(), scaled=scaler.is_enabled())
    with guard.masked(ok, "generator", opt_G):
        scaler.step(opt_G)                            # (14) theta_G <- theta_G - Adam step
    scaler.update()
    return {"g_loss": g_loss.detach(), "ok": ok}


# ============================================================================ the loop around them

class GANTrainer:
    """Trains a GAN described by a ``TrainConfig``.

    Args:
        config: the run's configuration. dataset: a ``course_lib.data.Dataset`` (default: ``config.data``).
        out_dir: folder for ``checkpoint.pt`` (every ``checkpoint_every`` steps, at the end, on interruption).
        callbacks: functions ``f(trainer)`` called every ``config.callback_every`` steps and at the end (live
            plots, logging). They must not draw random numbers from the trainer's generator.
        G, D: networks to use instead of building them from the config. verbose: progress bar and messages.

    Attributes:
        G, D: the plain networks (saved); ``G_wrapped`` / ``D_wrapped``: as the forward passes use them (in
            DistributedDataParallel and/or ``torch.compile``d; else G and D themselves).
        history: one value per step of ``d_loss``, ``g_loss``, ``d_real`` (mean D(x)), ``d_fake``, ``penalty``.
        step: generator updates done. ``fixed_noise``: (64, latent_dim) noise for progress images.

    A step has no host sync: statistics stay on the device, read every ``config.log_every`` steps, before
    callbacks and checkpoints, on interruption, at the end and when ``history`` is used; a NaN/inf masks the
    update by a device flag (``guard.NonFiniteGuard``). Except: each optimiser's first update, and float16
    AMP with a non-fused Adam (``GradScaler.step`` reads its inf check; Adam is fused on CUDA; bf16 needs none).
    """

    def __init__(self, config: TrainConfig, dataset: data_mod.Dataset | None = None,
                 out_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[Callable[["GANTrainer"], None]] = (),
                 G: nn.Module | None = None, D: nn.Module | None = None, verbose: bool = True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        config.validate()  # again: a field may have been set after construction (run_inputs)
        cfg = config
        self.config = config
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.loss = get_loss(cfg.loss)
        self.out_dir = Path(out_dir) if out_dir is not None else None

        processes = setup_processes(cfg.batch_size, cfg.device)  # one, or this one of torchrun's
        self.rank = processes.rank
        self.local_rank = processes.local_rank
        self.world_size = processes.world_size
        self.device = processes.device
        self.distributed = self.world_size > 1
        self.local_batch = cfg.batch_size // self.world_size
        seed_everything(cfg.seed)

        if dataset is None:
            dataset = data_mod.load(cfg.data, image_size=cfg.image_size, fallback=cfg.fallback, split=cfg.split)
        check_run_inputs(cfg, dataset)  # the data against the config, labels, values (run_inputs)
        shard_size, num_classes = check_dataset(dataset, cfg.conditional, self.local_batch, self.world_size)
        self.shard_size = shard_size
        self.num_classes = num_classes
        self.dataset = dataset.to(self.device)  # held on the device: batches are drawn by index

        if (G is None) != (D is None):
            raise ValueError("pass both G and D, or neither (then they are built from the config)")
        if G is None:
            G, D = build_models(cfg.model, dataset.sample_shape, cfg.latent_dim, cfg.g_width, cfg.d_width, cfg.depth,
                                self.num_classes, cfg.spectral_norm, cfg.latent_codes, cfg.g_init_gain)
        speed = self._resolve_speed_options()
        self.G = G.to(self.device)
        self.D = D.to(self.device)
        for model in (self.G, self.D) if self.channels_last else ():
            model.to(memory_format=torch.channels_last)
        fused = {"fused": True} if self.device.type == "cuda" else {}  # Adam's step count on the GPU
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas, **fused)  # (1) one
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas, **fused)  # each
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.G_ema = None if cfg.ema_decay is None else copy.deepcopy(self.G).eval().requires_grad_(False)
        if cfg.sync_bn:  # in place, parameters kept (optimisers, EMA unaffected); an announced no-op off DDP/GPU
            convert_sync_batchnorm(nn.ModuleList([self.G, self.D]), self.device)
        self.G_wrapped = wrap_for_forward(self.G, self.distributed, self.compile_G, self.device)
        self.D_wrapped = wrap_for_forward(self.D, self.distributed, self.compile_D, self.device)

        # one generator on the device for noise, labels and penalties (saved in checkpoints)
        self.rng = torch.Generator(device=self.device).manual_seed(stream_seed("noise", cfg.seed, rank=self.rank))
        fixed = torch.Generator().manual_seed(stream_seed("fixed", cfg.seed))
        self.fixed_noise = torch.randn(64, cfg.latent_dim, generator=fixed).to(self.device)
        self.fixed_labels = (torch.arange(64) % self.num_classes).to(self.device) if self.num_classes else None

        self.step = 0                                 # generator updates done
        self.batches_drawn = 0                        # real batches drawn (the data order's position)
        self.skipped_steps = 0                        # steps whose update the NaN guard skipped
        self._history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self._read_at = 0                             # the step of the last read of the statistics
        self.interrupted = False
        self.last_checkpoint: Path | None = None
        self._perm_cache: tuple[int, torch.Tensor] | None = None  # (epoch, this process's permutation)
        self.guard = NonFiniteGuard(cfg.nan_policy, self.device, self.distributed, self.world_size)
        if self.verbose and self.rank == 0:
            print(run_summary(cfg, len(self.dataset), self.world_size, self.local_batch, self.device, speed))

    def _resolve_speed_options(self) -> SpeedOptions:
        """Decide AMP, channels-last and compile for ``self.device`` (``speed_options``) and keep them."""
        speed = resolve_speed_options(self.config, self.device)
        self.amp_mode = speed.amp_mode
        self.amp_dtype = speed.amp_dtype
        self.channels_last = speed.channels_last
        self.compile_G = speed.compile_G
        self.compile_D = speed.compile_D
        return speed

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, torch.Tensor]:
        """One generator step (after ``n_critic`` discriminator steps), with no host sync; returns this process's
        statistics as 0-dim device tensors (``history`` gets them, averaged over processes, at the next read)."""
        cfg = self.config
        B = self.local_batch
        for opt, lr in ((self.opt_G, cfg.lr_g), (self.opt_D, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * cfg.lr_factor(self.step)
        for _ in range(cfg.n_critic):
            real, y = self._real_batch()              # (2) a real batch (and its labels)
            z, _ = self._noise(B)                     # (3) noise; the fakes take the real batch's labels
            d = d_step(self.G_wrapped, self.D_wrapped, self.opt_D, self.loss, real, z, y,
                       label_smoothing=cfg.label_smoothing, penalty=self._penalty, autocast=self._autocast,
                       scaler=self.scaler_D, guard=self.guard)
        z, y = self._noise(B)                         # (10) fresh noise (and classes)
        g = g_step(self.G_wrapped, self.D_wrapped, self.opt_G, self.loss, z, y, autocast=self._autocast,
                   scaler=self.scaler_G, guard=self.guard)
        if self.G_ema is not None:                    # the average of G's weights follows G (and skips with it)
            with self.guard.masked(g["ok"], "ema", self.G_ema):
                ema_update(self.G_ema, self.G, ema_decay(cfg.ema_decay, self.step))
        self.step += 1
        values = dict(zip(HISTORY_KEYS, (d["d_loss"], g["g_loss"], d["d_real"], d["d_fake"], d["penalty"])))
        self.guard.stats.end_step(list(values.values()))
        if self.step % cfg.log_every == 0:
            self._read()
        return values

    def _read(self) -> None:
        """Move the steps' statistics into ``history`` (one host sync); count NaN steps ("skip"), or stop ("stop")."""
        rows, faults = self.guard.stats.read(self.step, self.config.nan_policy == "stop")
        self._read_at = self.step
        for k, column in zip(HISTORY_KEYS, zip(*rows)):
            self._history[k].extend(column)
        for step, what, value in faults:
            if self.config.nan_policy == "stop":  # no update since was applied (a sticky mask): set step back
                self.batches_drawn -= (self.step - step + 1) * self.config.n_critic
                self.step = step - 1
                self.guard.reset()
                kept = kept_checkpoint_text(self.last_checkpoint, self.out_dir)
                raise NonFiniteLossError(nonfinite_loss_message(what, step, value, self.config, self.amp_mode, kept))
            self.skipped_steps += 1
            if self.verbose and self.rank == 0:
                print(skipped_message(step, what, self.skipped_steps))

    @property
    def history(self) -> dict[str, list[float]]:
        """The statistics of every step so far (``HISTORY_KEYS`` -> list of floats); using it reads first."""
        self._read()
        return self._history

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The gradient penalties on D, in float32 outside autocast: WGAN-GP and (lazy) R1."""
        cfg = self.config
        penalty = torch.zeros((), device=self.device)
        if cfg.gp_weight > 0:
            gp = gradient_penalty(self.D_wrapped, real.float(), fake.float(), y, self.rng)
            penalty = penalty + cfg.gp_weight * gp
        if cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0:
            # lazy R1 (Karras et al. 2020): every r1_every-th step, weighted r1_every times as much
            penalty = penalty + 0.5 * cfg.r1_gamma * cfg.r1_every * r1_penalty(self.D_wrapped, real.float(), y)
        return penalty

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next real batch: epoch e uses a fixed permutation of seed and e, this process's shard of it."""
        per_epoch = batches_per_epoch(len(self.dataset), self.config.batch_size, self.world_size)
        epoch, k = divmod(self.batches_drawn, per_epoch)
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, epoch_permutation(len(self.dataset), self.config.seed, epoch, self.rank,
                                                         self.world_size, self.shard_size, self.device))
        self.batches_drawn += 1
        x, y = self.dataset.get(self._perm_cache[1][k * self.local_batch:(k + 1) * self.local_batch])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y if self.num_classes else None)

    def _noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n, latent_dim) noise and, for a conditional GAN, (n,) random classes, from the trainer's rng."""
        z = torch.randn(n, self.config.latent_dim, device=self.device, generator=self.rng)
        return z, (torch.randint(self.num_classes, (n,), device=self.device, generator=self.rng)
                   if self.num_classes else None)

    # ------------------------------------------------------------------ the loop
    def fit(self, steps: int | None = None, progress: bool | None = None) -> dict[str, list[float]]:
        """Train until ``config.steps`` generator steps are done (or ``steps`` more); return ``history``.
        Ctrl-C (the notebook's stop button) or SIGTERM stops after the current step, sets ``interrupted`` and
        writes a checkpoint (with ``out_dir``); calling ``fit()`` again continues."""
        check_int("steps", steps, minimum=0, allow_none=True)
        self.config.validate()  # it may have been changed since the trainer was built
        target = self.config.steps if steps is None else self.step + steps
        bar = progress_bar(target, self.step, f"{self.config.data} GAN",
                           show=(self.verbose if progress is None else progress) and self.rank == 0)
        self.G.train()
        self.D.train()
        # loop.run_steps: train_step() until target (it reads every log_every steps), with checkpoints, callbacks
        # and a clean stop on Ctrl-C; the bar shows the statistics of the last read
        run_steps(self, target, bar, lambda: (progress_postfix(self._history, self.config.loss)
                                              if self._read_at == self.step else None))
        return self.history

    def _save_checked(self) -> None:
        """Save ``out_dir/checkpoint.pt``, but never replace a good checkpoint with non-finite weights."""
        self._read()  # on every process (under DDP a collective), and a stop on a NaN comes before saving
        check_weights_finite({"generator": self.G, "discriminator": self.D, "EMA generator": self.G_ema}, self.step,
                             self.config, self.amp_mode, kept_checkpoint_text(self.last_checkpoint, self.out_dir))
        self.save(self.out_dir / "checkpoint.pt")

    def close(self) -> None:
        """End a distributed run cleanly (``distributed.leave_process_group``); sampling and saving keep working."""
        if self.distributed:
            self.G_wrapped = self.G  # drop the DDP wrappers
            self.D_wrapped = self.D
            leave_process_group()

    def sample(self, n: int, labels: torch.Tensor | None = None, use_ema: bool = True,
               noise: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
        """``n`` samples on the CPU, float32: (n, D) points or (n, C, S, S) images in [-1, 1], from the EMA
        generator if any (and ``use_ema``), in eval mode, with noise of its own stream (training is unchanged)."""
        G = self.G_ema if (use_ema and self.G_ema is not None) else self.G
        return generate(G, n, self.config.latent_dim, self.device, labels=labels, noise=noise,
                        num_classes=self.num_classes, batch_size=batch_size,
                        seed=stream_seed("sample", self.config.seed, step=self.step))

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds: config, counters, weights, optimisers, scalers, rng, history, data."""
        self._read()
        rng = {"trainer": self.rng.get_state(), "torch": torch.get_rng_state()}
        return {
            "config": self.config.to_dict(), "step": self.step, "batches_drawn": self.batches_drawn,
            "skipped_steps": self.skipped_steps, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict(), "rng": rng,
            "history": {k: list(v) for k, v in self.history.items()}, "fixed_noise": self.fixed_noise.cpu(),
            "data_info": {"name": self.dataset.name, "sample_shape": list(self.dataset.sample_shape),
                          "num_classes": self.num_classes, "note": self.dataset.note}, "world_size": self.world_size}

    def save(self, path: str | os.PathLike) -> Path | None:
        """Write a checkpoint atomically (rank 0 only under DDP); return its path."""
        if self.rank != 0:
            return None
        self.last_checkpoint = save_checkpoint(self.state_dict(), path)
        return self.last_checkpoint

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore everything from ``state`` (as read by ``load_checkpoint``); models and data must match."""
        check_compatible(self.config, state, source)
        check_same_data(state.get("data_info") or {}, self.dataset, source)
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
            load_optimizer(self.opt_G, state["opt_G"])  # fused (CUDA) or not, as in this run
            load_optimizer(self.opt_D, state["opt_D"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{source} does not fit the models of this config: {first_lines(exc)}") from None
        for scaler, key in ((self.scaler_G, "scaler_G"), (self.scaler_D, "scaler_D")):
            if scaler.is_enabled() and state.get(key):  # a float16 run resumed in float16
                scaler.load_state_dict(state[key])
        check_history_in_step(state, source)
        self.step = int(state["step"])
        self._read_at = self.step
        self.batches_drawn = int(state.get("batches_drawn", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._history = {k: list(state.get("history", {}).get(k, [])) for k in HISTORY_KEYS}
        self.guard.reset()
        restore_rng(self.rng, state, self.rank, self.world_size, self.config.seed)
        self._perm_cache = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                        dataset: data_mod.Dataset | None = None, callbacks: Sequence[Callable] = (),
                        verbose: bool = True, **changes: Any) -> "GANTrainer":
        """Resume a run: the checkpoint's config with ``changes`` (``config.resume_config``: only the fields of
        ``RESUMABLE_FIELDS`` may differ from the saved values; ``steps`` is the new total), then its state."""
        state = load_checkpoint(path)
        check_family(state, "gan", f"checkpoint {str(path)!r}", "resuming a GAN")
        check_finite_weights(state, "resuming", keys=("G", "D", "G_ema"), source=f"checkpoint {str(path)!r}")
        config = resume_config(state["config"], state["step"], changes, source=f"checkpoint {path}")
        if dataset is None:  # a run that fell back to digits goes on with digits (run_inputs.resume_dataset)
            dataset = resume_dataset(config, state.get("data_info"))
        if dataset is not None:  # the checkpoint's own message first, then the trainer's checks of the data
            check_same_data(state.get("data_info") or {}, dataset, f"checkpoint {path}")
        trainer = cls(config, dataset=dataset, out_dir=out_dir, callbacks=callbacks, verbose=verbose)
        trainer.load_state_dict(state, source=f"checkpoint {path}")
        return trainer
