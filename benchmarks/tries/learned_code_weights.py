"""A try for issue 11 section 0, kept so that the rows in recipes_notes.md can be re-run (not a recipe).

The disconnected latent of ``categorical_latent.py`` (K one-hot codes beside ``scale`` * 2 Gaussian coordinates)
with **learned code probabilities** pi = softmax(a): the generator samples its code from pi instead of
uniformly, so that a mode that holds too many codes can lose weight instead of sending a code across to another
mode, and a code stranded between modes can fade out. Trained by importance weights: the codes of a batch are
drawn uniformly and each fake sample counts K * pi_c in both losses (non-saturating), an unbiased estimate of
E_{c ~ pi} that is differentiable in a (its own Adam, ``x_lrw`` times lr_g, the recipe's schedule). The rest
is the dataset's recipe with R1 1.0 and no EMA, as in the best row of ``categorical_latent.py``.

    python benchmarks/tries/learned_code_weights.py ring8 SEED 32 0.1 '{"steps": 1500, "x_lrw": 10}'

Prints one JSON row: CPU seconds of training (one torch thread), modes and high-quality share (%) of 2,500
samples with codes drawn from pi (``mix``, with the smallest and largest mode share) and drawn uniformly
(``uniform``), the smallest and largest pi, and how many codes ended under a tenth of 1/K.
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

data, seed, K, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
over = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
lr_ratio = over.pop("x_lrw", 1.0)
params = {**RECIPES[data], "ema_decay": None, "r1_gamma": 1.0, **over, "data": data, "seed": seed, "device": "cpu"}
params["betas"] = tuple(params["betas"])
cont = params["latent_dim"]
params["latent_dim"], params["latent_codes"] = K + cont, K
cfg = TrainConfig(**params)
torch.manual_seed(seed)
G = MLPGenerator(K + cont, 2, cfg.g_width, cfg.depth, codes=K, code_scale=scale)
D = MLPDiscriminator(2, cfg.d_width, cfg.depth, cfg.spectral_norm)
tr = GANTrainer(cfg, G=G, D=D, verbose=False)   # data, optimisers and the (lazy) R1 penalty of the library
a = torch.zeros(K, requires_grad=True)           # code logits: pi = softmax(a), uniform at the start
opt_a = torch.optim.Adam([a], lr=lr_ratio * cfg.lr_g, betas=cfg.betas)


def noise(codes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(len(codes), K + cont, generator=gen)
    z[:, :K] = 100.0 * F.one_hot(codes, K)       # the generator reads argmax z[:, :K] = codes
    return z


c0 = time.process_time()
for step in range(cfg.steps):
    for opt, lr in ((tr.opt_G, cfg.lr_g), (tr.opt_D, cfg.lr_d), (opt_a, lr_ratio * cfg.lr_g)):
        for group in opt.param_groups:
            group["lr"] = lr * cfg.lr_factor(step)
    tr.step = step                               # the lazy R1 counts steps
    real, _ = tr._real_batch()
    codes = torch.randint(K, (cfg.batch_size,), generator=tr.rng)
    with torch.no_grad():
        fake = G(noise(codes, tr.rng))
    w = (K * torch.softmax(a, 0))[codes].detach()
    d_loss = F.softplus(-D(real)).mean() + (w * F.softplus(D(fake))).mean() + tr._penalty(real, fake, None)
    tr.opt_D.zero_grad(set_to_none=True)
    d_loss.backward()
    tr.opt_D.step()
    codes = torch.randint(K, (cfg.batch_size,), generator=tr.rng)
    g_loss = ((K * torch.softmax(a, 0))[codes] * F.softplus(-D(G(noise(codes, tr.rng))))).mean()
    tr.opt_G.zero_grad(set_to_none=True)
    opt_a.zero_grad(set_to_none=True)
    g_loss.backward()
    tr.opt_G.step()
    opt_a.step()
cpu = time.process_time() - c0
pi = torch.softmax(a.detach(), 0)
gen = torch.Generator().manual_seed(1234)
out = {"data": data, "seed": seed, "code": K, "scale": scale, "over": {**over, "x_lrw": lr_ratio},
       "cpu_s": round(cpu, 1)}
for name, codes in (("mix", torch.multinomial(pi, 2500, replacement=True, generator=gen)),
                    ("uniform", torch.randint(K, (2500,), generator=gen))):
    with torch.no_grad():
        s = G(noise(codes, gen))
    m = metrics.mode_metrics(s, tr.dataset.centres, tr.dataset.std, n_std=3.0, min_count=20)
    dist, nearest = torch.cdist(s, tr.dataset.centres).min(1)
    share = torch.bincount(nearest[dist < 3 * tr.dataset.std], minlength=len(tr.dataset.centres)).float() / len(s)
    out[name] = (m["modes"], round(100 * m["high_quality"], 2), round(share.min().item(), 3),
                 round(share.max().item(), 3))
out["pi_min_max"] = (round(pi.min().item(), 4), round(pi.max().item(), 4))
out["pi_below_0.1_of_uniform"] = int((pi < 0.1 / K).sum())
print(json.dumps(out), flush=True)
