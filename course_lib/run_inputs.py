"""What a trainer is given, checked when it starts: the config (again: it may have been changed after it was
built), the dataset against the config (name, kind, image size), and the data itself (labels in range, values
finite and in the range the models expect). Each refusal names the mismatch and the fix.

    >>> check_run_inputs(config, dataset)     # GANTrainer.__init__ calls it before building anything
    >>> resume_dataset(config, data_info)     # the data a resumed run needs, when config.data would load other data

A run given a custom dataset (a name that is none of ``data.DATASETS``) is accepted for the config of any
dataset of the same kind; its checkpoint records the data's name and sample shape (``data_info``), so that a
resume asks for that data by name (``GANTrainer.from_checkpoint(path, dataset=...)``).
"""
from __future__ import annotations

from typing import Any

from . import data as data_mod
from .checkpoint import CheckpointError
from .config import TrainConfig

__all__ = ["check_run_inputs", "check_data_matches_config", "resume_dataset", "check_history_in_step"]


def check_data_matches_config(config: TrainConfig, dataset: data_mod.Dataset) -> None:
    """Refuse a dataset that is not the data ``config`` describes.

    Checks: a course dataset's name equals ``config.data`` (or is ``digits`` where the config falls back from
    MNIST / Fashion-MNIST); points go with the ``mlp`` model and images with ``dcgan``; images are square and of
    ``config.image_size`` when the config sets one.

    Raises:
        ValueError: naming the mismatch and the two ways to fix it.
    """
    name = dataset.name
    fell_back = config.fallback and config.data in data_mod.IDX_DATASETS and name == "digits"
    if name in data_mod.DATASETS and name != config.data and not fell_back:
        raise ValueError(f"the dataset is {name!r} but the config is for {config.data!r} (config.data); build the "
                         f"config for this data, TrainConfig.for_data({name!r}, ...), or pass the {config.data!r} "
                         f"data (data.load({config.data!r}))")
    want = "points" if config.model == "mlp" else "images"
    if dataset.kind != want:
        other = "dcgan" if dataset.kind == "images" else "mlp"
        raise ValueError(f"config.model={config.model!r} trains on {want}, but the dataset {name!r} holds "
                         f"{dataset.kind} of shape {dataset.sample_shape}; use model={other!r} (or "
                         f"TrainConfig.for_data for the data)")
    if dataset.kind == "images":
        _, h, w = dataset.sample_shape
        if h != w:
            raise ValueError(f"the dataset {name!r} holds {h}x{w} images; the DCGAN models need square images: "
                             "resize them")
        if config.image_size is not None and h != config.image_size:
            raise ValueError(f"the dataset {name!r} holds {h}x{w} images but config.image_size={config.image_size}; "
                             f"load the data at the config's size (data.load({name!r}, "
                             f"image_size={config.image_size})) or set image_size={h} in the config")


def check_run_inputs(config: Any, dataset: Any) -> None:
    """Check what a trainer is given, when it starts (``GANTrainer.__init__``).

    ``config.validate()`` runs again (a field set after construction, ``cfg.batch_size = 0``, is refused by
    its row of the table, not by the NaN guard later); the dataset must match the config
    (``check_data_matches_config``) and pass ``Dataset.check`` with its values (labels in ``[0, num_classes)``,
    one per sample, ``x`` float32 or uint8, finite, float images in [-1, 1]).

    Raises:
        TypeError, ValueError: naming the field or the mismatch and the fix.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    if not isinstance(dataset, data_mod.Dataset):
        raise TypeError(f"dataset must be a course_lib.data.Dataset, got {type(dataset).__name__}")
    check_data_matches_config(config, dataset)
    dataset.check(values=True)


def resume_dataset(config: TrainConfig, info: dict[str, Any] | None) -> data_mod.Dataset | None:
    """The data a resumed run must load when ``config.data`` would now give other data, else None (load as usual).

    A run that fell back to ``digits`` (MNIST / Fashion-MNIST missing, ``fallback=True``) resumes on ``digits``
    at the recorded size, even after the original data has appeared: a run never changes data midway.
    """
    info = info or {}
    if info.get("name") == "digits" and config.data in data_mod.IDX_DATASETS and config.fallback:
        shape = tuple(info.get("sample_shape") or ())
        return data_mod.load("digits", image_size=shape[-1] if shape else config.image_size, split=config.split)
    return None


def check_history_in_step(state: dict[str, Any], source: str = "checkpoint") -> None:
    """Refuse a checkpoint whose ``history`` (one value per step of each statistic) does not have ``step``
    values: a resumed run would append to it out of step. An empty list (not recorded) is accepted.

    Raises:
        CheckpointError: naming the statistic, its length, the step and the fix.
    """
    step = state.get("step")
    for key, values in (state.get("history") or {}).items():
        if values and len(values) != step:
            raise CheckpointError(f"{source}: its history holds {len(values)} values of {key} but the run is at step "
                                  f"{step} (one value a step); the file was edited or written by other code, so a "
                                  "resumed run would record out of step. Use an earlier checkpoint or train again")
