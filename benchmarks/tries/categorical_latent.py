"""A try for issue 11 section 0, kept so that the rows in recipes_notes.md can be re-run (not a recipe).

A generator whose latent is disconnected: it reads [one_hot(c), scale * e], c uniform over ``code`` values (the
argmax of ``code`` Gaussian coordinates), e ~ N(0, I_2): ``TrainConfig.latent_codes`` (whose scale is
``models.CODE_NOISE_SCALE`` = 0.1) with the scale as a parameter. The rest is the dataset's recipe (ring8 or
grid25) with the overrides given.

    python benchmarks/tries/categorical_latent.py ring8 SEED CODE SCALE '{"steps": 1600, "ema_decay": null}'

Prints one JSON row: CPU seconds of training (one torch thread) and, per generator (EMA, raw), modes,
high-quality share (%), the RMS distance of the good samples to their centre in std, and the smallest and
largest mode share.
"""
import json
import sys
import time

import torch

from course_lib import metrics
from course_lib.models import MLPDiscriminator, MLPGenerator
from course_lib.recipes import RECIPES
from course_lib.train import GANTrainer, TrainConfig

torch.set_num_threads(1)

data, seed, code, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
params = {**RECIPES[data], **over, "data": data, "seed": seed, "device": "cpu"}
params["betas"] = tuple(params["betas"])
cont = params["latent_dim"]
params["latent_dim"], params["latent_codes"] = code + cont, code
cfg = TrainConfig(**params)
torch.manual_seed(seed)
G = MLPGenerator(code + cont, 2, cfg.g_width, cfg.depth, codes=code, code_scale=scale)
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
