"""Standard FID / KID (course_lib.fid): the error paths and the plumbing into torch-fidelity, never a download."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from course_lib import fid


def test_without_the_variable_one_line_says_how(monkeypatch):
    monkeypatch.delenv(fid.WEIGHTS_ENV, raising=False)
    out = fid.standard_metrics(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))
    assert list(out) == ["standard_fid"] and "\n" not in out["standard_fid"]
    assert "COURSE_FID_WEIGHTS" in out["standard_fid"] and ".[fid]" in out["standard_fid"]


def test_a_missing_weights_file_is_refused_without_download(monkeypatch, tmp_path):
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # nothing may even try to use it
    with pytest.raises(fid.StandardFIDUnavailable, match="not a file.*nothing is downloaded"):
        fid.standard_metrics(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))


def test_missing_torch_fidelity_names_the_extra(monkeypatch, tmp_path):
    weights = tmp_path / "pt_inception-2015-12-05.pth"
    weights.write_bytes(b"weights")
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(weights))
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    with pytest.raises(fid.StandardFIDUnavailable, match=r'pip install -e "\.\[fid\]"'):
        fid.standard_metrics(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))


def test_plumbing_into_torch_fidelity(monkeypatch, tmp_path):
    weights = tmp_path / "pt_inception-2015-12-05.pth"
    weights.write_bytes(b"weights")
    seen = {}

    def calculate_metrics(**kwargs):
        seen.update(kwargs)
        return {"frechet_inception_distance": 12.5, "kernel_inception_distance_mean": 0.01,
                "kernel_inception_distance_std": 0.002}

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.SimpleNamespace(calculate_metrics=calculate_metrics))
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(weights))
    fake = torch.linspace(-1, 1, 6 * 64).reshape(6, 1, 8, 8)
    out = fid.standard_metrics(fake, torch.zeros(9, 1, 8, 8))
    assert out == {"standard_fid": 12.5, "standard_kid": 0.01, "standard_kid_sd": 0.002,
                   "standard_weights": str(weights)}
    assert seen["feature_extractor_weights_path"] == str(weights) and seen["fid"] and seen["kid"]
    assert seen["kid_subset_size"] == 6  # not more than the smaller set
    imgs = torch.stack([seen["input1"][i] for i in range(len(seen["input1"]))])
    assert imgs.shape == (6, 3, 8, 8) and imgs.dtype == torch.uint8 and imgs.min() == 0 and imgs.max() == 255
    assert torch.equal(imgs[:, 0], imgs[:, 2])  # grey repeated over RGB
    assert len(seen["input2"]) == 9


def test_evaluate_images_reports_the_line(monkeypatch):
    from course_lib import metrics

    monkeypatch.delenv(fid.WEIGHTS_ENV, raising=False)
    ref = metrics.real_reference("digits", 16)
    r = metrics.evaluate_images(ref["pool_x"][:240], "digits", 16, kid_subsets=5, floor_resamples=2)
    assert r["standard_fid"] == fid.NOT_SET
