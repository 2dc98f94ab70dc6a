"""Answers for solutions/03_first_gan_2d.ipynb."""

NETWORKS = ("ring = data.load(", "class Generator(", "class Discriminator(")
TRAINED = NETWORKS + ("batch = 256", "def d_step(", "class ModeHistory", "plain_G, plain_D = Generator()")  # your step
REMEDIES = TRAINED + ("def show_histories(", "remedies = {")   # the remedies, up to the recipe's trainer

_STEP = "opt_D.zero_grad()\nd_loss.backward()\nopt_D.step()\nreturn d_loss.item()"
_COUNT = ("dist, nearest = torch.cdist(samples.double(), centres.double()).min(dim=1)\n"
          "good = dist <= n_std * std\n")

EXERCISES = {
    "Exercise 1": {
        "cells": NETWORKS,
        "wrong": [
            {"why": "no detach: the loss is right, but backward fills G's gradients",
             "answer": "d_loss = losses.d_loss_bce(D(x_real), D(G(z)))\n" + _STEP,
             "hint": ("detach",)},
            {"why": "real and fake swapped: the discriminator learns to call the fakes real",
             "answer": "x_fake = G(z).detach()\nd_loss = losses.d_loss_bce(D(x_fake), D(x_real))\n" + _STEP,
             "hint": ("differs", "signs/labels")},
            {"why": "no zero_grad: the gradients of the earlier calls pile up",
             "answer": "x_fake = G(z).detach()\nd_loss = losses.d_loss_bce(D(x_real), D(x_fake))\n"
                       "d_loss.backward()\nopt_D.step()\nreturn d_loss.item()",
             "hint": ("weights differ", "zero the gradients")},
            {"why": "returns the loss tensor, not a float",
             "answer": "x_fake = G(z).detach()\nd_loss = losses.d_loss_bce(D(x_real), D(x_fake))\n"
                       "opt_D.zero_grad()\nd_loss.backward()\nopt_D.step()\nreturn d_loss",
             "hint": ("python float", ".item()")},
            {"why": "one BCE over the concatenated batch: the mean over 2N points, half of L_D",
             "answer": "x_fake = G(z).detach()\nlogits = D(torch.cat([x_real, x_fake]))\n"
                       "target = torch.cat([torch.ones(len(x_real)), torch.zeros(len(x_fake))])\n"
                       "d_loss = F.binary_cross_entropy_with_logits(logits, target)\n" + _STEP,
             "hint": ("differs from train.d_step",)},
            {"why": "the optimiser steps before backward: it applies no gradient (or last call's)",
             "answer": "x_fake = G(z).detach()\nd_loss = losses.d_loss_bce(D(x_real), D(x_fake))\n"
                       "opt_D.zero_grad()\nopt_D.step()\nd_loss.backward()\nreturn d_loss.item()",
             "hint": ("weights differ",)},
        ],
        "right": [
            "with torch.no_grad():\n    fake = G(z)\n"
            "loss = (F.binary_cross_entropy_with_logits(D(x_real), torch.ones(len(x_real)))\n"
            "        + F.binary_cross_entropy_with_logits(D(fake), torch.zeros(len(fake))))\n"
            "opt_D.zero_grad(set_to_none=True)\nloss.backward()\nopt_D.step()\nreturn float(loss.detach())",
        ],
    },
    "Exercise 2": {
        "cells": TRAINED,
        "wrong": [
            {"why": "within 1 standard deviation instead of 3",
             "answer": "dist, nearest = torch.cdist(samples.double(), centres.double()).min(dim=1)\n"
                       "good = dist <= std\ncounts = torch.bincount(nearest[good], minlength=len(centres))\n"
                       "return int((counts >= min_count).sum()), float(good.double().mean())",
             "hint": ("high-quality share",)},
            {"why": "counts every point on its nearest mode, high quality or not",
             "answer": _COUNT + "counts = torch.bincount(nearest, minlength=len(centres))\n"
                       "return int((counts >= min_count).sum()), float(good.double().mean())",
             "hint": ("modes", ">= 20")},
            {"why": "more than 20 points instead of at least 20",
             "answer": _COUNT + "counts = torch.bincount(nearest[good], minlength=len(centres))\n"
                       "return int((counts > min_count).sum()), float(good.double().mean())",
             "hint": ("15 to 22 points per mode", "modes")},
            {"why": "the share in percent",
             "answer": _COUNT + "counts = torch.bincount(nearest[good], minlength=len(centres))\n"
                       "return int((counts >= min_count).sum()), 100 * float(good.double().mean())",
             "hint": ("high-quality share", "fraction")},
        ],
        "right": [
            # float32, squared distances, a Python loop over the modes
            "d2 = ((samples[:, None, :] - centres.float()[None]) ** 2).sum(-1)\n"
            "best, which = d2.min(dim=1)\nok = best <= (n_std * std) ** 2\n"
            "per_mode = [int((which[ok] == k).sum()) for k in range(len(centres))]\n"
            "return sum(c >= min_count for c in per_mode), ok.sum().item() / len(samples)",
        ],
    },
    "Exercise 3": {
        "cells": REMEDIES,
        "wrong": [
            {"why": "nothing changed", "answer": "my_changes = {}", "hint": ("non-empty",)},
            {"why": "the recipe's own value", "answer": "my_changes = {'latent_dim': 2}",
             "hint": ("does not change anything",)},
            {"why": "n_critic=1 is what the recipe resolves to", "answer": "my_changes = {'n_critic': 1}",
             "hint": ("does not change anything",)},
            {"why": "two changes at once: the result cannot be traced to one of them",
             "answer": "my_changes = {'latent_dim': 1, 'lr_d': 5e-3}", "hint": ("one thing at a time",)},
            {"why": "a logging setting, not part of what is learnt", "answer": "my_changes = {'log_every': 10}",
             "hint": ("not what it learns",)},
        ],
        "right": ["my_changes = dict(loss='lsgan')", "my_changes = {'ema_decay': None}"],
    },
}
