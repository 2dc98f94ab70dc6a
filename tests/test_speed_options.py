"""CPU tests of every GPU speed path of the training loop: mixed precision (bfloat16 autocast, the float16
fallback, the gradient scaler), channels-last, torch.compile, the option defaults (CUDA simulated), bad
devices, and the throughput helpers of ``course_lib.speed`` and ``benchmarks/throughput.py``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import train as train_mod
from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.device import DeviceError
from course_lib.speed import PlainLoop, compare_loops, measure_plain_loop, measure_throughput, random_images
from course_lib.train import GANTrainer, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DIGITS = dict(steps=4, batch_size=32, image_size=8, checkpoint_every=1000, conditional=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _digits(**changes) -> GANTrainer:
    return GANTrainer(TrainConfig.for_data("digits", **{**DIGITS, **changes}), verbose=False)


# ----------------------------------------------------------------------------- defaults on the CPU

def test_cpu_defaults_leave_every_speed_option_off():
    tr = _digits()
    assert tr.device.type == "cpu"
    assert tr.amp_mode == "off" and tr.amp_dtype is None
    assert not tr.scaler_G.is_enabled() and not tr.scaler_D.is_enabled()
    assert tr.channels_last is False
    assert tr.compile_G is False and tr.compile_D is False
    assert tr._G is tr.G and tr._D is tr.D  # neither compiled nor wrapped


def test_two_default_cpu_runs_are_bit_identical():
    a, b = _digits(), _digits()
    a.fit(progress=False)
    b.fit(progress=False)
    assert a.history == b.history
    for pa, pb in zip(a.G.state_dict().values(), b.G.state_dict().values()):
        assert torch.equal(pa, pb)
    assert torch.equal(a.sample(16), b.sample(16))


# ----------------------------------------------------------------------------- mixed precision

def test_bf16_autocast_trains_on_cpu_and_really_uses_bfloat16():
    tr = _digits(amp="bf16")
    assert tr.amp_mode == "bf16" and tr.amp_dtype is torch.bfloat16
    assert not tr.scaler_D.is_enabled()  # bfloat16 needs no gradient scaling
    tr.fit(progress=False)
    assert len(tr.history["d_loss"]) == 4
    assert all(torch.isfinite(torch.tensor(v)).all() for v in tr.history.values())
    z = tr.fixed_noise[:8]
    with tr._autocast():
        fake = tr.G(z)
        logits = tr.D(fake)
    assert fake.dtype == torch.bfloat16 and logits.dtype == torch.bfloat16
    assert tr.G(z).dtype == torch.float32  # outside autocast: full precision
    for p in tr.G.parameters():  # master weights stay float32
        assert p.dtype == torch.float32
    # the same run in full precision differs: autocast really changed the arithmetic of the training steps
    ref = _digits(amp="off")
    ref.fit(progress=False)
    assert ref.history["d_loss"] != tr.history["d_loss"]
    assert ref.history["d_loss"] == pytest.approx(tr.history["d_loss"], rel=0.05)


def test_fp16_on_cpu_is_an_announced_fallback_to_bf16():
    with pytest.warns(UserWarning, match="float16.*bfloat16"):
        tr = _digits(amp="fp16")
    assert tr.amp_mode == "bf16" and tr.amp_dtype is torch.bfloat16
    assert not tr.scaler_G.is_enabled()
    tr.fit(progress=False)
    assert len(tr.history["g_loss"]) == 4


def test_fp16_gradient_scaler_path_runs(monkeypatch):
    """The CUDA float16 path (autocast float16 + GradScaler + the scaled NaN check), run on the CPU."""
    tr = _digits(amp="off")
    tr.amp_dtype, tr.amp_mode = torch.float16, "fp16"
    tr.scaler_G = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    tr.scaler_D = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    seen = []
    original = tr._check_finite

    def spy(what, loss, params, scaled):
        seen.append(scaled)
        return original(what, loss, params, scaled)

    monkeypatch.setattr(tr, "_check_finite", spy)
    before = [p.detach().clone() for p in tr.G.parameters()]
    tr.fit(progress=False)
    assert seen and all(seen)  # the scaled branch of the NaN check was taken
    assert all(torch.isfinite(torch.tensor(tr.history["g_loss"])))
    assert any(not torch.equal(b, p) for b, p in zip(before, tr.G.parameters()))  # updates were applied
    with tr._autocast():
        assert tr.G(tr.fixed_noise[:4]).dtype == torch.float16
    state = tr.state_dict()
    assert state["scaler_G"]["scale"] > 0  # the scaler's state goes into checkpoints


# ----------------------------------------------------------------------------- devices

@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message when CUDA is absent")
def test_device_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        GANTrainer(TrainConfig.for_data("ring8", steps=2, device="cuda"), verbose=False)
    code = main(["train", "--data", "ring8", "--steps", "2", "--device", "cuda", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and "CUDA is not available" in err and "--device cpu" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _pretend_cuda(tr: GANTrainer, monkeypatch, bf16: str = "native") -> None:
    """Re-resolve ``tr``'s speed options as if it ran on a GPU (bf16: 'native', 'emulated' or 'none')."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(train_mod, "_cuda_bf16", lambda native: bf16 == "native" or (bf16 == "emulated"
                                                                                      and not native))
    tr.device = torch.device("cuda")
    tr._resolve_speed_options()


def test_on_cuda_the_speed_options_default_on(monkeypatch):
    tr = _digits()
    _pretend_cuda(tr, monkeypatch)
    assert tr.amp_mode == "bf16" and tr.channels_last is True
    assert tr.compile_G and tr.compile_D
    assert torch.backends.cudnn.benchmark is True
    mlp = GANTrainer(TrainConfig.for_data("ring8", steps=2), verbose=False)
    _pretend_cuda(mlp, monkeypatch)
    assert mlp.channels_last is False  # channels-last is for convolutions only


def test_on_cuda_each_option_can_be_switched_off(monkeypatch):
    tr = _digits(amp="off", channels_last=False, compile=False, cudnn_benchmark=False)
    _pretend_cuda(tr, monkeypatch)
    assert (tr.amp_mode, tr.channels_last, tr.compile_G, tr.compile_D) == ("off", False, False, False)
    assert torch.backends.cudnn.benchmark is False


def test_on_cuda_penalties_keep_d_eager(monkeypatch):
    tr = GANTrainer(TrainConfig.for_data("ring8", steps=2, loss="wgan-gp"), verbose=False)
    _pretend_cuda(tr, monkeypatch)
    assert tr.compile_G and not tr.compile_D  # no torch.compile for the double backward of the penalty
    with pytest.warns(UserWarning, match="double backward"):  # also announced on the CPU when forced
        forced = GANTrainer(TrainConfig.for_data("ring8", steps=2, r1_gamma=1.0, compile=True), verbose=False)
    with pytest.warns(UserWarning, match="double backward"):
        _pretend_cuda(forced, monkeypatch)
    assert forced.compile_G and not forced.compile_D


def test_on_older_gpus_amp_auto_avoids_emulated_bf16_and_bf16_falls_back_to_fp16(monkeypatch):
    tr = _digits()
    _pretend_cuda(tr, monkeypatch, bf16="emulated")  # e.g. a T4 or V100: bfloat16 only emulated
    assert tr.amp_mode == "fp16" and tr.amp_dtype is torch.float16  # float16 (with gradient scalers) instead
    tr = _digits(amp="bf16")
    with pytest.warns(UserWarning, match="float16 with gradient scaling"):
        _pretend_cuda(tr, monkeypatch, bf16="none")
    assert tr.amp_mode == "fp16" and tr.amp_dtype is torch.float16


def test_a_gpu_checkpoint_resumes_on_the_cpu(tmp_path):
    """A CUDA generator's state (16 bytes) does not fit the CPU generator: resuming reseeds instead of failing."""
    tr = _digits()
    tr.fit(progress=False)
    state = tr.state_dict()
    state["rng"]["trainer"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA (Philox) state
    save_checkpoint(state, tmp_path / "gpu.pt")
    resumed = GANTrainer.from_checkpoint(tmp_path / "gpu.pt", verbose=False, steps=6)
    resumed.fit(progress=False)
    assert resumed.step == 6 and len(resumed.history["d_loss"]) == 6


# ----------------------------------------------------------------------------- channels-last

def test_channels_last_on_cpu_trains_keeps_the_format_and_matches_the_default(tmp_path):
    tr = _digits(channels_last=True)
    assert tr.channels_last is True
    tr.fit(progress=False)
    convs = [p for m in (tr.G, tr.D, tr.G_ema) for p in m.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous() for p in convs)  # really another layout, not a trivially compatible one
    ref = _digits()
    ref.fit(progress=False)
    for k in ref.history:
        assert tr.history[k] == pytest.approx(ref.history[k], rel=1e-4, abs=1e-5), k
    x, _ = tr._real_batch()  # the real batches are handed to D in channels-last too
    assert x.is_contiguous(memory_format=torch.channels_last)
    # its checkpoint loads into a default-layout trainer and samples the same images
    tr.save(tmp_path / "cl.pt")
    plain = GANTrainer.from_checkpoint(tmp_path / "cl.pt", verbose=False, channels_last=False)
    assert plain.channels_last is False
    assert torch.allclose(plain.sample(8), tr.sample(8), atol=1e-5)


# ----------------------------------------------------------------------------- torch.compile

@pytest.mark.slow
def test_torch_compile_on_cpu_trains_a_tiny_mlp(tmp_path):
    small = dict(steps=3, batch_size=64, g_width=16, d_width=16, depth=2, r1_gamma=0.0)  # no double backward
    tr = GANTrainer(TrainConfig.for_data("ring8", compile=True, **small), verbose=False)
    assert tr.compile_G and tr.compile_D
    assert tr._G is not tr.G and hasattr(tr._G, "_orig_mod")  # the forward passes go through compiled modules
    tr.fit(progress=False)
    ref = GANTrainer(TrainConfig.for_data("ring8", **small), verbose=False)
    ref.fit(progress=False)
    for k in ref.history:
        assert tr.history[k] == pytest.approx(ref.history[k], rel=1e-4, abs=1e-5), k
    tr.save(tmp_path / "c.pt")
    saved = load_checkpoint(tmp_path / "c.pt")
    assert not any(k.startswith("_orig_mod") for k in saved["G"])  # the plain modules are saved
    resumed = GANTrainer.from_checkpoint(tmp_path / "c.pt", verbose=False, compile=False, steps=4)
    resumed.fit(progress=False)
    assert resumed.step == 4


# ----------------------------------------------------------------------------- throughput helpers

def _tiny_dcgan_config(**changes) -> TrainConfig:
    return TrainConfig.for_data("mnist", image_size=8, batch_size=16, latent_dim=8, g_width=8, d_width=8,
                                ema_decay=None, amp="off", **changes)


def test_measure_throughput_times_the_course_loop():
    ds = random_images(64, 3, 8)
    assert ds.x.shape == (64, 3, 8, 8) and -1 <= ds.x.min() and ds.x.max() <= 1
    tr = GANTrainer(_tiny_dcgan_config(), dataset=ds, verbose=False)
    r = measure_throughput(tr, steps=3, warmup=2)
    assert tr.step == 5
    assert r["images_per_s"] == pytest.approx(3 * 16 / r["seconds"])
    assert r["images_per_s"] > 0 and r["peak_mem_bytes"] is None  # no GPU memory on the CPU
    assert 0 < r["cpu_seconds"] < 10 * r["seconds"] + 1
    assert r["options"] == {"amp": "off", "channels_last": False, "compile": False}
    r2 = measure_throughput(_tiny_dcgan_config(channels_last=True), steps=1, warmup=0, dataset=random_images(32, 1, 8))
    assert r2["options"]["channels_last"] is True and r2["steps"] == 1


def test_measure_throughput_rejects_bad_input():
    with pytest.raises(TypeError, match="GANTrainer or a TrainConfig"):
        measure_throughput("digits")
    with pytest.raises(ValueError, match="steps"):
        measure_throughput(_tiny_dcgan_config(), steps=0, dataset=random_images(32, 1, 8))


def test_measure_plain_loop_leaves_the_models_untouched():
    tr = GANTrainer(_tiny_dcgan_config(), dataset=random_images(64, 3, 8), verbose=False)
    before = [p.detach().clone() for p in tr.G.parameters()]
    for reuse in (False, True):
        r = measure_plain_loop(tr.G, tr.D, random_images(64, 3, 8).x, batch_size=16, steps=5, warmup=1,
                               reuse_fake=reuse)
        assert r["images_per_s"] > 0 and r["options"]["reuse_fake"] is reuse
    assert all(torch.equal(b, p) for b, p in zip(before, tr.G.parameters()))
    with pytest.raises(ValueError, match="fewer than one batch"):
        measure_plain_loop(tr.G, tr.D, random_images(8, 3, 8).x, batch_size=16)


def test_compare_loops_interleaves_the_two_loops():
    tr = GANTrainer(_tiny_dcgan_config(), dataset=random_images(64, 3, 8), verbose=False)
    plain = PlainLoop(tr.G, tr.D, tr.dataset.x, batch_size=16)
    c = compare_loops(tr, plain, steps=5, warmup=1, chunk=2)
    assert tr.step == 6  # warm-up + timed steps, all through fit()
    assert c["course"]["images_per_s"] == pytest.approx(5 * 16 / c["course"]["seconds"])
    assert c["ratio"] == pytest.approx(c["course"]["images_per_s"] / c["plain"]["images_per_s"])
    assert c["ratio_cpu"] > 0 and c["ratio_median_of_pairs"] > 0 and c["chunk"] == 2
    with pytest.raises(ValueError, match="different batch sizes"):
        compare_loops(tr, PlainLoop(tr.G, tr.D, tr.dataset.x, batch_size=8), steps=1)
    with pytest.raises(ValueError, match="chunk"):
        compare_loops(tr, plain, steps=1, chunk=0)


def test_throughput_benchmark_script_runs(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--sizes", "8",
                           "--steps", "3", "--warmup", "1", "--chunk", "2", "--width", "4", "--nz", "4",
                           "--images", "32", "--batch-size", "8", "--threads", "1", "--device", "cpu",
                           "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "no GPU available" in proc.stdout or torch.cuda.is_available()
    res = json.loads(out.read_text())
    r = res["results"][0]
    assert r["size"] == 8 and r["steps"] == 3 and r["chunk"] == 2
    assert r["ratio_course_over_plain"] == pytest.approx(r["course_images_per_s"] / r["plain_images_per_s"],
                                                         rel=1e-2)
    assert r["ratio_per_cpu_second"] > 0 and r["ratio_median_of_pairs"] > 0
    assert [v["variant"] for v in r["options"]][:2] == ["fp32 eager", "+ channels-last"]
    assert res["machine"]["torch"] == torch.__version__
