"""Answers for solutions/01_gan_theory.ipynb."""

SETUP = ("x = torch.linspace(-10, 10",)   # the grid x and p_data

_JSD_SETUP = ("jsd_equal = jsd(theory.gaussian_pdf(x, 0, 1), theory.gaussian_pdf(x, 0, 1), x)\n"
              "jsd_far = jsd(theory.gaussian_pdf(x, -5, 1), theory.gaussian_pdf(x, 5, 1), x)")

EXERCISES = {
    "Exercise 1": {
        "cells": SETUP,
        "wrong": [
            {"why": "the fake density on top: the probability of being fake",
             "answer": "return p_g / (p_data + p_g)",
             "hint": ("differs", "p_data / (p_data + p_g)")},
            {"why": "no care for 0/0: NaN where both densities vanish",
             "answer": "return p_data / (p_data + p_g)",
             "hint": ("edge cases",)},
            {"why": "0 instead of 1/2 where both densities vanish",
             "answer": "total = p_data + p_g\nreturn torch.where(total > 0, p_data / total.clamp_min(1e-300), 0.0)",
             "hint": ("edge cases", "neither")},
        ],
        "right": [
            "out = torch.full_like(p_data, 0.5)\nmask = (p_data + p_g) != 0\n"
            "out[mask] = p_data[mask] / (p_data[mask] + p_g[mask])\nreturn out",
        ],
    },
    "Exercise 2": {
        "cells": SETUP,
        "wrong": [
            {"why": "log base 2: the JSD then tends to 1, not log 2",
             "answer": ["m = 0.5 * (p + q)\n"
                        "kl = lambda a: torch.trapezoid(torch.where(a > 0, a * torch.log2(a.clamp_min(1e-300) / "
                        "m.clamp_min(1e-300)), 0.0), x)\n"
                        "return float(0.5 * kl(p) + 0.5 * kl(q))", _JSD_SETUP],
             "hint": ("log 2",)},
            {"why": "the sum of the two KL terms, without the factor 1/2",
             "answer": ["m = 0.5 * (p + q)\n"
                        "kl = lambda a: torch.trapezoid(torch.where(a > 0, a * torch.log(a.clamp_min(1e-300) / "
                        "m.clamp_min(1e-300)), 0.0), x)\n"
                        "return float(kl(p) + kl(q))", _JSD_SETUP],
             "hint": ("log 2",)},
            {"why": "KL(p || q) instead of the JSD: not symmetric, and infinite-ish far apart",
             "answer": ["return float(torch.trapezoid(torch.where(p > 0, p * torch.log(p.clamp_min(1e-300) / "
                        "q.clamp_min(1e-300)), 0.0), x))", _JSD_SETUP],
             "hint": ("log 2",)},
        ],
        "right": [
            ["import numpy as np\n"
             "pn, qn, xn = p.numpy(), q.numpy(), x.numpy()\nmn = (pn + qn) / 2\n"
             "def kl(a):\n"
             "    with np.errstate(divide='ignore', invalid='ignore'):\n"
             "        f = np.where(a > 0, a * np.log(a / mn), 0.0)\n"
             "    return np.trapezoid(f, xn)\n"
             "return float((kl(pn) + kl(qn)) / 2)",
             "same = theory.gaussian_pdf(x, 0, 1)\njsd_equal = jsd(same, same, x)\n"
             "jsd_far = jsd(theory.gaussian_pdf(x, 5, 1), theory.gaussian_pdf(x, -5, 1), x)"],
        ],
    },
}
