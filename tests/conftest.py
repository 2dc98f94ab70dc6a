"""Fixtures shared by the unit tests: one torch thread, the small datasets and training configs, saved runs and
their damaged copies, and an exact comparison of trainer states."""
from __future__ import annotations

import math
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from course_lib.train import TrainConfig

# course_lib is imported inside the functions below, so that collecting the notebooks (nbval) and the tests
# that never train does not import the training code.


@pytest.fixture
def one_thread():
    """Tiny models run fastest (and identically) on one torch thread; the setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_sampling(monkeypatch):
    """Make any call of ``sampling.generate`` (under whatever name a ``course_lib`` module imported it) fail the
    test: for checks that must refuse before any sample is generated."""
    import sys

    from course_lib import sampling

    def never(*args, **kwargs):
        pytest.fail("samples were generated before the refusal")

    for name, module in list(sys.modules.items()):
        if name.startswith("course_lib") and getattr(module, "generate", None) is sampling.generate:
            monkeypatch.setattr(module, "generate", never)


# ----------------------------------------------------------------------------- small data and configs
def make_ring_config(**changes) -> TrainConfig:
    """ring8 with 32-wide MLPs: 24 steps of 64 points, a checkpoint every 8 steps, callbacks every step."""
    from course_lib.train import TrainConfig

    base = dict(steps=24, batch_size=64, g_width=32, d_width=32, checkpoint_every=8, callback_every=1)
    return TrainConfig.for_data("ring8", **{**base, **changes})


def make_digits_config(**changes) -> TrainConfig:
    """Unconditional 16x16 digits with 8-wide DCGANs and EMA: 10 steps of 32 images, a checkpoint every 4."""
    from course_lib.train import TrainConfig

    base = dict(steps=10, batch_size=32, g_width=8, d_width=8, latent_dim=16, image_size=16, ema_decay=0.9,
                checkpoint_every=4, callback_every=1, conditional=False)
    return TrainConfig.for_data("digits", **{**base, **changes})


def make_small_config(data_name: str = "ring8", **changes) -> TrainConfig:
    """The recipe of ``data_name`` shrunk for tests: 30 CPU steps, a checkpoint every 10; digits at 8x8."""
    from course_lib.train import TrainConfig

    base = dict(steps=30, batch_size=64, checkpoint_every=10, device="cpu")
    if data_name == "digits":
        base.update(image_size=8, g_width=8, d_width=8, latent_dim=16, batch_size=32, conditional=False)
    return TrainConfig.for_data(data_name, **{**base, **changes})


@pytest.fixture(scope="session")
def ring_config():
    """The factory :func:`make_ring_config` (call it with changes: ``ring_config(steps=2)``)."""
    return make_ring_config


@pytest.fixture(scope="session")
def digits_config():
    """The factory :func:`make_digits_config`."""
    return make_digits_config


@pytest.fixture(scope="session")
def small_config():
    """The factory :func:`make_small_config`."""
    return make_small_config


@pytest.fixture(scope="module")
def ring():
    """2,000 points of ring8."""
    from course_lib import data

    return data.load("ring8", n=2000)


@pytest.fixture(scope="module")
def digits16():
    """The offline digits at 16x16."""
    from course_lib import data

    return data.load("digits", image_size=16)


# ----------------------------------------------------------------------------- exact comparison
def assert_identical(a, b, where: str = "state") -> None:
    """Recursive exact equality of nested dicts / lists / tensors (torch.equal on every tensor)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            assert_identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (u, v) in enumerate(zip(a, b)):
            assert_identical(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def identical():
    """The function :func:`assert_identical`."""
    return assert_identical


# ----------------------------------------------------------------------------- untrusted and damaged files
class RunsCode:
    """Pickles to a call of os.system: loading a file that holds it with plain pickle would run the command."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="session")
def runs_code():
    """The class :class:`RunsCode`: ``runs_code(path)`` pickles to ``os.system("touch path")``."""
    return RunsCode


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory, ring):
    """Small real checkpoints (ring8 MLP; conditional 8x8 digits DCGAN with EMA) and damaged copies of them.

    Attributes: ``root`` (the folder), ``ring`` (the data), ``ring_config`` (the factory the ring8 run was made
    with), ``ring_ckpt``, ``cond_ckpt``, ``state`` (the ring8 checkpoint, loaded), ``newer`` (a newer format
    version), ``truncated``, ``empty`` and ``foreign`` (a plain state_dict).
    """
    from course_lib import checkpoint as ckpt_mod
    from course_lib.train import GANTrainer

    root = tmp_path_factory.mktemp("saved_runs")
    ring_run = GANTrainer(make_ring_config(steps=2), dataset=ring, out_dir=root / "ring", verbose=False)
    ring_run.fit()
    GANTrainer(make_digits_config(steps=2, conditional=True, image_size=8), out_dir=root / "cond",
               verbose=False).fit()
    ring_ckpt = root / "ring" / "checkpoint.pt"
    state = ckpt_mod.load_checkpoint(ring_ckpt)
    files = SimpleNamespace(root=root, ring=ring, ring_config=make_ring_config, ring_ckpt=ring_ckpt,
                            cond_ckpt=root / "cond" / "checkpoint.pt", state=state, newer=root / "newer.pt",
                            truncated=root / "truncated.pt", empty=root / "empty.pt", foreign=root / "foreign.pt")
    torch.save({**state, "version": ckpt_mod.FORMAT_VERSION + 1}, files.newer)
    files.truncated.write_bytes(ring_ckpt.read_bytes()[: ring_ckpt.stat().st_size // 2])
    files.empty.write_bytes(b"")
    torch.save(ring_run.G.state_dict(), files.foreign)  # a plain state_dict: not a course checkpoint
    return files
