"""The exponential moving average (EMA) of the generator's weights, the copy that samples are drawn from.

After each generator update, ``ema_update(G_ema, G, ema_decay(beta, step))``:
theta_ema <- d * theta_ema + (1 - d) * theta_G, with ``d`` warming up from 1/10 to ``beta`` (an average over about
the last 1 / (1 - beta) steps once warm).
"""
from __future__ import annotations

import torch

__all__ = ["ema_update", "ema_decay"]


def ema_decay(beta: float, step: int) -> float:
    """The decay of the update after generator step ``step`` (0-based): min(beta, (1 + step) / (10 + step)), so the
    average's horizon grows from the first steps instead of remembering the random initial weights."""
    return min(beta, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema``'s weights <- ``decay`` * themselves + (1 - ``decay``) * ``model``'s; its buffers (batch-norm
    statistics) copied from ``model``. In place, without a host synchronisation."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
