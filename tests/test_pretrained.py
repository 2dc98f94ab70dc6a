"""The trained models that ship with the course (``course_lib.pretrained``): each loads by name through the safe
checkpoint reader, refuses a changed or missing file (naming the command that re-makes it), samples in the asked
shape (a DDPM sampled with its own DDIM steps), and scores within a stated tolerance of its row in
``benchmarks/results-pretrained.json`` (the table ``benchmarks/RESULTS-pretrained.md``), evaluated as that table
was: ``evaluate --seed 0`` with its default size.

Tolerances (same seed, so the same noise; they allow for another CPU's floating-point path and a classifier
retrained on another machine): Fashion-MNIST FD within 10 % of the table's, every class share and the
conditional model's label accuracy within 2 percentage points; ring8 the same modes and the high-quality share
within 1 point. The Fashion-MNIST scores need the data (/usr/share/datasets/fashion-mnist) and skip without it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import cli, pretrained
from course_lib.checkpoint import CheckpointError, load_checkpoint
from course_lib.config import TrainConfig
from course_lib.recipes import DCGAN

ROOT = Path(__file__).resolve().parents[1]
ROWS = json.loads((ROOT / "benchmarks" / "results-pretrained.json").read_text())
FASHION = Path("/usr/share/datasets/fashion-mnist")
NAMES = pretrained.names()
FD_REL_TOL, SHARE_TOL, HIGH_QUALITY_TOL = 0.10, 0.02, 0.01
needs_fashion = pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                                   reason=f"Fashion-MNIST is not installed in {FASHION}")


def _shape(name: str) -> tuple[int, ...]:
    return (2,) if pretrained.get(name).data == "ring8" else (1, 32, 32)


@pytest.fixture
def copied(tmp_path, monkeypatch):
    """The shipped files and manifest copied to a temporary folder that ``course_lib.pretrained`` reads instead."""
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.PRETRAINED_DIR, folder)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(pretrained, "MANIFEST", folder / "manifest.json")
    return folder


def test_every_model_is_shipped_within_the_size_limits_and_matches_its_table_row():
    made = pretrained.manifest()
    assert tuple(made) == NAMES and tuple(ROWS) == NAMES
    for name in NAMES:
        path = pretrained.get(name).file
        assert path.stat().st_size <= pretrained.MAX_FILE_BYTES, f"{path} is over 5 MiB"
        assert pretrained.file_sha256(path) == made[name]["sha256"] == ROWS[name]["sha256"], name
        assert made[name]["bytes"] == ROWS[name]["bytes"] == path.stat().st_size
        assert TrainConfig.from_dict(made[name]["config"]) == pretrained.get(name).config(), \
            f"{name}: the recipe changed since the file was made; run {pretrained.remake_command(name)}"
    assert sum(made[n]["bytes"] for n in NAMES) <= pretrained.MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_loads_by_name_and_samples_in_the_given_shape(name):
    G = pretrained.load_pretrained(name)
    assert isinstance(G, nn.Module) and not G.training
    if pretrained.get(name).sampling_steps is not None:  # a DDPM: its U-Net, sampled by DDIM
        model = pretrained.load_pretrained_model(name)
        assert model.family == "ddpm" and model.network_evaluations == pretrained.get(name).sampling_steps
        x = model.sample(6, seed=0)
        assert x.shape == (6, *_shape(name)) and torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
        return
    z = torch.randn(6, G.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = G(z) if G.num_classes is None else G(z, torch.arange(6) % G.num_classes)
    assert x.shape == (6, *_shape(name)) and torch.isfinite(x).all()
    if x.dim() == 4:
        assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_the_cli_samples_a_shipped_model_by_name(name, tmp_path):
    out = tmp_path / "x.npy"
    assert cli.main(["sample", "--checkpoint", f"pretrained:{name}", "--n", "7", "--out", str(out)]) == 0
    assert np.load(out).shape == (7, *_shape(name))


@pytest.mark.parametrize("name", NAMES)
def test_a_flipped_byte_is_refused_naming_the_file_and_the_command(name, copied):
    path = copied / f"{name}.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as info:
        pretrained.load_pretrained(name)
    message = str(info.value)
    assert "has changed" in message and str(path) in message and f"python tools/make_pretrained.py {name}" in message
    with pytest.raises(CheckpointError, match="damaged"):  # the checkpoint reader refuses it by itself too
        load_checkpoint(path)


def test_a_missing_file_names_the_command_that_re_makes_it(copied, capsys):
    (copied / "fashion-dcgan.pt").unlink()
    with pytest.raises(CheckpointError, match=r"is missing.*python tools/make_pretrained.py fashion-dcgan"):
        pretrained.load_pretrained("fashion-dcgan")
    assert cli.main(["evaluate", "--checkpoint", "pretrained:fashion-dcgan"]) == 2
    assert "python tools/make_pretrained.py fashion-dcgan" in capsys.readouterr().err


def test_an_unknown_name_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match="fashion-dcgan, fashion-cgan, fashion-recipe, fashion-recipe-long, ring8"):
        pretrained.load_pretrained("fashion-gan")
    assert cli.main(["sample", "--checkpoint", "pretrained:fashion-gan", "--out", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert "unknown pretrained model 'fashion-gan'" in err and all(n in err for n in NAMES)


def test_the_pretrained_command_lists_each_model_with_its_size_and_metric(capsys):
    assert cli.main(["pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(NAMES)
    for name, line in zip(NAMES, lines):
        assert line.startswith(f"pretrained:{name}") and "MiB" in line and ("FD" in line or "modes" in line)


def test_a_shipped_file_is_generator_only_and_cannot_resume_training():
    from course_lib.train import GANTrainer

    state = load_checkpoint(pretrained.get("ring8").file)
    assert state["D"] == {} and "opt_G" not in state and state["generator_only"] == {"G": "ema"}
    with pytest.raises(CheckpointError, match="does not fit"):
        GANTrainer.from_checkpoint(pretrained.get("ring8").file, verbose=False, steps=state["step"] + 1)


def test_the_shipped_ddpm_holds_its_ema_u_net_and_is_sampled_with_its_own_ddim_steps(tmp_path):
    from course_lib.diffusion_train import DDPMTrainer
    from course_lib.unet import UNet

    model = pretrained.get("fashion-ddpm")
    state = load_checkpoint(model.file)
    assert state["D"] == {} and "opt_G" not in state and state["generator_only"] == {"G": "ema"}
    assert isinstance(pretrained.load_pretrained("fashion-ddpm"), UNet)
    assert pretrained.default_sampling_steps("pretrained:fashion-ddpm") == model.sampling_steps == 50
    assert pretrained.default_sampling_steps("pretrained:fashion-recipe") is None
    assert pretrained.default_sampling_steps("runs/x/checkpoint.pt") is None
    assert pretrained.load_pretrained_model("fashion-ddpm", sampling_steps=5).network_evaluations == 5
    with pytest.raises(CheckpointError, match="does not fit"):
        DDPMTrainer.from_checkpoint(model.file, verbose=False, steps=state["step"] + 1)


def test_the_dcgan_recipe_is_radfords_dcgan():
    config = TrainConfig.for_data("fashion-mnist", **DCGAN["fashion-mnist"])
    assert (config.loss, config.betas, config.lr_g, config.lr_d, config.batch_size) == \
        ("nonsaturating", (0.5, 0.999), 2e-4, 2e-4, 128)
    assert not config.spectral_norm and config.ema_decay is None and config.r1_gamma == 0 and config.image_size == 32
    from course_lib.models import build_models

    G, D = build_models("dcgan", (1, 32, 32), config.latent_dim, config.g_width, config.d_width)
    convs_g = [m for m in G.net if isinstance(m, nn.ConvTranspose2d)]
    after = {i: type(G.net[i + 1]) for i, m in enumerate(G.net) if isinstance(m, nn.ConvTranspose2d)}
    assert list(after.values()) == [nn.BatchNorm2d] * (len(convs_g) - 1) + [nn.Tanh]  # none on G's last layer
    after = [type(D.features[i + 1]) for i, m in enumerate(D.features) if isinstance(m, nn.Conv2d)]
    assert after == [nn.LeakyReLU] + [nn.BatchNorm2d] * (len(after) - 1)  # none on D's first layer
    assert all(m.negative_slope == 0.2 for m in D.features if isinstance(m, nn.LeakyReLU))


def test_ring8_scores_as_in_its_table(tmp_path):
    row, out = ROWS["ring8"], tmp_path / "e.json"
    assert cli.main(["evaluate", "--checkpoint", "pretrained:ring8", "--seed", str(row["eval_seed"]),
                     "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["modes"] == row["modes"]
    assert abs(result["high_quality"] - row["high_quality"]) <= HIGH_QUALITY_TOL


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if pretrained.get(n).data == "fashion-mnist"])
def test_fashion_models_score_as_in_their_table(name, tmp_path):
    # a DDPM is checked on the smaller evaluation its row records ("check"): its full one takes tens of CPU minutes
    row, out = ROWS[name], tmp_path / "e.json"
    row = {**row, **row["check"]} if "check" in row else row
    n = ["--n", str(row["n"])] if "check" in ROWS[name] else []
    assert cli.main(["evaluate", "--checkpoint", f"pretrained:{name}", "--seed", str(row["eval_seed"]),
                     "--out", str(out), *n]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == row["n"]
    assert abs(result["frechet_distance"] - row["frechet_distance"]) <= FD_REL_TOL * row["frechet_distance"], \
        f"{name}: FD {result['frechet_distance']:.2f}, table {row['frechet_distance']:.2f}"
    shares = pretrained.class_shares(name, n=row["n"] if n else None, seed=row["eval_seed"])
    assert np.abs(np.array(shares["class_shares"]) - row["class_shares"]).max() <= SHARE_TOL
    assert abs(result["min_class_share"] - row["min_class_share"]) <= SHARE_TOL
    if "label_accuracy" in row:
        assert abs(shares["label_accuracy"] - row["label_accuracy"]) <= SHARE_TOL


def test_the_committed_sample_grid_is_what_make_figures_draws(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "tools" / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    from PIL import Image

    drawn = np.asarray(Image.open(make_figures.fashion_samples(tmp_path / "grid.png")), dtype=np.float32)
    committed = np.asarray(Image.open(ROOT / "figures" / "fashion_samples.png"), dtype=np.float32)
    assert drawn.shape == committed.shape == (548, 548)  # 8 x 8 images of 64 pixels, 4-pixel borders
    assert np.abs(drawn - committed).mean() <= 1.0, "the picture differs: run python tools/make_figures.py"
