"""Offline data: without a network (COURSE_OFFLINE=1, a hanging name lookup, a refused connection, a download
that breaks off) MNIST and Fashion-MNIST fail within seconds with advice, or fall back to the offline digits when
asked. The system's Fashion-MNIST package folder is hidden, so that the data really is absent."""
from __future__ import annotations

import threading
import time

import pytest

from course_lib import data, data_files
from course_lib.data import DatasetUnavailableError


@pytest.fixture(autouse=True)
def no_system_copies(monkeypatch):
    """Hide the folders of system packages (the Debian Fashion-MNIST): the tests need the data to be absent."""
    for name in data.SYSTEM_DIRS:
        monkeypatch.setitem(data.SYSTEM_DIRS, name, ())


@pytest.fixture
def online_mode(monkeypatch):
    """Downloads allowed (no COURSE_OFFLINE) and no proxy: the test's fake socket is the whole network."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _forbid_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was contacted")
    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setattr("socket.getaddrinfo", no_network)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_offline_mnist_fails_fast_with_advice_or_falls_back_to_digits(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    _forbid_network(monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as exc:
        data.load(name, root=tmp_path)
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    for advice in ("COURSE_OFFLINE=1", "COURSE_DATA_DIR", "'digits'", "fallback=True"):
        assert advice in msg
    with pytest.warns(UserWarning, match=rf"{name} is unavailable .* falling back to the offline 'digits'"):
        ds = data.load(name, root=tmp_path, fallback=True, image_size=16)
    assert ds.name == "digits" and ds.sample_shape == (1, 16, 16) and "falling back" in ds.note
    assert "falling back" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing was written


def test_without_network_a_hanging_lookup_gives_up_within_seconds(tmp_path, monkeypatch, online_mode):
    release = threading.Event()

    def hang(*args, **kwargs):  # a black-holed network: name lookup / connect never answer
        release.wait(30)
        raise OSError("timed out")

    monkeypatch.setattr("socket.create_connection", hang)
    monkeypatch.setattr("socket.getaddrinfo", hang)
    monkeypatch.setattr(data_files, "NET_PROBE_TIMEOUT", 0.5)
    from torchvision import datasets
    monkeypatch.setattr(datasets.MNIST, "download", lambda self: pytest.fail("download attempted"))
    try:
        t0 = time.monotonic()
        with pytest.raises(DatasetUnavailableError, match=r"mnist is not on this machine .* cannot be downloaded: "
                                                          r"no answer from .* within 0\.5 s.*'digits'"):
            data.load("mnist", root=tmp_path)
        assert time.monotonic() - t0 < 3
        t0 = time.monotonic()
        with pytest.warns(UserWarning, match="falling back"):
            assert data.load("mnist", root=tmp_path, fallback=True).name == "digits"
        assert time.monotonic() - t0 < 3
    finally:
        release.set()


def test_without_network_a_refused_connection_or_failed_download_fails_fast(tmp_path, monkeypatch,
                                                                           online_mode):

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("socket.create_connection", refused)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=r"no download server could be reached .*Connection refused"):
        data.load("fashion-mnist", root=tmp_path)
    assert time.monotonic() - t0 < 3

    # the server answers but the download itself breaks off: still a clear, fast error
    from torchvision import datasets
    from urllib.error import URLError

    monkeypatch.setattr(data_files, "_network_problem", lambda urls, timeout: None)

    def broken_download(self):
        raise URLError("connection reset by peer")

    monkeypatch.setattr(datasets.MNIST, "download", broken_download)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailableError,
                       match=r"mnist is not on this machine .* could not be downloaded: .*connection reset"):
        data.load("mnist", root=tmp_path)
    assert time.monotonic() - t0 < 3
