"""Device names and seeds: every wrong name, from --device or COURSE_DEVICE, is one clear line that
names where it came from; seeds are bounded to [0, 2**63 - 1]."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from course_lib.device import DeviceError, get_device, seed_everything
from course_lib.utils import SEED_MAX

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")


@pytest.fixture(autouse=True)
def _no_course_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)


@pytest.mark.parametrize("name, error, pattern", [
    ("cpu:abc", ValueError, r"^device 'cpu:abc' has an invalid index 'abc': after ':' comes a device number"),
    ("cuda:x1", ValueError, r"device 'cuda:x1' has an invalid index 'x1'.*e\.g\. 'cuda:0'"),
    ("cuda:-1", ValueError, r"invalid index '-1'"),
    ("cuda:", ValueError, r"invalid index ''"),
    ("tpu", ValueError, r"^unknown device 'tpu'; valid choices are auto, cpu, cuda, mps"),
    ("auto:1", ValueError, r"'auto' takes no index"),
    ("cpu:1", ValueError, r"there is one CPU device; use 'cpu'"),
])
def test_a_bad_device_name_is_one_clear_line(name, error, pattern):
    with pytest.raises(error, match=pattern) as exc:
        get_device(name)
    assert "\n" not in str(exc.value) and "RuntimeError" not in str(exc.value)


@pytest.mark.parametrize("value", [1, 0, 1.5, ["cpu"], True])
def test_a_device_that_is_not_a_string_is_a_type_error(value):
    with pytest.raises(TypeError, match=rf"device must be a name such as 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps' "
                                        rf"\(or a torch\.device\), got .* \({type(value).__name__}\)"):
        get_device(value)


@pytest.mark.parametrize("value, pattern", [
    ("tpu", r"^COURSE_DEVICE='tpu': unknown device 'tpu'"),
    ("cpu:xyz", r"^COURSE_DEVICE='cpu:xyz': device 'cpu:xyz' has an invalid index 'xyz'"),
    ("  TPU ", r"^COURSE_DEVICE='  TPU ': unknown device 'tpu'"),
])
def test_a_bad_course_device_names_the_variable_and_its_value(monkeypatch, value, pattern):
    monkeypatch.setenv("COURSE_DEVICE", value)
    with pytest.raises(ValueError, match=pattern) as exc:
        get_device()
    assert "'auto'" not in str(exc.value).split(";")[0]  # names the value, not the 'auto' it replaced
    with pytest.raises(ValueError, match=r"^COURSE_DEVICE="):
        get_device("auto")
    assert get_device("cpu") == torch.device("cpu")  # an explicit --device wins over the variable


@no_cuda
def test_an_absent_cuda_from_course_device_says_how_to_fix_it(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(DeviceError, match=r"^COURSE_DEVICE='cuda': device 'cuda' was requested but CUDA is not "
                                          r"available.*unset COURSE_DEVICE"):
        get_device()
    with pytest.raises(DeviceError, match=r"^device 'cuda:1' was requested but CUDA is not available"):
        get_device("cuda:1")


def test_good_names_and_devices(monkeypatch):
    assert get_device("cpu") == get_device(" CPU ") == get_device(torch.device("cpu")) == torch.device("cpu")
    assert get_device("cpu:0") == torch.device("cpu:0")
    assert get_device(None) == get_device("auto") == get_device("")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "")
    assert get_device() == get_device("auto")


@pytest.mark.parametrize("seed", [2**63, 2**64, 9300000000000000000, -1, True, 1.0, "3", None])
def test_seeds_outside_the_64_bit_range_or_not_integers_are_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\] \(a 64-bit seed\)"):
        seed_everything(seed)


def test_the_largest_seed_works_and_seeding_repeats():
    g = seed_everything(SEED_MAX)
    assert g.initial_seed() == SEED_MAX
    seed_everything(np.int64(7))
    first = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(7)
    assert (random.random(), np.random.rand()) == first[:2] and torch.equal(torch.rand(3), first[2])
    seed_everything(9300000000000000)  # the CLI seed: inside the range, accepted
