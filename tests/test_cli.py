"""The command line end to end: train writes its four files, sample writes raw samples, --help is clear."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib.cli import main
from course_lib.config import TrainConfig
from course_lib.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "course_lib", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_train_ring8_then_sample(tmp_path):
    out = tmp_path / "ring8"
    r = run_cli("train", "--data", "ring8", "--out", str(out), "--steps", "40", "--batch-size", "64", "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("checkpoint.pt", "samples.png", "config.json", "metrics.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["final"]["steps"] == 40 and len(m["history"]["d_loss"]) == 40
    assert {"modes", "high_quality"} <= set(m["final"])
    # the effective batch and learning rates are recorded beside the metrics
    assert (m["final"]["batch_size"], m["final"]["batch_per_process"], m["final"]["world_size"]) == (64, 64, 1)
    assert m["final"]["lr_g"] == RECIPES["ring8"]["lr_g"] and m["final"]["lr_schedule"] == "linear"
    assert json.loads((out / "config.json").read_text())["steps"] == 40
    r = run_cli("sample", "--checkpoint", str(out / "checkpoint.pt"), "--n", "2500", "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (2500, 2) and x.dtype == np.float32 and np.isfinite(x).all()


def test_train_digits_in_process_and_sample_images(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["train", "--data", "digits", "--out", str(out), "--steps", "6", "--batch-size", "32",
                 "--image-size", "8", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert all((out / n).is_file() for n in ("checkpoint.pt", "samples.png", "config.json", "metrics.json"))
    ckpt = str(out / "checkpoint.pt")
    assert main(["sample", "--checkpoint", ckpt, "--n", "10", "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (10, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert main(["sample", "--checkpoint", ckpt, "--n", "16", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    # the digits recipe is class-conditional: --label picks the class; --no-conditional trains without labels
    assert json.loads((out / "config.json").read_text())["conditional"] is True
    assert main(["sample", "--checkpoint", ckpt, "--n", "4", "--label", "3", "--out", str(tmp_path / "3.npy")]) == 0
    plain = tmp_path / "plain"
    assert main(["train", "--data", "digits", "--out", str(plain), "--steps", "2", "--batch-size", "32",
                 "--image-size", "8", "--no-conditional", "--quiet"]) == 0
    assert json.loads((plain / "config.json").read_text())["conditional"] is False


def test_samples_png_and_the_live_plot_draw_the_same_samples_through_one_function(tmp_path, monkeypatch):
    """``train``'s samples.png and ``LivePlot`` both take plots.figure_samples and draw with plots.sample_figure."""
    import matplotlib.pyplot as plt
    import torch

    from course_lib import plots
    from course_lib.train import GANTrainer

    drawn = []
    real = plots.sample_figure
    monkeypatch.setattr(plots, "sample_figure", lambda x, ds, **kw: drawn.append((x, ds.name)) or real(x, ds, **kw))
    out = tmp_path / "d"
    assert main(["train", "--data", "digits", "--out", str(out), "--steps", "2", "--batch-size", "32",
                 "--image-size", "8", "--quiet"]) == 0
    trainer = GANTrainer.from_checkpoint(out / "checkpoint.pt", verbose=False)
    plt.close(plots.LivePlot(live=False).draw(trainer))
    (cli_x, cli_data), (live_x, live_data) = drawn
    assert cli_data == live_data == "digits" and cli_x.shape == (64, 1, 8, 8)  # the 64 images of the fixed noise
    assert torch.equal(cli_x, live_x) and torch.equal(cli_x, plots.figure_samples(trainer))


def test_resume_continues_to_more_steps(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "10", "--batch-size", "32", "--quiet"]) == 0
    assert main(["train", "--resume", str(out / "checkpoint.pt"), "--out", str(out), "--steps", "15", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["final"]["steps"] == 15 and len(m["history"]["g_loss"]) == 15


def test_epochs_option(tmp_path, monkeypatch):
    from course_lib.train import GANTrainer

    built = []
    init = GANTrainer.__init__
    monkeypatch.setattr(GANTrainer, "__init__", lambda self, *a, **kw: (built.append(1), init(self, *a, **kw))[1])
    out = tmp_path / "e"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "256",
                 "--image-size", "8", "--quiet"]) == 0
    # 1,438 training digits / 256 per batch = 5 full batches per epoch (streams.batches_per_epoch, as the trainer)
    assert json.loads((out / "metrics.json").read_text())["final"]["steps"] == 5
    assert len(built) == 1, "the steps of --epochs come from the data, not from a probe trainer"


@pytest.mark.parametrize("command", [[], ["train"], ["sample"]])
def test_help_is_clear(command):
    r = run_cli(*command, "--help", timeout=60)
    assert r.returncode == 0 and "usage: python -m course_lib" in r.stdout
    if command == ["train"]:
        for flag in ("--data", "--loss", "--steps", "--epochs", "--batch-size", "--lr", "--seed", "--device",
                     "--resume"):
            assert flag in r.stdout


@pytest.mark.parametrize("args, match", [
    (["train", "--data", "cifar", "--out", "x"], "invalid choice: 'cifar'"),
    (["train", "--steps", "ten", "--out", "x"], "argument --steps: expected a positive integer, got 'ten'"),
    (["train", "--lr", "abc", "--out", "x"], "argument --lr: expected a positive finite number, got 'abc'"),
    (["train", "--lr", "0", "--out", "x"], "argument --lr: expected a positive finite number, got '0'"),
    (["train", "--image-size", "12", "--out", "x"], "argument --image-size: image size 12 is not supported"),
    (["train", "--ema", "1", "--out", "x"], "argument --ema: expected a number in [0, 1), got '1'"),
    (["sample", "--checkpoint", "c.pt", "--out", "s.npy", "--label", "-1"],
     "argument --label: expected a non-negative integer, got '-1'"),
    (["train", "--loss", "bce", "--out", "x"], "invalid choice: 'bce'"),
])
def test_bad_arguments_exit_2_with_message(args, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("field, text", [("batch_size", "0"), ("seed", "-1"), ("gp_weight", "-1"),
                                         ("r1_gamma", "nan"), ("label_smoothing", "1"), ("latent_codes", "-1"),
                                         ("g_init_gain", "0"), ("n_critic", "0"), ("image_size", "12")])
def test_a_flag_refuses_what_its_config_field_refuses_in_the_same_words(field, text, capsys):
    """One check per field: the flag's argparse type is the field's check of ``TrainConfig``, wrapped once."""
    flag = "--" + field.replace("_", "-")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", "x", flag, text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    value = (int if field in ("batch_size", "seed", "latent_codes", "n_critic", "image_size") else float)(text)
    with pytest.raises(ValueError) as refused:
        TrainConfig.for_data("digits", **{field: value})
    words = str(refused.value).split(" must be ")[-1].split(", got")[0]
    assert f"argument {flag}: " in err and words in err, (words, err)


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "s.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- flags from the config, resume rule

def test_train_flags_are_built_from_the_config_fields():
    import dataclasses

    from course_lib.cli import build_parser
    from course_lib.config import TrainConfig

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    actions = {a.dest: a for a in train._actions}
    for f in dataclasses.fields(TrainConfig):
        if f.metadata["cli"] is not False:
            assert (f.metadata["flag"] or "--" + f.name.replace("_", "-")) in flags, f.name
            # help text and choices come from the field's metadata, the value from the recipe unless given
            assert actions[f.name].help.startswith(f.metadata["help"]) and actions[f.name].default is None, f.name
            assert tuple(actions[f.name].choices or ()) == tuple(f.metadata["choices"]), f.name
        else:
            assert f.name not in actions, f.name
    # the names of the hand-written era keep working
    assert {"--lr", "--ema", "--epochs", "--compile", "--no-compile", "--no-channels-last", "--fallback",
            "--conditional", "--no-conditional", "--quiet", "--resume", "--out"} <= flags


def test_the_resume_rule_in_help_and_errors_is_the_library_rule():
    """--help and the resume error list the flags of config.RESUMABLE_FIELDS, written nowhere by hand."""
    import dataclasses

    from course_lib.cli import _resumable_flags, build_parser
    from course_lib.config import RESUMABLE_FIELDS, TrainConfig

    cli_fields = [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"] is not False]
    want = [f.metadata["flag"] or "--" + f.name.replace("_", "-") for f in cli_fields if f.name in RESUMABLE_FIELDS]
    assert _resumable_flags() == want and {"--steps", "--log-every", "--nan-policy", "--amp"} <= set(want)
    description = build_parser()._subparsers._group_actions[0].choices["train"].description
    assert f"only {', '.join(want)} may differ" in description


@pytest.fixture
def ring_run(tmp_path):
    out = tmp_path / "base"
    assert main(["train", "--data", "ring8", "--out", str(out), "--steps", "5", "--batch-size", "32",
                 "--quiet"]) == 0
    return out / "checkpoint.pt"


@pytest.mark.parametrize("args, flag, field, value", [
    (["--data", "digits"], "--data", "data", "digits"),
    (["--seed", "5"], "--seed", "seed", 5),
    (["--loss", "hinge"], "--loss", "loss", "hinge"),
    (["--lr", "1e-3"], "--lr", "lr_g", 1e-3),
    (["--latent-dim", "16"], "--latent-dim", "latent_dim", 16),
    (["--ema", "0.5"], "--ema", "ema_decay", 0.5),
    (["--fallback"], "--fallback", "fallback", True),
])
def test_library_and_cli_refuse_the_same_options_on_resume(ring_run, tmp_path, capsys, args, flag, field, value):
    from course_lib.train import GANTrainer, ResumeConflictError

    assert main(["train", "--resume", str(ring_run), "--out", str(tmp_path / "r"), "--steps", "7", *args,
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} cannot be changed when resuming" in err and "--steps" in err and "--log-every" in err
    assert not (tmp_path / "r").exists()  # nothing written
    with pytest.raises(ResumeConflictError) as exc:
        GANTrainer.from_checkpoint(ring_run, verbose=False, **{field: value})
    assert field in exc.value.fields


def test_resume_with_the_saved_values_or_new_speed_options_is_fine(ring_run, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--resume", str(ring_run), "--out", str(out), "--steps", "7", "--data", "ring8",
                 "--seed", "0", "--amp", "bf16", "--no-compile", "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["steps"], cfg["amp"], cfg["compile"]) == (7, "bf16", False)  # applied, not ignored


@pytest.mark.parametrize("steps", [[], ["--steps", "2"], ["--steps", "5"]])
def test_resume_without_steps_to_train_is_an_error_that_writes_nothing(ring_run, tmp_path, capsys, steps):
    out = tmp_path / "r5"
    assert main(["train", "--resume", str(ring_run), "--out", str(out), *steps, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "wrote" not in captured.out and "step 5" in captured.err
    assert "more than 5" in captured.err or "N > 5" in captured.err  # what to pass instead
    assert not out.exists()
