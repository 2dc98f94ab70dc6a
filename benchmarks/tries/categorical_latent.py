"""A try for issue 11 section 0, kept so that the rows in recipes_notes.md can be re-run (not a recipe).

A generator whose latent is disconnected: z = [one_hot(c), scale * e], c uniform over ``code`` values (the
argmax of ``code`` Gaussian coordinates), e ~ N(0, I_2); the rest is the dataset's recipe (ring8 or grid25) with the
overrides given.

    python benchmarks/tries/categorical_latent.py ring8 SEED CODE SCALE '{"steps": 1600, "ema_decay": null}'

Prints one JSON row: CPU seconds of training (one torch thread) and, per generator (EMA, raw), modes,
high-quality share (%), the RMS distance of the good samples to their centre in std, and the smallest and
largest mode share.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

from course_lib import metrics
from course_lib.models import MLPDiscriminator, MLPGenerator
from course_lib.recipes import RECIPES
from course_lib.train import GANTrainer, TrainConfig

torch.set_num_threads(1)


class CodeG(MLPGenerator):
    """MLPGenerator reading [one_hot(argmax z[:code]), scale * z[code:]]."""

    def __init__(self, code: int, cont: int, scale: float, **kw):
        super().__init__(latent_dim=code + cont, **kw)
        self.code, self.scale = code, scale

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        k = self.code
        z = torch.cat([F.one_hot(z[:, :k].argmax(1), k).to(z.dtype), self.scale * z[:, k:]], 1)
        return self.net(z)


data, seed, code, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
params = {**RECIPES[data], **over, "data": data, "seed": seed, "device": "cpu"}
params["betas"] = tuple(params["betas"])
cont = params["latent_dim"]
params["latent_dim"] = code + cont
cfg = TrainConfig(**params)
torch.manual_seed(seed)
G = CodeG(code, cont, scale, out_dim=2, hidden=cfg.g_width, depth=cfg.depth)
D = MLPDiscriminator(2, cfg.d_width, cfg.depth, cfg.spectral_norm)
tr = GANTrainer(cfg, G=G, D=D, verbose=False)
c0 = time.process_time()
tr.fit(progress=False)
out = {"data": data, "seed": seed, "code": code, "scale": scale, "over": over,
       "cpu_s": round(time.process_time() - c0, 1)}
for ema in (True, False):
    if ema and tr.G_ema is None:
        continue
    x = tr.sample(2500, use_ema=ema)
    m = metrics.mode_metrics(x, tr.dataset.centres, tr.dataset.std, n_std=3.0, min_count=20)
    dist, nearest = torch.cdist(x, tr.dataset.centres.to(x)).min(1)
    good = dist < 3 * tr.dataset.std
    rms = (dist[good] ** 2).mean().sqrt().item() / tr.dataset.std
    share = torch.bincount(nearest[good], minlength=len(tr.dataset.centres)).float() / len(x)
    out["ema" if ema else "raw"] = (m["modes"], round(100 * m["high_quality"], 2), "rms_std", round(rms, 2),
                                    "min/max share", round(share.min().item(), 3), round(share.max().item(), 3))
print(json.dumps(out), flush=True)
