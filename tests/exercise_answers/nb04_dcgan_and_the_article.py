"""Answers for solutions/04_dcgan_and_the_article.ipynb."""

_STACK = ("for kernel, stride, padding in layers:\n"
          "    size = convT_out(size, kernel, stride, padding)\n"
          "return size")

_G28 = ("G28 = nn.Sequential(\n"
        "    nn.ConvTranspose2d(100, 64, 7, 1, 0, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),\n"
        "    nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(True),\n"
        "    nn.ConvTranspose2d(32, 1, 4, 2, 1, bias=False), {last},\n"
        ")\n")
_D28 = ("D28 = nn.Sequential(\n"
        "    nn.Conv2d(1, 32, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),\n"
        "    nn.Conv2d(32, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2, True),\n"
        "    nn.Conv2d(64, 1, 7, 1, 0, bias=False){tail},\n"
        ")\n")

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "the formula of Conv2d, not of ConvTranspose2d",
             "answer": ["return (size + 2 * padding - kernel) // stride + 1", _STACK],
             "hint": ("convT_out(", "expected")},
            {"why": "padding added instead of removed",
             "answer": ["return (size - 1) * stride + 2 * padding + kernel", _STACK],
             "hint": ("convT_out(", "expected")},
            {"why": "stride applied to the size, not to size - 1",
             "answer": ["return size * stride - 2 * padding + kernel", _STACK],
             "hint": ("convT_out(", "expected")},
            {"why": "stack_size applies only the first layer",
             "answer": ["return (size - 1) * stride - 2 * padding + kernel",
                        "kernel, stride, padding = layers[0]\nreturn convT_out(size, kernel, stride, padding)"],
             "hint": ("stack_size gives", "PyTorch makes")},
            {"why": "stack_size restarts every layer from the input size",
             "answer": ["return (size - 1) * stride - 2 * padding + kernel",
                        "out = size\nfor k, s, p in layers:\n    out = convT_out(size, k, s, p)\nreturn out"],
             "hint": ("stack_size gives", "PyTorch makes")},
        ],
        "right": [
            ["return stride * (size - 1) + kernel - 2 * padding",
             "import functools\nreturn functools.reduce(lambda n, layer: convT_out(n, *layer), layers, size)"],
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "no detach: the D step back-propagates into G",
             "answer": "opt_D.zero_grad(set_to_none=True)\nd_loss = losses.d_loss_bce(D(real), D(G(z)))\n"
                       "d_loss.backward()\nopt_D.step()\nreturn d_loss",
             "hint": ("G holds gradients", "detach")},
            {"why": "one call of D on real and fake together: batch norm mixes the two",
             "answer": "opt_D.zero_grad(set_to_none=True)\nfake = G(z).detach()\n"
                       "logits = D(torch.cat([real, fake]))\n"
                       "d_loss = losses.d_loss_bce(logits[:len(real)], logits[len(real):])\n"
                       "d_loss.backward()\nopt_D.step()\nreturn d_loss",
             "hint": ("differs from the reference", "separately")},
            {"why": "no zero_grad: the old gradients are added to the new ones",
             "answer": "fake = G(z).detach()\nd_loss = losses.d_loss_bce(D(real), D(fake))\n"
                       "d_loss.backward()\nopt_D.step()\nreturn d_loss",
             "hint": ("zero_grad",)},
            {"why": "real and fake swapped in the loss",
             "answer": "opt_D.zero_grad(set_to_none=True)\nfake = G(z).detach()\n"
                       "d_loss = losses.d_loss_bce(D(fake), D(real))\nd_loss.backward()\nopt_D.step()\nreturn d_loss",
             "hint": ("differs from the reference",)},
            {"why": "returns a Python float",
             "answer": "opt_D.zero_grad(set_to_none=True)\nfake = G(z).detach()\n"
                       "d_loss = losses.d_loss_bce(D(real), D(fake))\nd_loss.backward()\nopt_D.step()\n"
                       "return d_loss.item()",
             "hint": ("0-dimensional tensor",)},
            {"why": "the optimiser step forgotten",
             "answer": "opt_D.zero_grad(set_to_none=True)\nfake = G(z).detach()\n"
                       "d_loss = losses.d_loss_bce(D(real), D(fake))\nd_loss.backward()\nreturn d_loss",
             "hint": ("opt_D.step()",)},
        ],
        "right": [
            "with torch.no_grad():\n    fakes = G(z)\nD.zero_grad()\n"
            "ones, zeros = torch.ones(len(real)), torch.zeros(len(fakes))\n"
            "loss = (F.binary_cross_entropy_with_logits(D(real).view(-1), ones)\n"
            "        + F.binary_cross_entropy_with_logits(D(fakes).view(-1), zeros))\n"
            "loss.backward()\nopt_D.step()\nreturn loss.detach()",
        ],
    },
    "Exercise 3": {
        "cells": ("netG = article.listing_generator(channels=3", "mnist_like = torch.rand"),
        "wrong": [
            {"why": "a generator ending in a sigmoid: pixels in [0, 1], not the data's [-1, 1]",
             "answer": _G28.format(last="nn.Sigmoid()") + _D28.format(tail=""),
             "hint": ("nn.Tanh()", "not nn.Sigmoid()")},
            {"why": "a sigmoid at the end of D: probabilities, not logits",
             "answer": _G28.format(last="nn.Tanh()") + _D28.format(tail=", nn.Sigmoid()"),
             "hint": ("drop the sigmoid",)},
            {"why": "the article's 32x32 generator layout",
             "answer": "G28 = nn.Sequential(\n"
                       "    nn.ConvTranspose2d(100, 64, 4, 1, 0), nn.BatchNorm2d(64), nn.ReLU(True),\n"
                       "    nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(True),\n"
                       "    nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ReLU(True),\n"
                       "    nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh(),\n)\n" + _D28.format(tail=""),
             "hint": ("expected (8, 1, 28, 28)",)},
            {"why": "D's last layer leaves a 4x4 map: 16 outputs per image",
             "answer": _G28.format(last="nn.Tanh()")
                       + _D28.format(tail="").replace("nn.Conv2d(64, 1, 7, 1, 0", "nn.Conv2d(64, 1, 4, 1, 0"),
             "hint": ("one logit per image",)},
            {"why": "no batch normalisation in G",
             "answer": "G28 = nn.Sequential(\n"
                       "    nn.ConvTranspose2d(100, 64, 7, 1, 0), nn.ReLU(True),\n"
                       "    nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(True),\n"
                       "    nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh(),\n)\n" + _D28.format(tail=""),
             "hint": ("batch normalisation",)},
        ],
        "right": [
            # a linear layer to 7x7, then upsampling + convolution; D with a linear head on (N, 64 * 7 * 7)
            "G28 = nn.Sequential(\n"
            "    nn.Flatten(), nn.Linear(100, 48 * 7 * 7), nn.Unflatten(1, (48, 7, 7)), nn.BatchNorm2d(48), nn.ReLU(),\n"
            "    nn.Upsample(scale_factor=2), nn.Conv2d(48, 24, 3, 1, 1), nn.BatchNorm2d(24), nn.ReLU(),\n"
            "    nn.Upsample(scale_factor=2), nn.Conv2d(24, 1, 3, 1, 1), nn.Tanh(),\n"
            ")\n"
            "D28 = nn.Sequential(\n"
            "    nn.Conv2d(1, 16, 4, 2, 1), nn.LeakyReLU(0.2),\n"
            "    nn.Conv2d(16, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),\n"
            "    nn.Flatten(), nn.Linear(32 * 7 * 7, 1),\n"
            ")",
        ],
    },
}
