"""The loop around a trainer's step, the same for a GAN (``train.GANTrainer``) and a DDPM
(``diffusion_train.DDPMTrainer``): step until the target, checkpoint every ``checkpoint_every`` steps, call the
callbacks every ``callback_every``, read the statistics from the device only then (and at the end or on a stop),
and stop cleanly after the current step on Ctrl-C / SIGTERM with a checkpoint and a message saying how to go on.

The step itself (``trainer.train_step()``) stays in the trainer's own module, where a student reads it.
"""
from __future__ import annotations

from typing import Any, Callable

from .stopping import StopSignals, interrupted_message

__all__ = ["run_steps"]


def run_steps(trainer: Any, target: int, bar: Any, postfix: Callable[[], dict[str, str] | None]) -> None:
    """Train ``trainer`` until ``trainer.step == target`` (or a stop signal), updating ``bar`` (a tqdm bar).

    ``trainer`` provides ``step``, ``train_step()``, ``config`` (``checkpoint_every``, ``callback_every``),
    ``out_dir``, ``callbacks``, ``_read()`` (statistics to the host), ``_save_checked()``, ``interrupted``,
    ``verbose``, ``last_checkpoint`` and, under torchrun, ``rank``. ``postfix()`` returns the bar's statistics
    after a step, or None to leave them as they are. Sets ``trainer.interrupted``; saves at the end of the target
    or on a stop when ``out_dir`` is set.
    """
    trainer.interrupted = False
    with StopSignals() as stop:
        try:
            while trainer.step < target:
                trainer.train_step()
                bar.update(1)
                step = trainer.step
                save = trainer.out_dir is not None and step % trainer.config.checkpoint_every == 0
                call = trainer.callbacks and (step % trainer.config.callback_every == 0 or step == target)
                if save or call or stop.requested or step == target:
                    trainer._read()  # the same steps on every process
                shown = postfix()
                if shown is not None:
                    bar.set_postfix(shown, refresh=False)
                if save:
                    trainer._save_checked()
                for cb in trainer.callbacks if call else ():
                    cb(trainer)
                if stop.requested:
                    trainer.interrupted = True
                    break
        finally:
            bar.close()
    if trainer.out_dir is not None and (trainer.interrupted or trainer.step == target):
        trainer._save_checked()
    if trainer.interrupted and trainer.verbose and getattr(trainer, "rank", 0) == 0:
        print(interrupted_message(trainer.step, trainer.last_checkpoint if trainer.out_dir is not None else None))
