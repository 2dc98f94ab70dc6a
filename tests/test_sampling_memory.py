"""Sampling memory is bounded: ``generate`` allocates its output once and fills it batch by batch (measured: a few
bytes a 2-D point, not hundreds), the memory check uses that cost and refuses an ``n`` that cannot fit before any
work, a large ``n`` shows progress, and the samples are the same as one pass of G over the seeded noise."""
import subprocess
import sys

import pytest
import torch

from course_lib import rundir, sampling
from course_lib.cli import main
from course_lib.pretrained import resolve_checkpoint
from course_lib.rundir import SampleTooLargeError
from course_lib.sampling import generate, load_generator

PEAK_PER_SAMPLE = """
import gc, resource, sys, torch
from course_lib.pretrained import resolve_checkpoint
from course_lib.sampling import generate, load_generator
G, config, info = load_generator(resolve_checkpoint("pretrained:ring8"))
generate(G, 4096, config.latent_dim, torch.device("cpu"))
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = 1_000_000
x = generate(G, n, config.latent_dim, torch.device("cpu"))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / n, config.latent_dim)
"""


@pytest.fixture(scope="module")
def ring8():
    return load_generator(resolve_checkpoint("pretrained:ring8"))


def test_a_million_points_cost_what_the_memory_check_counts():
    done = subprocess.run([sys.executable, "-c", PEAK_PER_SAMPLE], capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr
    per_sample, latent_dim = float(done.stdout.split()[0]), int(done.stdout.split()[1])
    counted = rundir.estimate_bytes(1, (2,)) + rundir.estimate_bytes(1, (latent_dim,))
    assert per_sample < 2 * counted, f"generate costs {per_sample:.0f} bytes a point, the check counts {counted}"


def test_the_samples_are_one_pass_of_g_over_the_seeded_noise(ring8):
    G, config, _ = ring8
    x = generate(G, 2500, config.latent_dim, torch.device("cpu"), seed=7, batch_size=1000)
    z = torch.randn(2500, config.latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(x, G(z).float())
    assert x.dtype == torch.float32 and x.shape == (2500, 2)


def test_an_n_that_cannot_fit_is_refused_before_any_work(ring8, monkeypatch):
    G, config, _ = ring8
    calls = []
    monkeypatch.setattr(rundir, "available_memory", lambda: 1_000_000)
    monkeypatch.setattr(G, "forward", lambda *a: calls.append(1))
    with pytest.raises(SampleTooLargeError, match=r"^n 1000000 samples of shape \(\) need about .* at most about "
                                                  r"n \d+"):
        generate(G, 1_000_000, config.latent_dim, torch.device("cpu"))
    assert not calls  # G never ran, no noise was drawn


def test_the_output_that_cannot_fit_is_refused_before_it_is_allocated(ring8, monkeypatch):
    G, config, _ = ring8
    monkeypatch.setattr(rundir, "available_memory", lambda: 200_000)
    noise = torch.zeros(30_000, config.latent_dim)
    with pytest.raises(SampleTooLargeError, match=r"^n 30000 samples of shape \(2,\) need about"):
        generate(G, 30_000, config.latent_dim, torch.device("cpu"), noise=noise)


def test_the_cli_refuses_an_n_that_cannot_fit_before_sampling(tmp_path, monkeypatch, no_sampling, capsys):
    monkeypatch.setattr(rundir, "available_memory", lambda: 10_000_000)
    assert main(["sample", "--checkpoint", "pretrained:ring8", "--n", "1000000", "--out",
                 str(tmp_path / "s.npy")]) == 2
    assert "--n 1000000 samples of shape (2,) need about" in capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()


def test_a_large_n_shows_progress(ring8, monkeypatch, capsys):
    G, config, _ = ring8
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sampling, "PROGRESS_FROM", 3000)
    generate(G, 2999, config.latent_dim, torch.device("cpu"))
    assert "sampling" not in capsys.readouterr().err
    generate(G, 3000, config.latent_dim, torch.device("cpu"))
    assert "sampling" in capsys.readouterr().err
    generate(G, 10, config.latent_dim, torch.device("cpu"), progress=True)
    assert "sampling" in capsys.readouterr().err


def test_a_wrong_latent_size_is_named_before_sampling(ring8):
    G, config, _ = ring8
    with pytest.raises(ValueError, match=rf"latent_dim={config.latent_dim + 1}, but this generator takes noise of "
                                         rf"size {config.latent_dim}: pass latent_dim={config.latent_dim}"):
        generate(G, 10, config.latent_dim + 1, torch.device("cpu"))
