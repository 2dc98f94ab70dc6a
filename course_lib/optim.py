"""The tensors of an optimiser: which ones a step changes (``optimizer_tensors``, for the NaN guard's masked
update), and loading a saved state into this run's Adam, fused or not (``load_optimizer``, for resuming)."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["optimizer_tensors", "load_optimizer"]


def optimizer_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor] | None:
    """The tensors ``opt.step()`` may change: each parameter with a gradient and its state tensors (Adam:
    ``step``, ``exp_avg``, ``exp_avg_sq``). None while a parameter with a gradient has no state yet (before
    the optimiser's first step, which creates it)."""
    tensors: list[torch.Tensor] = []
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = opt.state.get(p)
            if not state:
                return None
            tensors.append(p)
            tensors.extend(v for v in state.values() if torch.is_tensor(v))
    return tensors


def load_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)``, keeping ``opt``'s own ``fused`` setting (a checkpoint of a CUDA run, with
    fused Adam, resumes on a CPU and the other way round; Adam then puts its step counts where they belong)."""
    fused = opt.param_groups[0].get("fused")
    opt.load_state_dict({**state, "param_groups": [{**g, "fused": fused} for g in state["param_groups"]]})
