"""A try for issue 11 section 0, kept so that the rows in recipes_notes.md can be re-run (not a recipe).

A generator whose latent is disconnected: it reads [one_hot(c), scale * e], c uniform over ``code`` values (the
argmax of ``code`` Gaussian coordinates), e ~ N(0, I_2): ``TrainConfig.latent_codes`` (whose scale is
``models.CODE_NOISE_SCALE`` = 0.1) with the scale as a parameter. The rest is the dataset's recipe (ring8 or
grid25) with the overrides given.

    python benchmarks/tries/categorical_latent.py ring8 SEED CODE SCALE '{"steps": 1600, "ema_decay": null}'

Keys of the JSON that start with ``x_`` are variations of the training that the library does not offer:

* ``"x_init": m``: the code columns of G's first layer start m times larger (codes start further apart);
* ``"x_sched": "hold:P"`` (constant learning rate until the fraction P of the run, then linear to 0) or ``"sq"``
  ((1 - t)^2): instead of the recipe's linear decay;
* ``"x_strat": true``: every training batch holds each code equally often (n / K each) instead of iid codes;
* ``"x_post": [S, f]``: after the run, S more generator steps at f times lr_g with D frozen (lr_d = 0);
* ``"x_traj": N``: the raw generator's modes and high-quality share every N steps (``traj``).

Prints one JSON row: CPU seconds of training (one torch thread) and, per generator (EMA, raw), modes,
high-quality share (%), the RMS distance of the good samples to their centre in std, and the smallest and
largest mode share; ``bad_codes``: the codes of the raw generator with under 99 % of 200 samples within 3 std
of a centre, as [code, that share, the modes they reach]; ``pre``: modes and share before ``x_post``.
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

data, seed, code, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
x = {k: over.pop(k) for k in list(over) if k.startswith("x_")}
params = {**RECIPES[data], **over, "data": data, "seed": seed, "device": "cpu"}
params["betas"] = tuple(params["betas"])
cont = params["latent_dim"]
params["latent_dim"], params["latent_codes"] = code + cont, code
cfg = TrainConfig(**params)
if "x_sched" in x:
    kind, _, arg = x["x_sched"].partition(":")

    def lr_factor(self, step, kind=kind, hold=float(arg or 0)):
        t = step / self.steps
        f = (1.0 if t < hold else (1 - t) / (1 - hold)) if kind == "hold" else (1 - t) ** 2
        return max(f, 1.0 / self.steps)
    TrainConfig.lr_factor = lr_factor
torch.manual_seed(seed)
G = MLPGenerator(code + cont, 2, cfg.g_width, cfg.depth, codes=code, code_scale=scale)
if "x_init" in x:
    with torch.no_grad():
        G.net[0].weight[:, :code] *= x["x_init"]
D = MLPDiscriminator(2, cfg.d_width, cfg.depth, cfg.spectral_norm)
tr = GANTrainer(cfg, G=G, D=D, verbose=False)
if x.get("x_strat"):
    iid_noise = tr._noise

    def stratified_noise(n):
        z, y = iid_noise(n)
        c = torch.randperm(n, generator=tr.rng, device=z.device) % code
        z[:, :code] = 100.0 * F.one_hot(c, code).to(z.dtype)   # the argmax is c
        return z, y
    tr._noise = stratified_noise


def judge(trainer, ema):
    s = trainer.sample(2500, use_ema=ema)
    return s, metrics.mode_metrics(s, trainer.dataset.centres, trainer.dataset.std, n_std=3.0, min_count=20)


traj = []
c0 = time.process_time()
while tr.step < cfg.steps:
    tr.fit(steps=min(x.get("x_traj", cfg.steps), cfg.steps - tr.step), progress=False)
    if "x_traj" in x:
        m = judge(tr, False)[1]
        traj.append((tr.step, m["modes"], round(100 * m["high_quality"], 2)))
pre = None
if "x_post" in x:
    extra, frac = x["x_post"]
    m = judge(tr, False)[1]
    pre = (m["modes"], round(100 * m["high_quality"], 2))
    TrainConfig.lr_factor = lambda self, step: 1.0
    cfg.lr_d, cfg.lr_g, cfg.steps = 0.0, frac * cfg.lr_g, cfg.steps + extra
    tr.fit(progress=False)
out = {"data": data, "seed": seed, "code": code, "scale": scale, "over": {**over, **x},
       "cpu_s": round(time.process_time() - c0, 1)}
out.update({"traj": traj} if traj else {}, **({"pre": pre} if pre else {}))
for ema in (True, False):
    if ema and tr.G_ema is None:
        continue
    s, m = judge(tr, ema)
    dist, nearest = torch.cdist(s, tr.dataset.centres.to(s)).min(1)
    good = dist < 3 * tr.dataset.std
    rms = (dist[good] ** 2).mean().sqrt().item() / tr.dataset.std
    share = torch.bincount(nearest[good], minlength=len(tr.dataset.centres)).float() / len(s)
    out["ema" if ema else "raw"] = (m["modes"], round(100 * m["high_quality"], 2), "rms_std", round(rms, 2),
                                    "min/max share", round(share.min().item(), 3), round(share.max().item(), 3))
bad = []
with torch.no_grad():
    for c in range(code):
        z = torch.randn(200, code + cont, generator=torch.Generator().manual_seed(c))
        z[:, :code] = 100.0 * F.one_hot(torch.full((200,), c), code)
        p = tr.G.eval()(z.to(tr.device)).float().cpu()
        d, near = torch.cdist(p, tr.dataset.centres.cpu()).min(1)
        ok = d < 3 * tr.dataset.std
        if ok.float().mean() < 0.99:
            bad.append((c, round(ok.float().mean().item(), 2), sorted(set(near[ok].tolist()))))
out["bad_codes"] = bad
print(json.dumps(out), flush=True)
