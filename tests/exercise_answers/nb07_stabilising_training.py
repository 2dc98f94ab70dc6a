"""Answers for solutions/07_stabilising_training.ipynb."""

SETUP = ("BASELINE = dict(",)   # the cell defining BASELINE, ring and seeds

EXERCISES = {
    "Exercise 1": {
        "cells": SETUP,
        "wrong": [
            {"why": "no create_graph: the right value, but no gradient reaches D's weights",
             "answer": "x = x.detach().requires_grad_(True)\n(g,) = torch.autograd.grad(D(x).sum(), x)\n"
                       "return g.pow(2).sum(dim=1).mean()",
             "hint": ("create_graph=True",)},
            {"why": "the norm, not its square",
             "answer": "x = x.detach().requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)\nreturn g.norm(dim=1).mean()",
             "hint": ("R1: yours", "square")},
            {"why": "mean over both coordinates: half the penalty",
             "answer": "x = x.detach().requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)\nreturn g.pow(2).mean()",
             "hint": ("R1: yours", "sum over its 2 coordinates")},
            {"why": "differentiates the mean of the logits: gradients 1/N too small",
             "answer": "x = x.detach().requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x).mean(), x, create_graph=True)\n"
                       "return g.pow(2).sum(dim=1).mean()",
             "hint": ("R1: yours",)},
        ],
        "right": [
            "inp = x.clone().requires_grad_()\nlogits = D(inp)\n"
            "grad = torch.autograd.grad(logits, inp, grad_outputs=torch.ones_like(logits), create_graph=True)[0]\n"
            "return (grad * grad).sum(1).mean()",
        ],
    },
    "Exercise 2": {
        "cells": SETUP,
        "wrong": [
            {"why": "eps weights the fake batch instead of the real one",
             "answer": "x_hat = ((1 - eps) * real.detach() + eps * fake.detach()).requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)\n"
                       "return (g.norm(dim=1) - 1).pow(2).mean()",
             "hint": ("GP: yours", "eps * real")},
            {"why": "no create_graph",
             "answer": "x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x_hat).sum(), x_hat)\n"
                       "return (g.norm(dim=1) - 1).pow(2).mean()",
             "hint": ("create_graph=True",)},
            {"why": "the squared norm instead of the norm",
             "answer": "x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)\n"
                       "return (g.pow(2).sum(dim=1) - 1).pow(2).mean()",
             "hint": ("GP: yours", "not squared")},
            {"why": "one norm of the whole batch's gradient, not one per sample",
             "answer": "x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)\n"
                       "(g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)\n"
                       "return (g.norm() - 1).pow(2)",
             "hint": ("GP: yours", "each sample")},
        ],
        "right": [
            "x_hat = torch.lerp(fake.detach(), real.detach(), eps).requires_grad_()\nout = D(x_hat)\n"
            "grad = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)[0]\n"
            "norms = grad.pow(2).sum(1).sqrt()\nreturn ((norms - 1) ** 2).mean()",
        ],
    },
    "Exercise 3": {
        "cells": SETUP,
        "wrong": [
            {"why": "the ratio inverted: the generator gets the larger rate",
             "answer": 'ttur_recipes = {f"ratio {r}": {"lr_g": r * 2.5e-4, "lr_d": 2.5e-4} for r in (1, 2, 4, 8)}',
             "hint": ("ratios", "1, 2, 4, 8")},
            {"why": "only lr_d set: lr_g stays at the baseline's 5e-4",
             "answer": 'ttur_recipes = {f"ratio {r}": {"lr_d": r * 2.5e-4} for r in (1, 2, 4, 8)}',
             "hint": ("ratios",)},
            {"why": "the right ratios around another generator rate",
             "answer": 'ttur_recipes = {f"ratio {r}": {"lr_g": 1e-4, "lr_d": r * 1e-4} for r in (1, 2, 4, 8)}',
             "hint": ("keep lr_g at 2.5e-4",)},
            {"why": "ratio 8 forgotten",
             "answer": 'ttur_recipes = {f"ratio {r}": {"lr_g": 2.5e-4, "lr_d": r * 2.5e-4} for r in (1, 2, 4)}',
             "hint": ("one entry per ratio",)},
        ],
        "right": [
            'lr_g = 2.5e-4\nttur_recipes = {}\nfor ratio in [8, 4, 2, 1]:\n'
            '    ttur_recipes["D %dx faster" % ratio] = dict(lr_d=lr_g * ratio, lr_g=lr_g)',
        ],
    },
}
