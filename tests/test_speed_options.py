"""CPU tests of every GPU speed path of the training loop: mixed precision (bfloat16 autocast, the float16
fallback, the gradient scaler), channels-last, torch.compile, the option defaults (CUDA simulated), bad
devices, the speed tools that notebook 05 reaches through ``course_lib.speed`` (timing, host syncs, FLOPs, the
option ladder, memory, scaling), and the benchmark's plain loop (``benchmarks/plain_loop.py``) and script
(``benchmarks/throughput.py``)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import speed_options as speed_options_mod
from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.device import DeviceError
from course_lib import ladder, memory, speed
from course_lib.speed import measure_throughput, random_images
from course_lib.train import GANTrainer, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark-only plain loop lives there

from plain_loop import PlainLoop, compare_loops, measure_plain_loop  # noqa: E402
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
    assert tr.G_wrapped is tr.G and tr.D_wrapped is tr.D  # neither compiled nor wrapped


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
    original = tr.guard.check

    def spy(loss, params, scaled):
        seen.append(scaled)
        return original(loss, params, scaled)

    monkeypatch.setattr(tr.guard, "check", spy)
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
    monkeypatch.setattr(speed_options_mod, "_cuda_bf16",
                        lambda native: bf16 == "native" or (bf16 == "emulated" and not native))
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
    # the forward passes go through compiled modules
    assert tr.G_wrapped is not tr.G and hasattr(tr.G_wrapped, "_orig_mod")
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
    ladder = {row["rung"]: row for row in r["ladder"]}
    assert list(ladder)[:3] == ["fp32 eager", "+ TF32", "+ channels-last"]
    assert ladder["fp32 eager"]["speedup"] == 1.0 and ladder["fp32 eager"]["mfu"] > 0
    assert r["course_mfu"] == ladder["fp32 eager"]["mfu"] and r["flops_per_step"] > 0
    if not torch.cuda.is_available():
        assert ladder["+ TF32"]["status"] == ladder["+ CUDA graphs"]["status"] == "n/a on cpu"
        assert "n/a on cpu" in proc.stdout
    assert res["machine"]["torch"] == torch.__version__


# ----------------------------------------------------------------------------- host syncs

def _tiny_trainer(**changes) -> GANTrainer:
    cfg = TrainConfig.for_data("mnist", **{**dict(image_size=8, batch_size=8, g_width=4, d_width=4, latent_dim=4,
                                                  ema_decay=None, steps=10**6, checkpoint_every=10**6), **changes})
    return GANTrainer(cfg, dataset=random_images(32, 1, 8), verbose=False)


def test_count_host_syncs_counts_each_kind_of_read_and_names_the_line():
    t = torch.tensor([1.5, 2.5])

    def step():
        t.sum().item()                      # 1
        t.tolist()                          # 2
        if torch.isfinite(t).all():         # 3 (bool)
            float(t[0])                     # 4
        f"{t[1]:.1f}"                       # 5 (__format__; its internal .item() is not counted again)
        repr(t)                             # 6 (print(t) calls it; the tolist inside is not counted again)
        t * 2                               # no read

    r = speed.count_host_syncs(step, steps=2)
    assert r["total"] == 12 and r["per_step"] == 6
    assert r["by_kind"] == {"item": 2, "tolist": 2, "__bool__": 2, "__float__": 2, "__format__": 2, "__repr__": 2}
    assert all("test_speed_options.py" in site for site in r["sites"])
    assert sum(r["sites"].values()) == r["total"]
    # the wrappers are gone afterwards
    assert "item" not in torch.Tensor.__dict__ and "__bool__" not in torch.Tensor.__dict__
    assert speed.count_host_syncs(lambda: t * 2)["total"] == 0


def test_count_host_syncs_ignores_the_optimisers_cpu_step_counter_but_counts_the_course_step():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w])

    def adam_step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()                          # Adam reads its step count (a CPU tensor even in a CUDA run)

    assert speed.count_host_syncs(adam_step, steps=3)["total"] == 0
    tr = _tiny_trainer()
    tr.fit(steps=1, progress=False)
    r = speed.count_host_syncs(tr.train_step, steps=2)
    assert r["total"] == sum(r["by_kind"].values()) == sum(r["sites"].values())
    assert all(site.startswith("course_lib/") for site in r["sites"]), r["sites"]
    assert len(tr.history["d_loss"]) == 3   # the steps really ran


def test_count_host_syncs_restores_the_methods_when_the_step_raises():
    def bad():
        torch.tensor(1.0).item()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        speed.count_host_syncs(bad)
    assert "item" not in torch.Tensor.__dict__ and torch.tensor(2.0).item() == 2.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message without CUDA")
def test_assert_no_cuda_syncs_without_cuda_points_to_the_cpu_counter():
    with pytest.raises(RuntimeError, match="needs a CUDA device.*count_host_syncs"):
        speed.assert_no_cuda_syncs(lambda: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_assert_no_cuda_syncs_catches_an_item_and_passes_queued_work_cuda_sync():
    x = torch.randn(256, 256, device="cuda")
    speed.assert_no_cuda_syncs(lambda: x @ x)            # queued work only: no synchronisation
    with pytest.raises(speed.HostSyncError, match="synchronised the GPU"):
        speed.assert_no_cuda_syncs(lambda: (x @ x).sum().item())
    assert torch.cuda.get_sync_debug_mode() == 0        # restored


# ----------------------------------------------------------------------------- FLOPs, peaks, MFU

def test_count_flops_counts_forward_and_backward_of_a_linear_layer():
    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)
    assert speed.count_flops(lambda: lin(x)) == 2 * 8 * 64 * 32
    # backward: the weight's gradient (x needs none) adds one more product of the same size
    assert speed.count_flops(lambda: lin(x).sum().backward()) == 2 * 2 * 8 * 64 * 32


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A10", "A10"), ("NVIDIA A10G", None), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", None), ("Tesla T4", "T4"), ("Tesla V100-SXM2-16GB", "V100"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA GeForce RTX 3090", "RTX 3090")])
def test_gpu_peak_table_matches_device_names(name, expected):
    peak = speed.gpu_peak(name)
    assert (peak.name if peak else None) == expected


def test_gpu_peak_table_is_ordered_by_precision():
    for p in speed.GPU_PEAKS:
        assert p.fp16 >= p.fp32 > 0
        if p.bf16 is not None:
            assert p.bf16 >= (p.tf32 or 0) >= p.fp32 * 0.99
    t4 = speed.gpu_peak("Tesla T4")
    assert t4.get("bf16") is None and t4.get("fp16") == 65e12   # no native bfloat16 on a T4


def test_peak_flops_on_cpu_is_a_measured_matmul_and_bad_precision_is_refused():
    m = speed.measure_matmul_peak("cpu", n=256, repeats=2)
    assert m["flops_per_s"] > 1e8 and m["n"] == 256
    # the default size shrinks where the products would be slow (bfloat16 on a CPU without bf16 instructions)
    assert speed.measure_matmul_peak("cpu", torch.bfloat16, max_seconds=1e-6)["n"] == 256
    assert speed.measure_matmul_peak("cpu", repeats=1)["n"] in (256, 512, 1024, 2048)
    p = speed.peak_flops("cpu", "fp32")
    assert p["flops_per_s"] > 1e8 and p["source"].startswith("measured")
    with pytest.raises(ValueError, match="precision must be one of"):
        speed.peak_flops("cpu", "fp8")


def test_measure_mfu_is_achieved_over_peak():
    tr = _tiny_trainer()
    flops = speed.count_flops(_tiny_trainer().train_step)
    r = speed.measure_mfu(tr, steps=3, warmup=1, peak=1e12)
    assert r["flops_per_step"] == flops > 0
    assert r["peak_flops_per_s"] == 1e12 and r["precision"] == "fp32"
    assert r["mfu"] == pytest.approx(r["achieved_flops_per_s"] / 1e12)
    assert 0 < r["mfu"] < 1
    with pytest.raises(ValueError, match="positive number of FLOP/s"):
        speed.measure_mfu(tr, steps=1, warmup=0, peak=0.0)


# ----------------------------------------------------------------------------- the option ladder

def _tiny_config(opts=None, batch_size=8):
    return TrainConfig.for_data("mnist", image_size=8, batch_size=batch_size, g_width=4, d_width=4, latent_dim=4,
                                ema_decay=None, steps=10**6, checkpoint_every=10**6, **(opts or {}))


def test_option_ladder_on_cpu_measures_what_runs_and_announces_the_rest():
    seen = []
    rows = speed.option_ladder(_tiny_config, random_images(32, 1, 8), steps=2, warmup=1, progress=seen.append)
    assert [r["rung"] for r in rows] == [r.name for r in speed.LADDER] and seen == rows
    by = {r["rung"]: r for r in rows}
    assert by["fp32 eager"]["status"] == "measured" and by["fp32 eager"]["speedup"] == 1.0
    for name in ("+ channels-last", "+ AMP bf16"):
        assert by[name]["status"] == "measured" and by[name]["images_per_s"] > 0
    if not torch.cuda.is_available():
        assert by["+ TF32"]["status"] == by["+ CUDA graphs"]["status"] == "n/a on cpu"
        assert "CUDA graphs" in by["+ CUDA graphs"]["note"] and by["+ CUDA graphs"]["images_per_s"] is None
        assert by["+ torch.compile"]["status"] == "skipped" and "compile_off_gpu" in by["+ torch.compile"]["note"]
    # cumulative: each rung keeps the options of the one before
    assert by["+ AMP bf16"]["options"] == {"amp": "bf16", "channels_last": True, "compile": False, "tf32": True,
                                           "cuda_graphs": False}
    assert "| + CUDA graphs |" in speed.format_ladder(rows)


def test_option_ladder_reports_a_failing_rung_and_goes_on(monkeypatch):
    real = ladder._measure_rung

    def flaky(make_config, opts, rung, *args):
        if rung.name == "+ channels-last":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(make_config, opts, rung, *args)

    monkeypatch.setattr(ladder, "_measure_rung", flaky)
    rows = speed.option_ladder(_tiny_config, random_images(32, 1, 8), steps=1, warmup=0)
    by = {r["rung"]: r for r in rows}
    assert by["+ channels-last"]["status"] == "failed" and "OutOfMemoryError" in by["+ channels-last"]["note"]
    assert by["+ AMP bf16"]["status"] == "measured"


def test_tf32_enabled_sets_and_restores_both_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with speed.tf32_enabled(False):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        with speed.tf32_enabled(True):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(TypeError, match="True or False"):
        with speed.tf32_enabled("yes"):
            pass


def test_reduce_overhead_off_cuda_is_an_announced_fallback():
    lin = torch.nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="CUDA graphs.*mode='default' instead"):
        speed.compile_for_device(lin, mode="reduce-overhead", device="cpu")
    with pytest.raises(ValueError, match="mode must be one of"):
        speed.compile_for_device(lin, mode="fast")


# ----------------------------------------------------------------------------- memory against batch size

@pytest.mark.parametrize("exc, oom", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), True), (MemoryError(), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
    (RuntimeError("MPS backend out of memory"), True), (RuntimeError("shape mismatch"), False),
    (ValueError("out of memory"), False)])
def test_is_out_of_memory(exc, oom):
    assert speed.is_out_of_memory(exc) is oom


def test_saved_tensor_bytes_counts_each_storage_once_and_no_weights():
    net = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    x = torch.randn(4, 10)
    # saved: the input x (4x10) and the ReLU output (4x20), which the ReLU and the second layer both keep
    assert speed.saved_tensor_bytes(lambda: net(x), (net,)) == 4 * (4 * 10 + 4 * 20)
    assert speed.saved_tensor_bytes(lambda: net(x)) == 4 * (4 * 10 + 4 * 20)


def test_memory_sweep_grows_with_the_batch_and_stops_at_the_cap():
    ds = random_images(64, 1, 8)
    free = speed.memory_sweep(_tiny_config_b, [8, 16, 32], ds, steps=1, warmup=0)
    mem = [r["memory_bytes"] for r in free["rows"]]
    assert free["largest_fit"] == 32 and mem == sorted(mem) and mem[0] < mem[-1]
    again = speed.memory_sweep(_tiny_config_b, [8, 16, 32], ds, steps=1, warmup=0)
    assert [r["memory_bytes"] for r in again["rows"]] == mem       # a measurement, not the allocator's mood
    cap = (mem[0] + mem[1]) // 2
    capped = speed.memory_sweep(_tiny_config_b, [32, 8, 16, 64], ds, steps=1, warmup=0, memory_cap_bytes=cap)
    assert [r["batch_size"] for r in capped["rows"]] == [8, 16]          # sorted, stopped at the first failure
    assert [r["status"] for r in capped["rows"]] == ["ok", "out of memory"]
    assert capped["largest_fit"] == 8 and "over the cap" in capped["rows"][-1]["note"]


def _tiny_config_b(b):
    return _tiny_config(batch_size=b)


def test_memory_sweep_catches_a_real_out_of_memory_error_and_raises_other_errors(monkeypatch):
    real = memory.time_steps

    def alloc(step, steps, warmup, device, images_per_step):
        if images_per_step >= 16:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 123456789 bytes")
        return real(step, steps, warmup, device, images_per_step)

    monkeypatch.setattr(memory, "time_steps", alloc)
    r = speed.memory_sweep(_tiny_config_b, [8, 16, 32], random_images(64, 1, 8), steps=1, warmup=0)
    assert r["largest_fit"] == 8 and r["rows"][-1]["status"] == "out of memory"
    assert "can't allocate memory" in r["rows"][-1]["note"]
    monkeypatch.setattr(memory, "time_steps", lambda *a: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        speed.memory_sweep(_tiny_config_b, [8], random_images(64, 1, 8))
    with pytest.raises(ValueError, match="batch_sizes is empty"):
        speed.memory_sweep(_tiny_config_b, [], random_images(64, 1, 8))


def test_measure_loader_counts_every_image_of_the_last_epoch():
    ds = torch.utils.data.TensorDataset(torch.randn(40, 1, 4, 4))
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    r = speed.measure_loader(loader, "cpu", epochs=2)
    assert r["images"] == 40 and r["images_per_s"] > 0 and r["num_workers"] == 0


# ----------------------------------------------------------------------------- several processes

def test_sync_batchnorm_is_an_announced_no_op_in_one_process_and_on_cpu(monkeypatch):
    import torch.distributed as dist

    D = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.warns(UserWarning, match="no effect in a single process.*torchrun"):
        assert speed.convert_sync_batchnorm(D) is D
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    with pytest.warns(UserWarning, match="needs GPU tensors.*per process"):
        assert speed.convert_sync_batchnorm(D) is D
    converted = speed.convert_sync_batchnorm(copy.deepcopy(D), device="cuda")   # DDP on GPUs: converted
    assert isinstance(converted[1], torch.nn.SyncBatchNorm)
    assert isinstance(D[1], torch.nn.BatchNorm2d) and not isinstance(D[1], torch.nn.SyncBatchNorm)


def test_torchrun_command_for_several_machines():
    cmd = speed.torchrun_command(8, ["-m", "course_lib", "train"], nnodes=2, node_rank=1, endpoint="10.0.0.1:29500",
                                 python="python")
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"]
    for part in ("--nnodes=2", "--node-rank=1", "--nproc-per-node=8", "--rdzv-backend=c10d",
                 "--rdzv-endpoint=10.0.0.1:29500"):
        assert part in cmd
    assert cmd[-3:] == ["-m", "course_lib", "train"]
    with pytest.raises(ValueError, match="node_rank must be an integer in \\[0, 1\\]"):
        speed.torchrun_command(8, [], nnodes=2, node_rank=2)
    with pytest.raises(ValueError, match="host:port"):
        speed.torchrun_command(1, [], endpoint="10.0.0.1")


@pytest.mark.slow
def test_scaling_efficiency_runs_one_and_two_processes_through_the_c10d_rendezvous():
    r = speed.scaling_efficiency((1, 2), per_process_batch=16, steps=3, warmup=1, image_size=8, width=4,
                                 timeout=240)
    one, two = r["rows"]
    assert (one["processes"], two["processes"]) == (1, 2) and (one["world_size"], two["world_size"]) == (1, 2)
    assert (one["global_batch"], two["global_batch"]) == (16, 32)           # weak scaling
    assert one["speedup"] == one["efficiency"] == 1.0 and two["ideal"] == 2.0
    assert two["efficiency"] == pytest.approx(two["speedup"] / 2) and two["images_per_s"] > 0
    with pytest.raises(ValueError, match="number of processes must be a positive integer"):
        speed.scaling_efficiency((0,))


def test_sync_bn_converts_g_and_d_in_place_keeping_their_parameters(monkeypatch):
    import torch.distributed as dist

    from course_lib import distributed, models
    G, D = models.build_models("dcgan", (1, 16, 16), 8, 8, 8)          # batch norm in G and in D
    params = [id(p) for p in (*G.parameters(), *D.parameters())]
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    distributed.convert_sync_batchnorm(torch.nn.ModuleList([G, D]), device="cuda")
    kinds = [type(m) for m in (*G.modules(), *D.modules()) if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert kinds and all(k is torch.nn.SyncBatchNorm for k in kinds)
    assert [id(p) for p in (*G.parameters(), *D.parameters())] == params    # the optimisers' tensors, unchanged
    assert set(G.state_dict()) == set(models.build_models("dcgan", (1, 16, 16), 8, 8, 8)[0].state_dict())


def test_sync_bn_in_training_is_an_announced_no_op_in_one_process_and_a_flag_of_the_command_line(tmp_path):
    from course_lib import cli
    from course_lib.train import GANTrainer, TrainConfig
    cfg = TrainConfig.for_data("digits", steps=2, batch_size=16, g_width=8, d_width=8, loss="nonsaturating",
                               spectral_norm=False, conditional=False, sync_bn=True)
    with pytest.warns(UserWarning, match="no effect in a single process"):
        trainer = GANTrainer(cfg, verbose=False)
    trainer.fit()
    assert trainer.step == 2 and not any(isinstance(m, torch.nn.SyncBatchNorm) for m in trainer.G.modules())
    with pytest.warns(UserWarning, match="no batch norm layers"):
        runtime_mlp = GANTrainer(TrainConfig.for_data("ring8", steps=1, sync_bn=True), verbose=False)
    assert runtime_mlp.config.sync_bn is True
    args = cli.build_parser().parse_args(["train", "--out", str(tmp_path / "r"), "--sync-bn"])
    assert args.sync_bn is True
    with pytest.raises(TypeError, match="sync_bn must be True or False"):
        TrainConfig(sync_bn="yes")
