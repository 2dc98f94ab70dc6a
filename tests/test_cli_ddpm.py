"""The DDPM from the command line: train --model ddpm, sample and evaluate on its checkpoints (--sampling-steps, the
sampling cost), and the bad input named: a 2-D dataset, GAN-only flags, sampling steps outside the schedule, a
checkpoint of the other family."""
import json

import numpy as np
import pytest

from course_lib.cli import main

TINY = ["--data", "digits", "--model", "ddpm", "--image-size", "16", "--g-width", "8", "--diffusion-steps", "20",
        "--batch-size", "16", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def ddpm_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_ddpm") / "run"
    assert main(["train", *TINY, "--steps", "4", "--out", str(out)]) == 0
    return out


def test_train_writes_the_run_files(ddpm_out):
    for name in ("checkpoint.pt", "samples.png", "config.json", "metrics.json"):
        assert (ddpm_out / name).is_file(), name
    final = json.loads((ddpm_out / "metrics.json").read_text())["final"]
    assert final["steps"] == 4 and final["diffusion_steps"] == 20 and "final_loss" in final
    assert "lr_d" not in final and "evaluate" in final["metrics_note"]
    assert json.loads((ddpm_out / "config.json").read_text())["model"] == "ddpm"


def test_resume_continues_a_ddpm_run(ddpm_out, tmp_path, capsys):
    assert main(["train", "--resume", str(ddpm_out / "checkpoint.pt"), "--steps", "5", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["final"]["steps"] == 5
    assert main(["train", "--resume", str(ddpm_out / "checkpoint.pt"), "--steps", "6", "--model", "dcgan",
                 "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "--model cannot be changed when resuming" in capsys.readouterr().err


def test_sample_by_ddim_and_ancestral(ddpm_out, tmp_path, capsys):
    ckpt = str(ddpm_out / "checkpoint.pt")
    assert main(["sample", "--checkpoint", ckpt, "--n", "6", "--sampling-steps", "3", "--out",
                 str(tmp_path / "a.npy")]) == 0
    assert "(ddim, 3 network evaluations each)" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", ckpt, "--n", "6", "--sampling-steps", "3", "--out",
                 str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (6, 1, 16, 16) and a.dtype == np.float32 and np.abs(a).max() <= 1
    assert np.array_equal(a, b)  # the same seed, DDIM at eta = 0
    assert main(["sample", "--checkpoint", ckpt, "--n", "2", "--out", str(tmp_path / "c.png")]) == 0
    assert "(ancestral, 20 network evaluations each)" in capsys.readouterr().out
    assert (tmp_path / "c.png").is_file()


def test_evaluate_reports_the_image_metrics_and_the_sampling_cost(ddpm_out, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--checkpoint", str(ddpm_out / "checkpoint.pt"), "--n", "100", "--sampling-steps", "2",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "ddpm" and result["sampler"] == "ddim" and result["network_evaluations_per_image"] == 2
    assert result["images_per_second"] > 0 and result["sampling_device"] == "cpu"
    assert {"frechet_distance", "precision", "recall", "coverage"} <= set(result)
    assert "sampling cost: 2 network evaluation(s) per sample (ddim)" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--data", "ring8"], "the dataset 'ring8' holds points"),
    (["--data", "grid25"], "the dataset 'grid25' holds points"),
    (["--data", "mixture1d"], "the dataset 'mixture1d' holds points"),
    (["--data", "digits", "--loss", "hinge", "--n-critic", "2"], "--loss, --n-critic: GAN option(s)"),
    (["--data", "digits", "--gp-weight", "1"], "--gp-weight: GAN option(s), which --model ddpm"),
    (["--data", "digits", "--r1-gamma", "1", "--spectral-norm"], "--r1-gamma, --spectral-norm: GAN option(s)"),
])
def test_ddpm_with_2d_data_or_gan_flags_is_refused(flags, message, tmp_path, capsys):
    assert main(["train", "--model", "ddpm", *flags, "--steps", "1", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_ddpm_flags_without_model_ddpm_are_refused(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--diffusion-steps", "10", "--steps", "1", "--out",
                 str(tmp_path / "x"), "--quiet"]) == 2
    assert "--diffusion-steps: DDPM option(s); add --model ddpm" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_sampling_steps_outside_the_schedule_are_refused(command, ddpm_out, tmp_path, capsys):
    out = str(tmp_path / ("s.npy" if command == "sample" else "e.json"))
    ckpt = str(ddpm_out / "checkpoint.pt")
    assert main([command, "--checkpoint", ckpt, "--n", "4", "--sampling-steps", "21", "--out", out]) == 2
    assert "--sampling-steps 21 is beyond the training schedule's T = 20 steps" in capsys.readouterr().err
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit):
            main([command, "--checkpoint", ckpt, "--sampling-steps", bad, "--out", out])
        assert "--sampling-steps: expected a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_sampling_steps_for_a_gan_checkpoint_are_refused(command, saved_runs, tmp_path, capsys):
    out = str(tmp_path / ("s.npy" if command == "sample" else "e.json"))
    assert main([command, "--checkpoint", str(saved_runs.ring_ckpt), "--sampling-steps", "5", "--out", out]) == 2
    assert "--sampling-steps is for DDPM checkpoints" in capsys.readouterr().err


def test_resuming_a_gan_checkpoint_as_a_ddpm_is_refused(saved_runs, tmp_path, capsys):
    assert main(["train", "--resume", str(saved_runs.ring_ckpt), "--model", "ddpm", "--steps", "9", "--out",
                 str(tmp_path / "a"), "--quiet"]) == 2
    assert "--model cannot be changed when resuming" in capsys.readouterr().err
