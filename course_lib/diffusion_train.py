"""The loop around a DDPM's training step (``diffusion.diffusion_step``), with the GAN's data, budgets, seeding,
checkpoints and run folders:

    >>> trainer = DDPMTrainer(TrainConfig.for_data("fashion-mnist", model="ddpm", steps=2000), out_dir="runs/ddpm")
    >>> trainer.fit()                                   # progress bar, history["loss"], checkpoints
    >>> x = trainer.sample(64, sampling_steps=50)       # (64, 1, 32, 32) in [-1, 1]: 50 DDIM steps
    >>> net, schedule, config, info = load_denoiser("runs/ddpm/checkpoint.pt")   # for sampling elsewhere

The config is a ``TrainConfig`` with ``model="ddpm"``: ``g_width`` is the U-Net's width, ``lr_g`` and ``betas``
its Adam, ``ema_decay`` its EMA (``course_lib.ema``, as for a GAN's generator), ``diffusion_steps`` and
``noise_schedule`` the forward process. The data (``data.load``), the seed (``device.seed_everything``), the random
streams and the data order (``streams``), the checkpoint files (``checkpoint``: weights_only, checksum, schema) are
the GAN's. In a checkpoint the U-Net's weights are ``G`` (and ``G_ema``); ``D`` is empty (``families``).
One process, float32: the GAN's speed options and processes are not used here.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import data as data_mod
from .checkpoint import CheckpointError, check_finite_weights, load_checkpoint, save_checkpoint
from .checks import check_int, check_seed
from .config import TrainConfig, resume_config
from .device import get_device, seed_everything
from .diffusion import (NoiseSchedule, ancestral_sample, check_sampling_steps, ddim_sample, diffusion_step,
                        make_schedule)
from .ema import ema_decay, ema_update
from .families import check_family, family_of
from .guard import NonFiniteLossError, kept_checkpoint_text
from .models import count_parameters
from .optim import load_optimizer
from .progress import progress_bar
from .sampling import check_compatible, check_same_data, first_lines, load_for_sampling
from .loop import run_steps
from .streams import batches_per_epoch, check_dataset, epoch_permutation, restore_rng, stream_seed
from .unet import UNet

__all__ = ["DDPMTrainer", "load_denoiser", "sample_images", "HISTORY_KEYS"]

HISTORY_KEYS = ("loss",)


def sample_images(net: torch.nn.Module, schedule: NoiseSchedule, n: int, sample_shape: tuple[int, ...],
                  sampling_steps: int | None = None, device: torch.device | str = "cpu", seed: int = 0,
                  x_T: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
    """``n`` images of a trained noise predictor, ``batch_size`` at a time, as (n, C, S, S) float32 on the CPU in
    [-1, 1]: ancestral sampling over all T steps (``sampling_steps`` None), else DDIM (eta = 0) with that many.
    ``batch_size`` None: 64 on the CPU (the U-Net's activations stay near 0.1 GB) and 256 on an accelerator.

    ``x_T`` (n, C, S, S) fixes the starting noise (default: drawn from a generator seeded with ``seed``)."""
    check_int("n", n)
    check_int("batch_size", batch_size, allow_none=True)
    check_sampling_steps("sampling_steps", sampling_steps, schedule.T)
    device = torch.device(device)
    batch_size = batch_size or (64 if device.type == "cpu" else 256)
    gen = torch.Generator(device=device).manual_seed(check_seed("seed", seed))
    if x_T is None:
        x_T = torch.randn((n, *sample_shape), generator=torch.Generator().manual_seed(seed))
    out = []
    for i in range(0, n, batch_size):
        start = x_T[i:i + batch_size].to(device)
        if sampling_steps is None:
            x = ancestral_sample(net, schedule, tuple(start.shape), x_T=start, generator=gen, device=device)
        else:
            x = ddim_sample(net, schedule, tuple(start.shape), sampling_steps, x_T=start, generator=gen,
                            device=device)
        out.append(x.cpu())
    return torch.cat(out)


class DDPMTrainer:
    """Trains a DDPM described by a ``TrainConfig`` with ``model="ddpm"``.

    Args:
        config: the run's configuration. dataset: an image ``course_lib.data.Dataset`` (default: ``config.data``).
        out_dir: folder for ``checkpoint.pt`` (every ``checkpoint_every`` steps, at the end, on interruption).
        callbacks: functions ``f(trainer)`` called every ``config.callback_every`` steps and at the end.
        net: a noise predictor to use instead of ``UNet(channels, config.g_width)``. verbose: progress and messages.

    Attributes: ``net`` (trained), ``net_ema`` (its EMA, or None), ``schedule``, ``history`` (``loss`` per step),
    ``step``, ``fixed_noise`` ((64, C, S, S): the x_T of progress images). As ``GANTrainer``'s, for the command
    line: ``rank`` (0), ``world_size`` (1), ``local_batch``, ``skipped_steps`` (0), ``close()``.
    """

    rank, world_size, skipped_steps = 0, 1, 0   # one process; a NaN loss stops the run (no skipped steps)

    def __init__(self, config: TrainConfig, dataset: data_mod.Dataset | None = None,
                 out_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[Callable[["DDPMTrainer"], None]] = (), net: torch.nn.Module | None = None,
                 verbose: bool = True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if family_of(config) != "ddpm":
            raise ValueError(f"DDPMTrainer trains diffusion models (model='ddpm'), got model={config.model!r}; "
                             "train a GAN with course_lib.train.GANTrainer")
        cfg = self.config = config
        self.verbose, self.callbacks = verbose, list(callbacks)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = get_device(cfg.device)
        seed_everything(cfg.seed)
        if dataset is None:
            dataset = data_mod.load(cfg.data, image_size=cfg.image_size, fallback=cfg.fallback, split=cfg.split)
        if getattr(dataset, "kind", None) != "images":
            raise ValueError(f"a DDPM is trained on images; the data {getattr(dataset, 'name', dataset)!r} holds "
                             "points (train a GAN on it: model='mlp')")
        self.shard_size, _ = check_dataset(dataset, False, cfg.batch_size, 1)
        self.dataset = dataset.to(self.device)
        self.sample_shape = tuple(dataset.sample_shape)
        self.schedule = make_schedule(cfg.noise_schedule, cfg.diffusion_steps)
        self.net = (net if net is not None else UNet(self.sample_shape[0], cfg.g_width)).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.net_ema = None if cfg.ema_decay is None else copy.deepcopy(self.net).eval().requires_grad_(False)
        self.rng = torch.Generator(device=self.device).manual_seed(stream_seed("noise", cfg.seed))
        fixed = torch.Generator().manual_seed(stream_seed("fixed", cfg.seed))
        self.fixed_noise = torch.randn((64, *self.sample_shape), generator=fixed)
        self.step = 0
        self.batches_drawn = 0
        self._history: dict[str, list[float]] = {"loss": []}
        self._pending: list[torch.Tensor] = []       # losses of steps not read yet (device tensors)
        self.interrupted = False
        self.last_checkpoint: Path | None = None
        self._perm_cache: tuple[int, torch.Tensor] | None = None
        if verbose:
            print(f"[course_lib] {cfg.data} ({len(dataset)} samples) | ddpm: U-Net width {cfg.g_width}, "
                  f"{count_parameters(self.net):,} parameters | T {self.schedule.T} ({cfg.noise_schedule} "
                  f"schedule) | batch {cfg.batch_size} | lr {cfg.lr_g:g} | device {self.device}")

    @property
    def local_batch(self) -> int:
        """The batch of this (the one) process: ``config.batch_size``."""
        return self.config.batch_size

    def close(self) -> None:
        """Nothing to end (one process); as ``GANTrainer.close`` for the command line."""

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimiser step on the next real batch (``diffusion_step``), then the EMA; no host sync. Returns
        the detached ``loss`` (0-dim, on the device)."""
        cfg = self.config
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr_g * cfg.lr_factor(self.step)
        x0 = self._real_batch()
        out = diffusion_step(self.net, self.opt, self.schedule, x0, self.rng)
        if self.net_ema is not None:
            ema_update(self.net_ema, self.net, ema_decay(cfg.ema_decay, self.step))
        self.step += 1
        self._pending.append(out["loss"])
        if self.step % cfg.log_every == 0:
            self._read()
        return out

    def _read(self) -> None:
        """Move the pending losses into ``history`` (one host sync); stop on a NaN / inf loss."""
        if not self._pending:
            return
        values = torch.stack(self._pending).tolist()
        first = self.step - len(values) + 1
        self._pending = []
        self._history["loss"].extend(values)
        bad = next((i for i, v in enumerate(values) if not torch.isfinite(torch.tensor(v))), None)
        if bad is not None:
            kept = kept_checkpoint_text(self.last_checkpoint, self.out_dir)
            raise NonFiniteLossError(f"training stopped at step {first + bad}: the DDPM loss is {values[bad]} (not "
                                     f"finite); {kept}. Likely cause: a learning rate too high (lr_g="
                                     f"{self.config.lr_g}; try 10x lower)")

    @property
    def history(self) -> dict[str, list[float]]:
        """The loss of every step so far (``{"loss": [...]}``); using it reads the pending steps first."""
        self._read()
        return self._history

    def _real_batch(self) -> torch.Tensor:
        """The next real batch, (B, C, S, S) in [-1, 1]: epoch e uses the fixed permutation of seed and e."""
        per_epoch = batches_per_epoch(len(self.dataset), self.config.batch_size)
        epoch, k = divmod(self.batches_drawn, per_epoch)
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, epoch_permutation(len(self.dataset), self.config.seed, epoch, 0, 1,
                                                         self.shard_size, self.device))
        self.batches_drawn += 1
        b = self.config.batch_size
        return self.dataset.get(self._perm_cache[1][k * b:(k + 1) * b])[0]

    # ------------------------------------------------------------------ the loop
    def fit(self, steps: int | None = None, progress: bool | None = None) -> dict[str, list[float]]:
        """Train until ``config.steps`` steps are done (or ``steps`` more); return ``history``. Ctrl-C or SIGTERM
        stops after the current step and writes a checkpoint (with ``out_dir``); ``fit()`` again continues."""
        check_int("steps", steps, minimum=0, allow_none=True)
        target = self.config.steps if steps is None else self.step + steps
        bar = progress_bar(target, self.step, f"{self.config.data} DDPM",
                           show=self.verbose if progress is None else progress)
        self.net.train()
        run_steps(self, target, bar, lambda: ({"loss": f"{self._history['loss'][-1]:.4f}"}
                                              if self._history["loss"] and not self._pending else None))
        return self.history

    def _save_checked(self) -> None:
        """Save ``out_dir/checkpoint.pt``, but never replace a good checkpoint with non-finite weights."""
        self._read()
        for name, model in (("U-Net", self.net), ("EMA U-Net", self.net_ema)):
            if model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                kept = kept_checkpoint_text(self.last_checkpoint, self.out_dir)
                raise NonFiniteLossError(f"training stopped at step {self.step}: the {name}'s weights are not "
                                         f"finite (NaN or inf), so they were not saved; {kept}")
        self.save(self.out_dir / "checkpoint.pt")

    def sample(self, n: int, sampling_steps: int | None = None, use_ema: bool = True,
               x_T: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
        """``n`` images, (n, C, S, S) float32 on the CPU in [-1, 1], from the EMA network if any (and ``use_ema``):
        ancestral sampling over all T steps (``sampling_steps`` None) or DDIM with ``sampling_steps`` steps (in
        [1, T]). The noise has a stream of its own (training is unchanged); ``x_T`` fixes it."""
        net = self.net_ema if (use_ema and self.net_ema is not None) else self.net
        return sample_images(net, self.schedule, n, self.sample_shape, sampling_steps, self.device,
                             seed=stream_seed("sample", self.config.seed, step=self.step), x_T=x_T,
                             batch_size=batch_size)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds, in the GAN's format: the U-Net is ``G`` (``G_ema``), ``D`` is empty."""
        self._read()
        return {"config": self.config.to_dict(), "step": self.step, "batches_drawn": self.batches_drawn,
                "skipped_steps": 0, "G": self.net.state_dict(), "D": {},
                "G_ema": None if self.net_ema is None else self.net_ema.state_dict(), "opt_G": self.opt.state_dict(),
                "rng": {"trainer": self.rng.get_state(), "torch": torch.get_rng_state()},
                "history": {k: list(v) for k, v in self._history.items()}, "fixed_noise": self.fixed_noise,
                "data_info": {"name": self.dataset.name, "sample_shape": list(self.sample_shape),
                              "num_classes": None, "note": self.dataset.note}, "world_size": 1}

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically (``checkpoint.save_checkpoint``); return its path."""
        self.last_checkpoint = save_checkpoint(self.state_dict(), path)
        return self.last_checkpoint

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore everything from ``state`` (as read by ``load_checkpoint``); the model and data must match."""
        check_family(state, "ddpm", source, "resuming a DDPM")
        check_compatible(self.config, state, source)
        check_same_data(state.get("data_info") or {}, self.dataset, source)
        try:
            self.net.load_state_dict(state["G"])
            if self.net_ema is not None:
                self.net_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
            load_optimizer(self.opt, state["opt_G"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{source} does not fit the U-Net of this config: {first_lines(exc)}") from None
        self.step = int(state["step"])
        self.batches_drawn = int(state.get("batches_drawn", 0))
        self._history = {"loss": list(state.get("history", {}).get("loss", []))}
        self._pending = []
        restore_rng(self.rng, state, 0, 1, self.config.seed)
        self._perm_cache = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                        dataset: data_mod.Dataset | None = None, callbacks: Sequence[Callable] = (),
                        verbose: bool = True, **changes: Any) -> "DDPMTrainer":
        """Resume a DDPM run: the checkpoint's config with ``changes`` (the GAN's resume rule,
        ``config.resume_config``; ``steps`` is the new total), then its state. A GAN checkpoint is refused as such."""
        source = f"checkpoint {str(path)!r}"
        state = load_checkpoint(path)
        check_family(state, "ddpm", source, "resuming a DDPM")
        check_finite_weights(state, "resuming", keys=("G", "G_ema"), source=source)
        config = resume_config(state["config"], state["step"], changes, source=f"checkpoint {path}")
        trainer = cls(config, dataset=dataset, out_dir=out_dir, callbacks=callbacks, verbose=verbose)
        trainer.load_state_dict(state, source=source)
        return trainer


def load_denoiser(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True,
                  for_what: str = "sampling") -> tuple[UNet, NoiseSchedule, TrainConfig, dict[str, Any]]:
    """The noise predictor of a DDPM checkpoint (its EMA when present and ``use_ema``), for sampling.

    Returns ``(net, schedule, config, data_info)``; ``net`` is in eval mode on ``device``. A GAN checkpoint, or
    one with NaN / inf weights, is refused (``for_what`` names the use in the message)."""
    source = f"checkpoint {str(path)!r}"
    state, config, info, shape = load_for_sampling(path, "ddpm", for_what, use_ema)
    if len(shape) != 3:
        raise CheckpointError(f"{source} does not record the images' shape (channels, height, width)")
    net = UNet(shape[0], config.g_width)
    try:
        net.load_state_dict(state["G_ema"] if (use_ema and state.get("G_ema") is not None) else state["G"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the U-Net's weights do not fit its config: {first_lines(exc)}") from None
    return net.to(get_device(device)).eval(), make_schedule(config.noise_schedule, config.diffusion_steps), config, \
        info
