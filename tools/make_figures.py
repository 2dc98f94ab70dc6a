"""Draw the course's committed figures from its shipped models.

    python tools/make_figures.py

writes ``figures/fashion_samples.png``: an 8 x 8 grid of Fashion-MNIST images made by the course's best
unconditional shipped model (``FIGURE_MODEL``, loaded by ``course_lib.pretrained.load_pretrained``) from noise of
a fixed seed, so the same files and the same command give the same picture. Notebook 00 and the README show it
with this command beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib.pretrained import load_pretrained  # noqa: E402  (course_lib before torch: its thread rule)
from course_lib.sampling import generate  # noqa: E402

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

FIGURE_MODEL = "fashion-recipe-long"  # the lowest FD of the unconditional Fashion-MNIST models (RESULTS-pretrained.md)
SEED = 0
ROWS = 8
SCALE = 2  # each 32 x 32 image drawn at 64 x 64 (nearest neighbour: no smoothing is added)


def fashion_samples(path: Path, name: str = FIGURE_MODEL, seed: int = SEED, rows: int = ROWS,
                    scale: int = SCALE) -> Path:
    """Write a ``rows`` x ``rows`` grid of samples of the shipped model ``name`` (noise seeded with ``seed``)
    as a grey PNG at ``path``: images in [-1, 1] shown black to white, 2-pixel white borders, each image
    ``scale`` times its size. Returns ``path``."""
    G = load_pretrained(name)
    x = generate(G, rows * rows, G.latent_dim, torch.device("cpu"), seed=seed)  # (rows^2, 1, 32, 32) in [-1, 1]
    x = F.interpolate(x, scale_factor=scale, mode="nearest")
    grid = make_grid(x, nrow=rows, padding=2 * scale, normalize=True, value_range=(-1, 1), pad_value=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    grey = grid[0].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)  # make_grid repeats the grey channel 3 times
    Image.fromarray(grey.numpy()).save(path)  # (H, W) uint8: a grey PNG, rounded as torchvision's save_image
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "figures"), help="folder of the figures")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = fashion_samples(Path(args.out) / "fashion_samples.png")
    print(f"wrote {out} ({ROWS} x {ROWS} samples of pretrained:{FIGURE_MODEL}, seed {SEED})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
