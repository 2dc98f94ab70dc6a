"""DistributedDataParallel on the CPU: 2 processes with the gloo backend, launched by torchrun
(``python -m torch.distributed.run``), as a student would on several GPUs with NCCL."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import load_checkpoint
from course_lib.cli import main
from course_lib.recipes import RECIPES
from course_lib.train import GANTrainer, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DIST_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID", "GROUP_RANK", "ROLE_RANK")


def _torchrun(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               TQDM_DISABLE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # a hang (e.g. ranks waiting on each other) must fail, not block
        pytest.fail(f"torchrun did not finish in {timeout} s: {' '.join(cmd)}\n{exc.stderr}")


def _finite(history: dict) -> bool:
    return all(math.isfinite(v) for values in history.values() for v in values)


@pytest.mark.slow
def test_two_process_run_writes_one_set_of_files_that_resume_in_one_process(tmp_path):
    out = tmp_path / "ddp"
    proc = _torchrun(["-m", "course_lib", "train", "--data", "ring8", "--steps", "30", "--checkpoint-every", "10",
                      "--out", str(out)], cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    # rank 0 reports the effective (global) batch and learning rate, once
    recipe = RECIPES["ring8"]
    assert f"effective batch {recipe['batch_size']} = 2 processes x {recipe['batch_size'] // 2}" in text
    assert f"effective lr G {recipe['lr_g']:g} D {recipe['lr_d']:g}" in text
    assert text.count("[course_lib] ring8") == 1 and text.count("wrote ") == 1
    # only rank 0 writes, and only the run's folder
    assert sorted(p.name for p in out.iterdir()) == [".lock", "checkpoint.pt", "config.json", "metrics.json",
                                                     "samples.png"]  # .lock: the run-folder lock (rundir)
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 30
    assert len(state["history"]["d_loss"]) == 30 and _finite(state["history"])
    assert json.loads((out / "metrics.json").read_text())["final"]["world_size"] == 2

    # the distributed checkpoint continues in a single process (a plain state dict: no 'module.' prefixes)
    assert not any(k.startswith("module.") for k in state["G"])
    single = GANTrainer.from_checkpoint(out / "checkpoint.pt", verbose=False, steps=45)
    assert single.world_size == 1 and single.local_batch == RECIPES["ring8"]["batch_size"] and single.step == 30
    for k, v in single.G.state_dict().items():
        assert torch.equal(v, state["G"][k])
    single.fit(progress=False)
    assert single.step == 45 and len(single.history["g_loss"]) == 45 and _finite(single.history)
    assert single.history["d_loss"][:30] == state["history"]["d_loss"]


@pytest.mark.slow
def test_a_single_process_checkpoint_resumes_in_two_processes(tmp_path):
    first = GANTrainer(TrainConfig.for_data("ring8", steps=20), out_dir=tmp_path / "single", verbose=False)
    first.fit(progress=False)
    proc = _torchrun(["-m", "course_lib", "train", "--resume", str(tmp_path / "single" / "checkpoint.pt"),
                      "--steps", "32", "--out", str(tmp_path / "resumed"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    state = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 32
    assert state["history"]["d_loss"][:20] == first.history["d_loss"]  # the earlier history is kept
    assert len(state["history"]["d_loss"]) == 32 and _finite(state["history"])
    assert any(not torch.equal(v, first.G.state_dict()[k]) for k, v in state["G"].items())  # trained further


SYNC_SCRIPT = """
import torch, torch.distributed as dist
torch.set_num_threads(1)
from course_lib.train import TrainConfig, GANTrainer
for loss in ("nonsaturating", "wgan-gp"):  # wgan-gp: DDP through the double backward of the penalty
    tr = GANTrainer(TrainConfig.for_data("digits", steps=2, batch_size=32, image_size=8, loss=loss,
                                          conditional=False), verbose=False)
    x, _ = tr._real_batch()
    tr.batches_drawn = 0
    tr.fit(progress=False)
    vec = torch.cat([p.detach().flatten() for m in (tr.G, tr.D) for p in m.parameters()])
    got = [torch.zeros_like(vec) for _ in range(2)]
    dist.all_gather(got, vec)
    firsts = [torch.zeros_like(x) for _ in range(2)]
    dist.all_gather(firsts, x.contiguous())
    if tr.rank == 0:
        assert not torch.equal(firsts[0], firsts[1]), "both ranks drew the same real batch"
        print(loss, "max weight difference between ranks", (got[0] - got[1]).abs().max().item(), flush=True)
tr.close()
"""


@pytest.mark.slow
def test_ranks_see_different_shards_and_keep_identical_weights(tmp_path):
    script = tmp_path / "sync.py"
    script.write_text(textwrap.dedent(SYNC_SCRIPT))
    proc = _torchrun([str(script)], cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if "max weight difference" in ln]
    assert len(lines) == 2
    for ln in lines:
        assert float(ln.rsplit(" ", 1)[1]) == 0.0, ln  # gradients are all-reduced: the replicas never drift


def test_a_world_size_that_does_not_divide_the_batch_is_a_clear_error(monkeypatch, tmp_path, capsys):
    # checked before any process group is set up, so it fails fast in every rank without waiting on the others
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match=r"batch_size 255 is not divisible by the world size 2.*multiple of 2"):
        GANTrainer(TrainConfig.for_data("ring8", steps=2, batch_size=255), verbose=False)
    code = main(["train", "--data", "ring8", "--steps", "2", "--batch-size", "255", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "batch_size 255 is not divisible by the world size 2" in capsys.readouterr().err
    assert not torch.distributed.is_initialized()
