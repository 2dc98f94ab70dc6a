"""The environment report: versions, device, budget, and dataset availability without any download."""
import io

import numpy as np
import pytest
import torch

from course_lib import data, data_files, env_check


def test_package_versions_reports_installed_and_missing():
    v = env_check.package_versions({"torch": "torch", "numpy": "numpy", "no_such_module_xyz": "no-such"})
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert v["no-such"] is None


def test_dataset_status_offline_without_files(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(data_files, "SYSTEM_DIRS", {})  # no Debian package either
    s = env_check.dataset_status(tmp_path)
    assert s["ring8"] == s["grid25"] == s["mixture1d"] == s["digits"] == "available"
    assert s["mnist"].startswith("unavailable") and "COURSE_OFFLINE" in s["mnist"] and str(tmp_path) in s["mnist"]
    assert "fallback=True" in s["mnist"] and data.FASHION_APT_PACKAGE in s["fashion-mnist"]
    assert data.FASHION_APT_PACKAGE not in s["mnist"]
    assert list(tmp_path.iterdir()) == [], "checking must not create or download anything"


def test_dataset_status_online_says_downloadable(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(data_files, "SYSTEM_DIRS", {})
    s = env_check.dataset_status(tmp_path)
    assert s["fashion-mnist"].startswith("downloadable")
    assert list(tmp_path.iterdir()) == []


def test_dataset_status_finds_existing_mnist_files(tmp_path, monkeypatch):
    """Tiny valid idx files in torchvision's layout count as 'available' even offline."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(data_files, "SYSTEM_DIRS", {})
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n = 3

    def idx(dtype_code, dims, payload):
        header = bytes([0, 0, dtype_code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
        return header + payload

    for prefix, count in (("train", n), ("t10k", n)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx(0x08, (count, 28, 28), bytes(count * 28 * 28)))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(0x08, (count,), bytes(range(count))))
    s = env_check.dataset_status(tmp_path)
    assert s["mnist"] == "available", s["mnist"]
    assert s["fashion-mnist"].startswith("unavailable")


def test_dataset_status_agrees_with_where_data_load_looks(tmp_path, monkeypatch):
    """The Debian package's folder counts: the report says 'available' exactly when data.load would read files."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    package = tmp_path / "usr-share-datasets-fashion-mnist"
    package.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (package / f"{stem}.gz").write_bytes(b"")  # presence is what is reported; load checks the contents
    monkeypatch.setattr(data_files, "SYSTEM_DIRS", {"fashion-mnist": (package,)})
    s = env_check.dataset_status(tmp_path / "empty")
    assert s["fashion-mnist"] == "available" and s["mnist"].startswith("unavailable")
    assert data.idx_files("fashion-mnist", "train", tmp_path / "empty")[0].parent == package


def test_report_prints_and_returns(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.delenv("COURSE_BUDGET", raising=False)
    buf = io.StringIO()
    env = env_check.report(tmp_path, file=buf)
    text = buf.getvalue()
    assert env["budget"] == "quick" and env["device"] in ("cpu", "cuda", "mps")
    assert f"torch         {torch.__version__}" in text
    assert "budget mode   quick" in text and "digits" in text and "mnist" in text
    assert text.rstrip().splitlines()[-1].startswith("Ready")


def test_report_flags_missing_required_package(monkeypatch):
    env = env_check.environment()
    env["packages"] = dict(env["packages"], torch=None)
    text = env_check.format_report(env)
    assert "torch         NOT INSTALLED" in text
    assert "PROBLEM" in text and "pip install" in text


def test_quick_mode_reads_the_one_env_flag(monkeypatch):
    from course_lib import budget

    monkeypatch.delenv("COURSE_BUDGET", raising=False)
    for word, quick in (("1", True), ("on", True), (" Yes ", True), ("0", False), ("off", False), ("", False)):
        monkeypatch.setenv("COURSE_QUICK", word)
        assert budget.is_quick() is quick, word
        assert (budget.mode() == "quick") is quick
    assert budget.pick(quick=1, cpu=2, gpu=3) in (2, 3)
    monkeypatch.setenv("COURSE_QUICK", "quick")
    with pytest.raises(ValueError, match=r"COURSE_QUICK='quick' is not a switch; use 1/true/yes/on"):
        budget.is_quick()
