"""A plain DCGAN, as pytorch/examples' ``dcgan/main.py`` trains it, on Fashion-MNIST, for a wall-clock budget.

This is the baseline of ``benchmarks/fashion.py``: the course's recipe is measured against it under the same
time, on the same data and with the same judge. It keeps that script's defaults and its training step:

* 64x64 images (Fashion-MNIST's 28x28 resized bilinearly, scaled to [-1, 1]), one channel;
* nz = 100, ngf = ndf = 64; G: transposed convolutions 4x4 -> 64x64 with batch norm and ReLU, tanh output;
  D: strided convolutions with LeakyReLU(0.2), batch norm after all but the first, a sigmoid output;
* weights N(0, 0.02), batch-norm scales N(1, 0.02), shifts 0;
* BCE on D's probabilities, real label 1 and fake label 0; D sees a real batch and a fake batch separately
  (two backward passes, one optimiser step); G's update reuses the fake batch of that D step (target 1);
* Adam lr 2e-4, betas (0.5, 0.999), batch 64, shuffled each epoch.

It is written for this course, not copied; the only changes are those the comparison needs: the data are held
in memory as a uint8 tensor (no DataLoader workers on a 2-core CPU), training stops when the time budget is
spent (checked after each iteration), and every random draw comes from the given seed.

    python benchmarks/plain_dcgan.py --budget 600 --seed 0 --out runs/plain_dcgan

writes ``generator.pt`` (the state dict and the settings), ``samples.pt`` ((N, 1, 64, 64) float32 in [-1, 1],
drawn as ``main.py`` draws its progress images: batch-norm statistics of the sample batch of 64),
``samples.png`` and ``run.json`` (iterations, epochs, seconds, seed, threads, load average).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import course_lib  # noqa: E402, F401  (before torch: course_lib.threads sizes its CPU threads)
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_lib import data as data_mod  # noqa: E402
from course_lib.utils import atomic_write  # noqa: E402

NZ, NGF, NDF, NC = 100, 64, 64, 1
BATCH, LR, BETAS, IMAGE_SIZE = 64, 2e-4, (0.5, 0.999), 64
REAL_LABEL, FAKE_LABEL = 1.0, 0.0


class Generator(nn.Module):
    """z (N, nz, 1, 1) -> images (N, nc, S, S) in [-1, 1]; S = 64 as in ``main.py`` (32: one layer fewer)."""

    def __init__(self, nz: int = NZ, ngf: int = NGF, nc: int = NC, image_size: int = IMAGE_SIZE):
        super().__init__()

        def up(cin: int, cout: int, stride: int = 2, pad: int = 1) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        mult = _width_multipliers(image_size)           # 64: 8, 4, 2, 1 (ngf*8 x 4 x 4 ... ngf x 32 x 32)
        layers = up(nz, ngf * mult[0], 1, 0)            # (ngf*8) x 4 x 4
        for a, b in zip(mult, mult[1:]):
            layers += up(ngf * a, ngf * b)              # doubles the size, halves the width
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]   # nc x S x S
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """images (N, nc, S, S) -> probabilities D(x) of shape (N,), in (0, 1)."""

    def __init__(self, ndf: int = NDF, nc: int = NC, image_size: int = IMAGE_SIZE):
        super().__init__()

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]

        mult = _width_multipliers(image_size)[::-1]     # 64: 1, 2, 4, 8
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]   # ndf x S/2 x S/2
        for a, b in zip(mult, mult[1:]):
            layers += down(ndf * a, ndf * b)            # halves the size, doubles the width
        layers += [nn.Conv2d(ndf * mult[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]   # (ndf*8) x 4 x 4 -> 1
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def _width_multipliers(image_size: int) -> list[int]:
    """Width multipliers of G's layers from 4x4 up: [8, 4, 2, 1] for 64x64, [4, 2, 1] for 32x32."""
    if image_size not in (32, 64):
        raise ValueError(f"image_size must be 64 (main.py) or 32, got {image_size}")
    n = {64: 4, 32: 3}[image_size]
    return [2 ** (n - 1 - i) for i in range(n)]


@torch.no_grad()
def weights_init(m: nn.Module) -> None:
    """DCGAN initialisation: convolutions N(0, 0.02); batch norm scale N(1, 0.02), shift 0."""
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def load_images(image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """The 60,000 Fashion-MNIST training images as (60000, 1, S, S) uint8 (``course_lib.data``, offline)."""
    return data_mod.load("fashion-mnist", image_size=image_size, split="train").x


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    return x.float().div_(127.5).sub_(1.0)


def train(budget_s: float, seed: int = 0, images: torch.Tensor | None = None, max_iters: int | None = None,
          log_every: int = 100, verbose: bool = True, image_size: int = IMAGE_SIZE) -> tuple[Generator, dict]:
    """Train the plain DCGAN for ``budget_s`` seconds of wall-clock time (or ``max_iters`` iterations).

    Returns the generator (in train mode) and a record: ``iterations``, ``epochs`` (float), ``train_seconds``,
    ``seed``, ``loss_d`` / ``loss_g`` / ``d_x`` / ``d_g_z`` (means over the last ``log_every`` iterations)."""
    torch.manual_seed(seed)
    images = load_images(image_size) if images is None else images
    if tuple(images.shape[1:]) != (NC, image_size, image_size):
        raise ValueError(f"images must be (N, {NC}, {image_size}, {image_size}) uint8, got {tuple(images.shape)}")
    netG, netD = Generator(image_size=image_size), Discriminator(image_size=image_size)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=LR, betas=BETAS)
    optG = torch.optim.Adam(netG.parameters(), lr=LR, betas=BETAS)
    g = torch.Generator().manual_seed(seed)
    n, it, epoch, recent = len(images), 0, 0, []
    t0 = time.perf_counter()
    done = False
    while not done:
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, BATCH):      # DataLoader(shuffle=True, drop_last=False)
            real = to_float(images[perm[start:start + BATCH]])
            b = len(real)
            # (1) update D: maximise log D(x) + log(1 - D(G(z)))
            netD.zero_grad()
            label = torch.full((b,), REAL_LABEL)
            output = netD(real)
            err_real = criterion(output, label)
            err_real.backward()
            d_x = output.mean().item()
            noise = torch.randn(b, NZ, 1, 1, generator=g)
            fake = netG(noise)
            label.fill_(FAKE_LABEL)
            output = netD(fake.detach())
            err_fake = criterion(output, label)
            err_fake.backward()
            d_g_z1 = output.mean().item()
            optD.step()
            # (2) update G: maximise log D(G(z)), on the same fake batch
            netG.zero_grad()
            label.fill_(REAL_LABEL)
            output = netD(fake)
            err_g = criterion(output, label)
            err_g.backward()
            optG.step()
            it += 1
            recent.append((err_real.item() + err_fake.item(), err_g.item(), d_x, d_g_z1))
            recent = recent[-log_every:]
            elapsed = time.perf_counter() - t0
            if verbose and it % log_every == 0:
                m = [sum(r[i] for r in recent) / len(recent) for i in range(4)]
                print(f"[plain dcgan] it {it} epoch {epoch} {elapsed:.0f}s  loss_D {m[0]:.3f} loss_G {m[1]:.3f} "
                      f"D(x) {m[2]:.2f} D(G(z)) {m[3]:.2f}", flush=True)
            if elapsed >= budget_s or (max_iters is not None and it >= max_iters):
                done = True
                break
        epoch += 1
    elapsed = time.perf_counter() - t0
    m = [sum(r[i] for r in recent) / len(recent) for i in range(4)]
    record = {"iterations": it, "epochs": round(it * BATCH / n, 3), "train_seconds": round(elapsed, 1),
              "seed": seed, "image_size": image_size, "loss_d": m[0], "loss_g": m[1], "d_x": m[2], "d_g_z": m[3]}
    return netG, record


@torch.no_grad()
def sample(netG: Generator, n: int, seed: int = 12345, batch_norm_stats: str = "batch") -> torch.Tensor:
    """``n`` images (n, 1, S, S) float32 in [-1, 1] from fresh noise of ``seed``.

    ``batch_norm_stats``: ``"batch"`` (as ``main.py`` draws its images: G in train mode, statistics of each
    batch of 64; the running averages are left unchanged) or ``"running"`` (eval mode)."""
    if batch_norm_stats not in ("batch", "running"):
        raise ValueError(f"batch_norm_stats must be 'batch' or 'running', got {batch_norm_stats!r}")
    g = torch.Generator().manual_seed(seed)
    saved = {k: v.clone() for k, v in netG.state_dict().items()}
    was_training = netG.training
    netG.train(batch_norm_stats == "batch")
    try:
        out = [netG(torch.randn(min(BATCH, n - i), NZ, 1, 1, generator=g)) for i in range(0, n, BATCH)]
    finally:
        netG.load_state_dict(saved)   # batch-mode forward passes update the running averages: undo
        netG.train(was_training)
    return torch.cat(out).clamp_(-1, 1)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=600.0, help="training wall-clock seconds (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--max-iters", type=int, default=None)
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE, choices=(32, 64),
                   help="64 (main.py's default) or 32 (the course's size; one layer fewer in G and D)")
    p.add_argument("--n-samples", type=int, default=5000, help="images written to samples.pt (default 5000)")
    p.add_argument("--out", type=Path, default=Path("runs/plain_dcgan"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    images = load_images(a.image_size)
    netG, record = train(a.budget, a.seed, images, a.max_iters, image_size=a.image_size)
    x = sample(netG, a.n_samples)
    torch.save({"state_dict": netG.state_dict(), "nz": NZ, "ngf": NGF, "nc": NC, "image_size": a.image_size},
               a.out / "generator.pt")
    torch.save(x, a.out / "samples.pt")
    from torchvision.utils import save_image
    save_image(x[:64], a.out / "samples.png", nrow=8, normalize=True, value_range=(-1, 1))
    record.update(threads=a.threads, load_before=load_before, load_after=load_average(),
                  machine=platform.processor() or platform.machine(), n_samples=a.n_samples)
    atomic_write(a.out / "run.json", json.dumps(record, indent=2))
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
