"""The course's recommended training recipes, one per dataset.

These are the defaults of ``TrainConfig.for_data`` and of ``python -m course_lib train --data NAME``.
``benchmarks/recipes.py`` measures them (see ``benchmarks/RESULTS-recipes.md``). ``VANILLA`` holds the source
article's hyper-parameters (made runnable) for comparison.
"""
from __future__ import annotations

__all__ = ["RECIPES", "VANILLA", "DCGAN", "DDPM"]

RECIPES: dict[str, dict] = {
    # 2-D mixtures, published techniques only (notebook 03 adds them one at a time to the plain step): noise of the
    # data's dimension (2: the generator cuts the noise plane into one region per mode, with thin borders), large
    # batches (Brock et al. 2019), a high learning rate with Adam betas (0.5, 0.9) decayed linearly to zero (as in
    # CycleGAN, Zhu et al. 2017: the generator settles on the modes instead of circling them), a small R1 penalty
    # on D (Mescheder et al. 2018: stops mode-hopping) and samples from an EMA of G (Yazici et al. 2019).
    # Measured on seeds 0-9 in benchmarks/RESULTS-recipes.md.
    "ring8": dict(model="mlp", loss="nonsaturating", latent_dim=2, g_width=128, d_width=128, depth=3,
                  batch_size=512, lr_g=4e-3, lr_d=4e-3, betas=(0.5, 0.9), lr_schedule="linear",
                  r1_gamma=0.1, ema_decay=0.999, steps=8000, checkpoint_every=1000),
    # grid25 has three times as many modes: more steps, paid for by computing R1 lazily (on every 8th D step,
    # weighted 8 times: Karras et al. 2020, StyleGAN2).
    "grid25": dict(model="mlp", loss="nonsaturating", latent_dim=2, g_width=128, d_width=128, depth=3,
                   batch_size=512, lr_g=4e-3, lr_d=4e-3, betas=(0.5, 0.9), lr_schedule="linear", r1_gamma=0.1,
                   r1_every=8, ema_decay=0.999, steps=9500, checkpoint_every=1000),
    "mixture1d": dict(model="mlp", loss="nonsaturating", latent_dim=1, g_width=32, d_width=32, depth=2,
                      batch_size=256, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999), steps=1000, checkpoint_every=500),
    # digits: a class-conditional DCGAN (the labels come with the data; projection discriminator, notebook 08),
    # hinge loss with spectral normalisation in D (instead of batch norm), D learning twice as fast as G (TTUR),
    # Adam betas (0, 0.9); about 2 CPU minutes. conditional=False (notebooks 04, 06, 09; --no-conditional) trains
    # the same recipe without labels: every class, recall at the real data's, but less precise samples; FD 1.66x
    # the corrected floor (4.74 +- 1.49 at n = 239) and 0.30x the blurred-real bar (seed 0, AMD EPYC;
    # benchmarks/RESULTS-fashion.md).
    "digits": dict(model="dcgan", loss="hinge", spectral_norm=True, conditional=True, image_size=16, latent_dim=64,
                   g_width=32, d_width=32, batch_size=128, lr_g=2e-4, lr_d=4e-4, betas=(0.0, 0.9), steps=3300,
                   ema_decay=0.999, checkpoint_every=500),
    # Fashion-MNIST (and MNIST, same shape): unconditional, 32x32, the digits recipe's ideas (hinge loss with
    # spectral norm in D instead of batch norm, TTUR, betas (0, 0.9), EMA of G) at width 32 and batch 64, which
    # buys many more steps per CPU second than width 64: 2,000 steps are about 5 CPU minutes on one thread and
    # reach a classifier-feature FD well under the blurred-real bar (benchmarks/RESULTS-fashion.md). MNIST is
    # online-only and has not been measured with it.
    "fashion-mnist": dict(model="dcgan", loss="hinge", spectral_norm=True, conditional=False, image_size=32,
                          latent_dim=100, g_width=32, d_width=32, batch_size=64, lr_g=2e-4, lr_d=4e-4,
                          betas=(0.0, 0.9), steps=2000, ema_decay=0.999, checkpoint_every=1000),
}
RECIPES["mnist"] = dict(RECIPES["fashion-mnist"])

# The source article's settings (DCGAN, Adam lr 2e-4, betas (0.5, 0.999), batch 128, latent 100, minimax BCE
# with the non-saturating generator target), with its faults fixed so that it runs.
# Every regulariser is switched off explicitly, so that
# ``TrainConfig.for_data(data, **VANILLA[data])`` (which starts from the course recipe) is the plain article setting
# too.
_PLAIN = dict(lr_schedule="constant", n_critic=None, label_smoothing=0.0, gp_weight=None, r1_gamma=0.0, r1_every=1,
              spectral_norm=False, ema_decay=None)
VANILLA: dict[str, dict] = {
    "ring8": dict(model="mlp", loss="nonsaturating", latent_dim=100, g_width=128, d_width=128, depth=3,
                  batch_size=128, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), **_PLAIN),
    "grid25": dict(model="mlp", loss="nonsaturating", latent_dim=100, g_width=128, d_width=128, depth=3,
                   batch_size=128, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), **_PLAIN),
    "digits": dict(model="dcgan", loss="nonsaturating", image_size=16, latent_dim=100, g_width=64, d_width=64,
                   batch_size=128, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), **_PLAIN),
}

# The DCGAN as Radford et al. (2016) define it, used as ``TrainConfig.for_data(data, **DCGAN[data])`` (notebook 04
# and the shipped model ``fashion-dcgan``): batch norm in G and D except G's output layer and D's first layer, ReLU
# in G, LeakyReLU(0.2) in D, tanh output, the non-saturating BCE loss on D's logits, Adam 2e-4 with betas
# (0.5, 0.999), N(0, 0.02) weights, batch 128; no spectral norm, EMA or penalty (``_PLAIN``). Widths 32 at 32x32
# (the paper's are 128 at 64x64) keep 1,500 steps (3.2 epochs) within minutes of one CPU thread.
DCGAN: dict[str, dict] = {
    "fashion-mnist": dict(model="dcgan", loss="nonsaturating", conditional=False, image_size=32, latent_dim=100,
                          g_width=32, d_width=32, batch_size=128, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                          steps=1500, checkpoint_every=500, **_PLAIN),
}

# A DDPM (``course_lib.diffusion``, ``TrainConfig.for_data(data, model="ddpm")``) on the same image data and batch as
# the GAN: Ho et al. (2020)'s T = 1000 steps with the linear schedule, Adam 2e-4 and an EMA of the weights; a U-Net of
# width 32 (566,945 parameters, ``course_lib.unet``). Not yet measured against the GAN recipe.
DDPM: dict[str, dict] = {
    "fashion-mnist": dict(model="ddpm", image_size=32, g_width=32, batch_size=64, lr_g=2e-4, betas=(0.9, 0.999),
                          ema_decay=0.999, diffusion_steps=1000, noise_schedule="linear", steps=2000,
                          checkpoint_every=1000),
}
DDPM["mnist"] = dict(DDPM["fashion-mnist"])
DDPM["digits"] = dict(DDPM["fashion-mnist"], image_size=16)
