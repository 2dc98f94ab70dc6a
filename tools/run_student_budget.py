#!/usr/bin/env python
"""Run the solution notebooks as a student without a GPU would, and check what their text promises.

Every notebook in ``solutions/`` (or the ones named) is executed top to bottom with ``COURSE_BUDGET=cpu``
(``COURSE_QUICK`` removed), in a fresh kernel started from the notebook's folder. For each one it records

* the **wall time** (kernel start to last cell) and the three slowest cells;
* the **peak memory** of the kernel: the resident set size (RSS) of the kernel process and all its children,
  summed, sampled every 0.2 s (psutil, or ``/proc`` where psutil is missing);
* the **claims**: printed numbers that the prose discusses, each read from the outputs with a regular expression
  and compared with the range the prose states (the ``CLAIMS`` registry below);

and writes a markdown table with the machine it ran on. Targets: every notebook finishes within the
compute time its header estimates (``TIME_LIMITS``), no kernel peaks above 1.5 GB (a 2 GB Binder instance with
JupyterLab beside it), and every claim holds on the seed the notebook uses.

Not part of the test suite: all eleven notebooks take about 35 minutes on a 2-core CPU. Usage:

    python tools/run_student_budget.py                               # every notebook, table on stdout
    python tools/run_student_budget.py 00 07 --out budget.md         # notebooks whose name starts with 00 / 07
    python tools/run_student_budget.py --threads 1 --json budget.json
    python tools/run_student_budget.py --threads 1 --site-cache      # and keep the outputs for the website

With ``--site-cache`` the kernels get the website's environment (``tools/build_site.py``: inline figures, static
widgets, offline) and each notebook that ran without an error is stored in the site's cache for its budget, so
``python tools/build_site.py --budget cpu`` then renders those outputs instead of running the notebook again.

Exit status: 0 when every notebook ran and met its targets, 1 otherwise.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_GB = 1.5
STARTUP_ALLOWANCE_S = 60  # kernel start, imports and the cells around the training, added to a header's estimate


@dataclass(frozen=True)
class Claim:
    """A result the prose states: ``pattern``'s first group, in the notebook's printed output, must be
    ``expected`` (a string) or lie in ``expected`` = (lo, hi) (numbers, inclusive). Every match is checked."""

    notebook: str
    what: str
    pattern: str
    expected: str | tuple[float, float]

    def check(self, text: str) -> tuple[list[str], bool | None]:
        """(the values printed, whether all hold); None when the pattern never matched (the claim is unread)."""
        found = [m.group(1) for m in re.finditer(self.pattern, text, re.MULTILINE)]
        if not found:
            return found, None
        if isinstance(self.expected, str):
            return found, all(v == self.expected for v in found)
        lo, hi = self.expected
        return found, all(lo <= float(v.replace(",", "")) <= hi for v in found)


# Compute time each notebook's header promises with the CPU budget, in seconds, and the header's words. A
# notebook whose header gives no training time is expected to run in seconds (2 minutes allowed). The header
# estimate is for training; STARTUP_ALLOWANCE_S is added for the rest. Keep this in step with the headers.
TIME_LIMITS: dict[str, tuple[float | None, str]] = {
    "00_welcome": (120, "no training"),
    "01_gan_theory": (120, "no training: under a minute with the cpu budget"),
    "02_deriving_the_losses": (120, "no training: under a minute with the cpu budget"),
    "03_first_gan_2d": (8 * 60 + STARTUP_ALLOWANCE_S, "about 8 minutes of training on a laptop CPU"),
    "04_dcgan_and_the_article": (10 * 60 + STARTUP_ALLOWANCE_S, "about 10 minutes of training on a laptop CPU"),
    "05_gpu_training": (2 * 60 + STARTUP_ALLOWANCE_S, "about 2 minutes of computing on a laptop CPU"),
    "06_evaluating_gans": (6 * 60 + STARTUP_ALLOWANCE_S, "about 6 minutes of computing on a laptop CPU"),
    "07_stabilising_training": (12 * 60 + STARTUP_ALLOWANCE_S, "about 12 minutes of training on a laptop CPU"),
    "08_conditional_gans": (5 * 60 + STARTUP_ALLOWANCE_S, "about 5 minutes of computing on a laptop CPU with the "
                                                          "`cpu` budget"),
    "09_applications_and_responsibility": (10 * 60 + STARTUP_ALLOWANCE_S,
                                           "about 10 minutes of computing on a laptop CPU"),
    "10_gans_and_diffusion": (6 * 60 + STARTUP_ALLOWANCE_S, "about 6 minutes of computing on a laptop CPU with the "
                                                            "`cpu` budget"),
}

# Results the prose discusses. Conditional prose ("if X, it means Y") still expects X on the notebook's seed:
# when a claim fails here, the text must be rewritten or the run fixed. Add the claims of a notebook when its
# prose states a result.
CLAIMS: tuple[Claim, ...] = (
    Claim("00_welcome", "the student default without a GPU is the cpu budget", r"budget mode: (\w+)", "cpu"),
    Claim("00_welcome", "the budget example trains 3,000 steps with the cpu budget",
          r"would train for (\d+) steps", (3000, 3000)),
    Claim("00_welcome", "Fashion-MNIST's test split: 10,000 images of (1, 32, 32), pixels in [-1, 1]",
          r"^(\d+) \(1, 32, 32\) -1\.0 1\.0 \[", (10000, 10000)),
    Claim("00_welcome", "Fashion-MNIST's test split: 1,000 images per class",
          r"^\d+ \(1, 32, 32\) -1\.0 1\.0 \[([\d, ]+)\]", ", ".join(["1000"] * 10)),
    Claim("01_gan_theory", "the trained D is within 0.05 of D* with the cpu budget",
          r"max \|D\(x\) - D\*\(x\)\| where p_data \+ p_g > 0\.05: ([\d.]+)", (0, 0.05)),
    Claim("01_gan_theory", "the gap V(D*, G) - V(trained D, G) is below 0.005 with the cpu budget",
          r"^gap V\(D\*, G\) - V\(trained D, G\) = (-?[\d.]+)", (0, 0.005)),
    Claim("01_gan_theory", "V(D*, G) = -log 4 + 2 JSD to within 1e-6", r"largest difference ([\d.e+-]+)$", (0, 1e-6)),
    Claim("01_gan_theory", "the JSD prefers both modes badly to one mode well, by only a few percent",
          r"^both badly, N\(0, 2\.06\^2\)\s+JSD = [\d.]+\s+\((-?\d+) % lower\)", (1, 15)),
    Claim("01_gan_theory", "no single Gaussian of the grid comes near JSD 0 (asserted above 0.19)",
          r"^best of \d+ Gaussians: .*JSD = ([\d.]+)", (0.19, 0.7)),
    Claim("02_deriving_the_losses", "float32 sigmoid rounds to 1 from about 16.64 (24 log 2)",
          r"sigmoid\(l\) is exactly 1 from l = ([\d.]+) on", (16.6, 16.7)),
    Claim("02_deriving_the_losses", "the warmed-up D rejects the fakes (mean D(G(z)) < 0.01)",
          r"^mean D\(G\(z\)\) after the warm-up: ([\d.]+)", (0, 0.01)),
    Claim("02_deriving_the_losses", "the saturating gradient is over ten times smaller (the ratio printed)",
          r"^gradient norm over G's parameters: .*ratio (\d+)", (10, 100000)),
    Claim("02_deriving_the_losses", "Adam's first step is about as long with either loss (saturating)",
          r"^Adam, saturating\s*: step length ([\d.e+-]+)", (0.05, 0.09)),
    Claim("02_deriving_the_losses", "Adam's first step is about as long with either loss (non-saturating)",
          r"^Adam, non-saturating: step length ([\d.e+-]+)", (0.05, 0.09)),
    Claim("02_deriving_the_losses", "SGD's saturating step shrinks by the gradients' ratio",
          r"^ SGD, saturating\s*: step length ([\d.e+-]+)", (0, 5e-5)),
    Claim("02_deriving_the_losses", "on the ring batch the two gradients nearly agree (cosine > 0.99)",
          r"^ring, \d+ fakes: .*cosine\(saturating, non-saturating\) = ([\d.]+)", (0.99, 1.0)),
    Claim("02_deriving_the_losses", "in 1-D against D* the cosine drops (about 0.7)",
          r"^1-D, \d+ fakes: .*cosine = ([\d.]+)", (0.5, 0.85)),
    Claim("02_deriving_the_losses", "the non-saturating criterion prefers one mode (one mode: 0.26)",
          r"^one mode, N\(2, 0\.5\^2\)\s+2 JSD = [\d.]+\s+KL\(p_g \|\| p_data\) - 2 JSD = ([\d.]+)", (0.25, 0.27)),
    Claim("02_deriving_the_losses", "the non-saturating criterion prefers one mode (both badly: 1.70)",
          r"^both badly, N\(0, 2\.06\^2\)\s+2 JSD = [\d.]+\s+KL\(p_g \|\| p_data\) - 2 JSD = ([\d.]+)", (1.6, 1.8)),
    Claim("03_first_gan_2d", "the student's plain step does not cover the ring at the end (collapse or hopping)",
          r"^\s*your step \|.*\| (\d+)/8 modes", (0, 7)),
    Claim("03_first_gan_2d", "the same plain step in the library's loop does not cover the ring either",
          r"^\s*plain, library loop \|.*\| (\d+)/8 modes", (0, 7)),
    Claim("03_first_gan_2d", "the recipe (all five remedies) covers all 8 modes",
          r"^\+ 2-D noise \(the recipe\) \|.*\| (\d+)/8 modes", (8, 8)),
    Claim("03_first_gan_2d", "the recipe has >= 95 % high-quality samples",
          r"^\+ 2-D noise \(the recipe\) \|.*\| \d+/8 modes, ([\d.]+)% high quality", (95, 100)),
    Claim("03_first_gan_2d", "Exercise 3's worked example (latent_dim=1) covers 8/8 modes",
          r"^\{'latent_dim': 1\}: (\d+)/8 modes", (8, 8)),
    Claim("03_first_gan_2d", "Exercise 3's worked example (latent_dim=1) keeps >= 95 % high quality",
          r"^\{'latent_dim': 1\}: \d+/8 modes, ([\d.]+)% high quality", (95, 100)),
    Claim("04_dcgan_and_the_article", "fault 4: BCELoss on sigmoid(20) clamps at 100 with a zero gradient",
          r"BCELoss\(sigmoid\(20\), 0\) = [\d.]+, gradient (-?[\d.]+) \|", (0, 0)),
    Claim("04_dcgan_and_the_article", "fault 4: on the logit the gradient is 1",
          r"on the logit: [\d.]+, gradient ([\d.]+)", (1, 1)),
    Claim("04_dcgan_and_the_article", "fault 6: the listing's D step leaves gradients in G",
          r"gradient norm in G after the D step: ([\d.]+) \(should be 0\)", (0.001, 1e6)),
    Claim("04_dcgan_and_the_article", "fault 6 fixed: with .detach() G holds no gradient",
          r"gradient norm in G after the D step: ([\d.]+)$", (0, 0)),
    Claim("04_dcgan_and_the_article", "fault 8: PyTorch's default start saturates a share of the pixels",
          r"^PyTorch default .*pixels with \|x\| > 0\.9: ([\d.]+) %", (1, 100)),
    Claim("04_dcgan_and_the_article", "fault 8: DCGAN's start is faint grey (no saturated pixels)",
          r"^DCGAN init .*pixels with \|x\| > 0\.9: ([\d.]+) %", (0, 0.5)),
    Claim("04_dcgan_and_the_article", "fault 9: the requires-grad message (not a device message)",
          r"^RuntimeError: (Can't call numpy\(\) on Tensor that requires grad)",
          "Can't call numpy() on Tensor that requires grad"),
    Claim("04_dcgan_and_the_article", "the DCGAN trains on all 60,000 images",
          r"^([\d,]+) images \(1, 32, 32\)", (60000, 60000)),
    Claim("04_dcgan_and_the_article", "the DCGAN trains 1,500 steps of batch 128 with the cpu budget",
          r"\| (\d+) steps, batch 128,", (1500, 1500)),
    Claim("04_dcgan_and_the_article", "Radford et al.'s loss: cross-entropy with the non-saturating G target",
          r"^loss '(\w+)' \|", "nonsaturating"),
    Claim("04_dcgan_and_the_article", "no spectral norm (Radford et al.'s D uses batch norm)",
          r"\| spectral norm (\w+),", "False"),
    Claim("04_dcgan_and_the_article", "G: batch norm after every transposed convolution but the last (tanh)",
          r"^convolutions followed by batch norm: G (\[[\d, ]*\] of \d+),", "[1, 2, 3] of 4"),
    Claim("04_dcgan_and_the_article", "D: batch norm on every layer but the first",
          r"^convolutions followed by batch norm: .*, D (\[[\d, ]*\] of \d+) \(then", "[2, 3] of 3"),
    Claim("05_gpu_training", "a loop that reads its losses every step makes 3 host reads per step",
          r"^a loop that reads its losses every step: (\d+) host reads per step", (3, 3)),
    Claim("05_gpu_training", "the course's train_step makes no host read in steady state",
          r"^the course's train_step: (\d+) host reads per step", (0, 0)),
    Claim("05_gpu_training", "float16 overflows 70000 to inf",
          r"^torch\.float16 .*-> \[(\w+), ", "inf"),
    Claim("05_gpu_training", "bfloat16: a confident D's sigma(8) rounds to exactly 1",
          r"^torch\.bfloat16\s+D = \[[^,\]]+, [^,\]]+, ([^,\]]+),", "1.0"),
    Claim("05_gpu_training", "bfloat16: log(1 - D) then becomes -inf",
          r"^torch\.bfloat16\s+D = \[[^\]]*\]\s+-log\(1 - D\) = \[[^,\]]+, [^,\]]+, ([^,\]]+),", "inf"),
    Claim("05_gpu_training", "float16: sigma(12) rounds to exactly 1",
          r"^torch\.float16\s+D = \[[^,\]]+, [^,\]]+, [^,\]]+, ([^,\]]+)\]", "1.0"),
    Claim("05_gpu_training", "a gradient norm of 300, squared, overflows float16",
          r"^gradient norm 300, squared, in float16: (\w+)", "inf"),
    Claim("05_gpu_training", "float16 flushes a gradient of 1e-8 to zero",
          r"^gradient 1e-8 in float16: ([\d.]+);", (0, 0)),
    Claim("05_gpu_training", "the gradient scaler keeps a gradient of 1e-8",
          r"^gradient 1e-8 in float16: .*unscaled in float32: ([\d.e+-]+)", (0.9e-8, 1.1e-8)),
    Claim("05_gpu_training", "Exercise 2's example: 4 GPUs x 128 = 512, lr 8e-4 by the linear rule",
          r"^4 GPUs x 128: batch 512, lr ([\d.e-]+) by the linear rule", "0.0008"),
    Claim("06_evaluating_gans", "non-saturating loss at equilibrium: D loss 2 log 2",
          r"^nonsaturating\s+D loss ([\d.]+)", (1.386, 1.386)),
    Claim("06_evaluating_gans", "non-saturating loss at equilibrium: G loss log 2",
          r"^nonsaturating\s+D loss [\d.]+ \| G loss ([+-]?[\d.]+)", (0.693, 0.693)),
    Claim("06_evaluating_gans", "hinge loss at equilibrium: D loss 2",
          r"^hinge\s+D loss ([\d.]+)", (2, 2)),
    Claim("06_evaluating_gans", "hinge loss at equilibrium: G loss 0",
          r"^hinge\s+D loss [\d.]+ \| G loss ([+-]?[\d.]+)", (0, 0)),
    Claim("06_evaluating_gans", "the short run trains notebook 04's DCGAN: the non-saturating loss's lines are drawn",
          r"^loss in use: (\w+)", "nonsaturating"),
    Claim("06_evaluating_gans", "the FD falls over the short run",
          r"^FD from the first to the last point: ([\d.]+)x lower", (1.2, 1000)),
    Claim("06_evaluating_gans", "in some intervals the generator loss rose while the FD fell",
          r"^intervals in which the generator loss rose while FD fell: (\d+)", (1, 15)),
    Claim("06_evaluating_gans", "the best FD of the short run is not at its last point",
          r"^best FD\s+step\s+(\d+):", (1, 399)),
    Claim("06_evaluating_gans", "toy ring: the collapsed generator keeps precision",
          r"^collapsed \(3 modes\)\s+([\d.]+)", (0.9, 1)),
    Claim("06_evaluating_gans", "toy ring: the collapsed generator loses recall",
          r"^collapsed \(3 modes\)\s+[\d.]+\s+([\d.]+)", (0, 0.5)),
    Claim("06_evaluating_gans", "toy ring: the collapsed generator loses coverage",
          r"^collapsed \(3 modes\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)", (0, 0.5)),
    Claim("06_evaluating_gans", "toy ring: the blurry generator loses precision",
          r"^blurry \(std x10\)\s+([\d.]+)", (0, 0.3)),
    Claim("06_evaluating_gans", "toy ring: the blurry generator keeps recall",
          r"^blurry \(std x10\)\s+[\d.]+\s+([\d.]+)", (0.9, 1)),
    Claim("06_evaluating_gans", "toy ring: the blurry generator loses density",
          r"^blurry \(std x10\)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", (0, 0.3)),
    Claim("06_evaluating_gans", "even a real set scores below 1 on precision, recall and coverage",
          r"^(?:precision|recall|coverage)\s+generated [\d.]+ \| real, floor pool ([\d.]+)", (0, 0.999)),
    Claim("06_evaluating_gans", "notebook 04's samples are below the blurred-real bar",
          r"^generated / blurred-real bar: [\d.]+ \((\w+) the bar\)", "below"),
    Claim("06_evaluating_gans", "memorisation: samples about as far as or farther than held-out images",
          r"\(ratio ([\d.]+)\)", (0.9, 3)),
    Claim("06_evaluating_gans", "memorisation: about 1 % or fewer samples suspiciously close",
          r"held-out distances: ([\d.]+)% \(about 1%", (0, 2)),
    Claim("06_evaluating_gans", "the FD floor shrinks about ten-fold from n = 100 to 1,000",
          r"the FD floor shrinks ([\d.]+)x", (6, 30)),
    Claim("06_evaluating_gans", "the KID floor's mean stays near 0, small next to the generated KID",
          r"at most ([\d.]+)x the generated KID", (0, 0.25)),
    Claim("06_evaluating_gans", "notebook 04's run is better than the short run on every metric with a direction",
          r"notebook 04's run is better on (\d+) of 5", (5, 5)),
    Claim("06_evaluating_gans", "notebook 04's verdicts: worse than real data at n = 1,000",
          r"^(?:frechet_distance|kid|precision|recall|coverage)\s+.*"
          r"\s(worse than real data|within noise of real data)$", "worse than real data"),
    Claim("07_stabilising_training", "spectral norm makes D (close to) 1-Lipschitz",
          r"^spectral_norm=True\s*: .*-> Lipschitz bound ([\d.]+)", (0.9, 1.2)),
    Claim("08_conditional_gans", "with the cpu budget the notebook loads the shipped conditional model",
          r"^generator: (the shipped model fashion-cgan)", "the shipped model fashion-cgan"),
    Claim("08_conditional_gans", "the labels steer the generator: an overall share several times chance (10 %)",
          r"^generated images classified as the requested class: ([\d.]+) %", (30, 100)),
    Claim("08_conditional_gans", "trained without sneakers, the generator asked for one is rarely read as a sneaker",
          r"^asked for a Sneaker: classified as Sneaker in (\d+) % of images", (0, 20)),
    Claim("08_conditional_gans", "the nine classes that were present are recognised far more often",
          r"^the other nine classes: classified as requested in (\d+) % on average", (45, 100)),
    Claim("09_applications_and_responsibility", "sampled tokens are cut off from the generator's gradient",
          r"carry a gradient path to the logits\? (\w+)", "False"),
    Claim("09_applications_and_responsibility", "the real-vs-real control's interval contains 50 %",
          r"^control, real vs real: .* chance 50% is (\w+) the interval", "inside"),
    Claim("09_applications_and_responsibility", "the detector separates notebook 04's images: interval above 50 %",
          r"^real vs generated:\s+held-out accuracy [\d.]+% \(95% interval ([\d.]+)%", (50.1, 100)),
    Claim("09_applications_and_responsibility", "without copying the median distance ratio is about 1 or above",
          r"^generated: median NN distance .* -> ratio ([\d.]+);", (0.9, 3)),
    Claim("09_applications_and_responsibility", "the copier sits much closer to the training images",
          r"^copier:\s+ratio ([\d.]+);", (0, 0.5)),
    Claim("09_applications_and_responsibility", "the skewed set keeps a quarter of classes 5-9: about 20 % of it",
          r"^skewed data\s+([\d.]+)%", (18, 22)),
    Claim("09_applications_and_responsibility",
          "the GAN on skewed data passes the skew on (classes 5-9 far below the balanced 50 %)",
          r"^GAN on skewed data\s+([\d.]+)%", (0, 35)),
)


# ----------------------------------------------------------------------------- memory of a process tree

def _tree_rss_psutil(pid: int) -> int:
    import psutil
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _tree_rss_proc(pid: int) -> int:
    """The same from /proc (Linux), for machines without psutil."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(d.name))
            rss[int(d.name)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


class PeakMemory:
    """Samples the RSS of a process tree in a background thread; ``peak`` is the largest sum seen, in bytes."""

    def __init__(self, pid: int, interval: float = 0.2):
        self._rss = _tree_rss_psutil if importlib.util.find_spec("psutil") else _tree_rss_proc
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss(self.pid))


# ----------------------------------------------------------------------------- running one notebook

@dataclass
class Result:
    notebook: str
    seconds: float = 0.0
    peak_bytes: int = 0
    error: str | None = None
    slowest: list[tuple[int, float]] = field(default_factory=list)   # (cell index, seconds)
    claims: list[dict] = field(default_factory=list)
    output: str = ""

    @property
    def limit(self) -> float | None:
        return TIME_LIMITS.get(self.notebook, (None, ""))[0]

    @property
    def within_time(self) -> bool | None:
        return None if self.limit is None or self.error else self.seconds <= self.limit

    @property
    def within_memory(self) -> bool:
        return self.peak_bytes <= MEMORY_LIMIT_GB * 1e9

    @property
    def ok(self) -> bool:
        return (not self.error and self.within_time is not False and self.within_memory
                and all(c["holds"] for c in self.claims))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _cell_text(cell) -> str:
    """The printed text of a code cell: streams, plain-text results (not figures' reprs) and errors."""
    parts = []
    for out in cell.get("outputs", []):
        kind, data = out.get("output_type"), out.get("data", {})
        if kind == "stream":
            parts.append(_text(out.get("text")))
        elif kind in ("execute_result", "display_data") and "image/png" not in data:
            parts.append(_text(data.get("text/plain")))
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n")
    return "".join(parts)


def store_for_site(source, executed, path: Path, cache: Path, seconds: float) -> None:
    """Store ``executed``'s outputs in the site's jupyter-cache at ``cache``, keyed on ``source`` (the notebook as
    read from ``path``, before execution) as myst-nb keys it: code, cell metadata and kernelspec. The outputs are
    copied onto the source, so metadata that the executor adds (timings) cannot change the key."""
    import copy

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    nb = copy.deepcopy(source)
    for mine, ran in zip(nb.cells, executed.cells):
        if mine.get("cell_type") == "code":
            mine["outputs"], mine["execution_count"] = ran.get("outputs", []), ran.get("execution_count")
    get_cache(str(cache)).cache_notebook_bundle(
        CacheBundleIn(nb, str(path), data={"execution_seconds": seconds}), check_validity=False, overwrite=True)


def run_notebook(path: Path, timeout: int = 3600, keep: Path | None = None, site_cache: Path | None = None
                 ) -> Result:
    """Execute ``path`` in a fresh kernel (environment: this process's) and measure it; with ``site_cache``, store
    the outputs there for the website when no cell failed (``store_for_site``)."""
    import copy

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    source = copy.deepcopy(nb)
    res = Result(path.stem)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    times = []
    t0 = time.perf_counter()
    try:
        with client.setup_kernel():
            pid = client.km.provisioner.pid
            with PeakMemory(pid) as mem:
                for i, cell in enumerate(client.nb.cells):
                    c0 = time.perf_counter()
                    try:
                        client.execute_cell(cell, i)
                    finally:
                        times.append((i, time.perf_counter() - c0))
            res.peak_bytes = mem.peak
    except CellExecutionError as exc:
        res.error = f"cell {times[-1][0] if times else '?'}: {str(exc).strip().splitlines()[-1][:200]}"
    except Exception as exc:  # noqa: BLE001 - a kernel that dies or times out is a result, not a crash
        res.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    res.seconds = time.perf_counter() - t0
    res.slowest = sorted(times, key=lambda t: -t[1])[:3]
    res.output = "\n".join(_cell_text(c) for c in client.nb.cells if c.get("cell_type") == "code")
    for claim in CLAIMS:
        if claim.notebook == res.notebook:
            found, holds = claim.check(res.output)
            res.claims.append({"what": claim.what, "expected": claim.expected, "printed": found,
                               "holds": bool(holds)})
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(client.nb, keep / path.name)
    if site_cache is not None and res.error is None:
        store_for_site(source, client.nb, path, site_cache, res.seconds)
    return res


# ----------------------------------------------------------------------------- report

def machine() -> str:
    from course_lib.machine import cpu_model
    import torch

    model = cpu_model()
    return (f"{model}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _yes(v: bool | None) -> str:
    return "n/a" if v is None else ("yes" if v else "**no**")


def report(results: list[Result], header: str) -> str:
    lines = [header, "",
             f"| notebook | wall time | header's estimate (limit) | within | peak memory | <= {MEMORY_LIMIT_GB} GB "
             "| claims held | slowest cells (s) |",
             "|---|---:|---|---|---:|---|---|---|"]
    for r in results:
        limit, words = TIME_LIMITS.get(r.notebook, (None, "not in TIME_LIMITS"))
        est = f"{words} ({limit / 60:.1f} min)" if limit else words
        held = sum(c["holds"] for c in r.claims)
        claims = (f"{held}/{len(r.claims)}" if held == len(r.claims) else f"**{held}/{len(r.claims)}**") \
            if r.claims else "none registered"
        slow = ", ".join(f"{i}: {s:.1f}" for i, s in r.slowest)
        wall = f"{r.seconds / 60:.1f} min" if r.seconds >= 90 else f"{r.seconds:.0f} s"
        if r.error:
            wall += f" (**failed**, {r.error})"
        lines.append(f"| {r.notebook} | {wall} | {est} | {_yes(r.within_time)} | {r.peak_bytes / 1e9:.2f} GB "
                     f"| {_yes(r.within_memory)} | {claims} | {slow} |")
    claim_rows = [(r.notebook, c) for r in results for c in r.claims]
    if claim_rows:
        lines += ["", "| notebook | claim | expected | printed | holds |", "|---|---|---|---|---|"]
        for nb, c in claim_rows:
            exp = c["expected"] if isinstance(c["expected"], str) else f"{c['expected'][0]:g} to {c['expected'][1]:g}"
            printed = ", ".join(c["printed"]) if c["printed"] else "(not printed)"
            lines.append(f"| {nb} | {c['what']} | {exp} | {printed} | {_yes(c['holds'])} |")
    return "\n".join(lines) + "\n"


def select(names: list[str]) -> list[Path]:
    paths = sorted((ROOT / "solutions").glob("*.ipynb"))
    if not names:
        return paths
    chosen = [p for p in paths if any(p.stem.startswith(n) for n in names)]
    unknown = [n for n in names if not any(p.stem.startswith(n) for p in paths)]
    if unknown:
        raise SystemExit(f"no solution notebook starts with {unknown}; choose from {[p.stem for p in paths]}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="name prefixes (e.g. 00 07); default: every solution notebook")
    p.add_argument("--budget", default="cpu", choices=("quick", "cpu", "gpu"), help="COURSE_BUDGET (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="set OMP_NUM_THREADS for the kernels (default: leave it, as a student would)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    p.add_argument("--json", type=Path, help="also write the measurements as JSON")
    p.add_argument("--keep", type=Path, help="save the executed notebooks in this folder")
    p.add_argument("--site-cache", action="store_true",
                   help="run in the website's kernel environment and store each notebook's outputs in its cache "
                        "(tools/build_site.py --budget BUDGET then renders them without running them again)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    paths = select(args.notebooks)

    site_cache = None
    if args.site_cache:
        import build_site as site                   # tools/, beside this script (on sys.path when run as one)

        site.require_docs_packages()
        os.environ.update(site.kernel_environment(args.budget, ROOT))
        site_cache = site.cache_folder(args.budget)  # (no MPLBACKEND: inline figures become outputs, as on the site)
    else:
        os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["COURSE_BUDGET"] = args.budget
    os.environ.pop("COURSE_QUICK", None)
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.strftime("%Y-%m-%d %H:%M")
    results = []
    for path in paths:
        print(f"running {path.name} with COURSE_BUDGET={args.budget} ...", file=sys.stderr, flush=True)
        r = run_notebook(path, timeout=args.timeout, keep=args.keep, site_cache=site_cache)
        print(f"  {r.seconds:.0f} s, peak {r.peak_bytes / 1e9:.2f} GB" + (f", FAILED: {r.error}" if r.error else ""),
              file=sys.stderr, flush=True)
        results.append(r)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"Student budget run (`python tools/run_student_budget.py`), COURSE_BUDGET={args.budget}, "
              f"{started}; machine: {machine()}; load average (1 min) {load0:.2f} before, {load1:.2f} after "
              "(a load above the core count means other jobs shared the machine: times are then upper bounds).")
    text = report(results, header)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.__dict__.items() if k != "output"} | {
            "limit_s": r.limit, "ok": r.ok} for r in results], indent=1), encoding="utf-8")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
