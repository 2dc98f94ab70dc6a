"""Helpers for notebook 04, which rebuilds the source article's DCGAN listing and repairs it fault by fault.

The article's networks are rebuilt here from their description (a DCGAN in the style of Radford et al. 2015 and
pytorch/examples, for 32x32 images), not copied; the notebook reproduces each fault in a few lines of its own.

* ``conv2d_out_size`` / ``conv_transpose2d_out_size``: the size formulas of PyTorch's (transposed) convolutions.
* ``stack_out_sizes``: the spatial size after every convolution of a ``nn.Sequential``, from those formulas.
* ``listing_generator`` / ``listing_discriminator``: 32x32 DCGAN networks laid out like the article's listing
  (a discriminator that ends in a 4x4 convolution, so its output has shape (N, 1, 1, 1), and a sigmoid).
* ``trace_shapes``: run a ``nn.Sequential`` layer by layer and record each output shape, naming the layer that
  fails. ``weight_stats``: mean and standard deviation of the weights of each layer. ``grad_norm``: how much
  gradient a module holds. ``pad_to``: pad images to a larger square size with a background value.

    >>> from course_lib import article
    >>> article.conv_transpose2d_out_size(4, kernel=4, stride=2, padding=1)
    8
    >>> G = article.listing_generator(channels=1, width=16)
    >>> article.trace_shapes(G, torch.randn(2, 100, 1, 1))[-1]
    ('10: Tanh', (2, 1, 32, 32))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .utils import check_int

__all__ = ["conv2d_out_size", "conv_transpose2d_out_size", "stack_out_sizes", "listing_generator",
           "listing_discriminator", "trace_shapes", "ShapeTraceError", "weight_stats", "grad_norm", "pad_to"]


def conv2d_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r"""Output height (or width) of ``nn.Conv2d`` on an input of height ``size``:
    $\lfloor (size + 2p - d(k - 1) - 1) / s \rfloor + 1$.

    Raises:
        ValueError: a bad argument, or a kernel larger than the padded input (what PyTorch refuses at run time).
    """
    for name, v, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0),
                         ("dilation", dilation, 1)):
        check_int(name, v, minimum=low)
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"a {kernel}x{kernel} kernel (dilation {dilation}) does not fit an input of size {size} "
                         f"with padding {padding}: the padded input ({size + 2 * padding}) is smaller than the "
                         f"kernel's span ({span}); use a smaller kernel, more padding or a larger input")
    return (size + 2 * padding - span) // stride + 1


def conv_transpose2d_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
                              dilation: int = 1) -> int:
    r"""Output height (or width) of ``nn.ConvTranspose2d`` on an input of height ``size``:
    $(size - 1)s - 2p + d(k - 1) + output\_padding + 1$.

    Raises:
        ValueError: a bad argument (``output_padding`` must be smaller than ``stride`` or ``dilation``), or a
            non-positive result.
    """
    for name, v, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0),
                         ("output_padding", output_padding, 0), ("dilation", dilation, 1)):
        check_int(name, v, minimum=low)
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding ({output_padding}) must be smaller than stride ({stride}) or dilation "
                         f"({dilation}), as in PyTorch")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out <= 0:
        raise ValueError(f"these settings give a non-positive output size ({out}) from input size {size}; "
                         f"reduce the padding")
    return out


def stack_out_sizes(model: nn.Module, size: int) -> list[int]:
    """Spatial sizes through every ``Conv2d`` / ``ConvTranspose2d`` of ``model`` (in module order), from the size
    formulas: ``[size, after layer 1, after layer 2, ...]``. Square inputs and kernels only; other layers (batch
    norm, activations) keep the size."""
    check_int("size", size)
    sizes = [size]
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            k, s, p, d = m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]
            if isinstance(p, str):
                raise ValueError(f"{m}: string padding ({p!r}) is not supported; give the padding as a number")
            if isinstance(m, nn.Conv2d):
                sizes.append(conv2d_out_size(sizes[-1], k, s, p, d))
            else:
                sizes.append(conv_transpose2d_out_size(sizes[-1], k, s, p, m.output_padding[0], d))
    return sizes


def listing_generator(channels: int = 3, latent_dim: int = 100, width: int = 64) -> nn.Sequential:
    """z (N, latent_dim, 1, 1) -> images (N, channels, 32, 32) in [-1, 1]: the article's generator layout.

    A 4x4 transposed convolution to (4 width) x 4 x 4, then three stride-2 transposed convolutions
    (4 -> 8 -> 16 -> 32) that halve the width, batch norm and ReLU in between, tanh at the end. With the article's
    ``channels=3`` it makes colour images, although the listing trains it on 1-channel MNIST.
    """
    for name, v in (("channels", channels), ("latent_dim", latent_dim), ("width", width)):
        check_int(name, v)
    w = 4 * width
    layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, w, 4, 1, 0, bias=False), nn.BatchNorm2d(w),
                               nn.ReLU(True)]
    for _ in range(2):
        layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(True)]
        w //= 2
    layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def listing_discriminator(channels: int = 3, width: int = 64, sigmoid: bool = True) -> nn.Sequential:
    """images (N, channels, 32, 32) -> D(x) of shape (N, 1, 1, 1): the article's discriminator layout.

    Three stride-2 convolutions (32 -> 16 -> 8 -> 4) that double the width, LeakyReLU(0.2), batch norm after
    the second and third, then a 4x4 convolution to one value per image, and (``sigmoid=True``, as in the article)
    a sigmoid, so it returns probabilities. Note the 4-D output: it does not match labels of shape (N, 1).
    """
    for name, v in (("channels", channels), ("width", width)):
        check_int(name, v)
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    w = width
    for _ in range(2):
        layers += [nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True)]
        w *= 2
    layers.append(nn.Conv2d(w, 1, 4, 1, 0, bias=False))
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class ShapeTraceError(RuntimeError):
    """A layer failed during ``trace_shapes``; the message names the layer, its input shape and the shapes so far."""


def trace_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``x`` through the children of ``model`` one at a time; return ``[(\"i: LayerType\", output shape), ...]``.

    For ``nn.Sequential`` models (the children run in order). Runs without gradient tracking.

    Raises:
        ShapeTraceError: a layer failed; the message names it, its input shape, the shapes before it and
            PyTorch's own error.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    children = list(model.named_children())
    if not children:
        raise ValueError(f"{type(model).__name__} has no child layers to trace; pass a nn.Sequential")
    trace: list[tuple[str, tuple[int, ...]]] = []
    with torch.no_grad():
        for name, layer in children:
            label = f"{name}: {type(layer).__name__}"
            try:
                x = layer(x)
            except Exception as exc:  # any layer error: say where it happened
                so_far = ", ".join(f"{n} -> {s}" for n, s in trace) or "none"
                raise ShapeTraceError(f"layer {label} failed on an input of shape {tuple(x.shape)} "
                                      f"(shapes so far: {so_far}): {type(exc).__name__}: {exc}") from exc
            trace.append((label, tuple(x.shape)))
    return trace


def weight_stats(model: nn.Module) -> list[dict]:
    """Mean and standard deviation of the weight of every convolution, linear, embedding and batch-norm layer.

    Returns a list of dicts ``{"layer": name, "kind": type name, "mean": float, "std": float, "numel": int}``
    in module order (the batch-norm "weight" is its scale gamma).
    """
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding, nn.BatchNorm2d)
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, kinds) and getattr(m, "weight", None) is not None:
            w = m.weight.detach().float()
            rows.append({"layer": name, "kind": type(m).__name__, "mean": float(w.mean()),
                         "std": float(w.std()) if w.numel() > 1 else 0.0, "numel": w.numel()})
    return rows


def grad_norm(model: nn.Module) -> float:
    """Euclidean norm of all gradients held by ``model``'s parameters (0.0 when none holds a gradient)."""
    grads = [p.grad.detach().float().flatten() for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.cat(grads).norm())


def pad_to(x: torch.Tensor, size: int, value: float = -1.0) -> torch.Tensor:
    """Pad (N, C, H, W) images equally on all sides to (N, C, size, size) with ``value`` (-1 = black background in
    [-1, 1] images); e.g. MNIST's 28x28 to 32x32 adds 2 pixels per side. An odd difference puts the extra
    pixel at the bottom / right."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be images of shape (N, C, H, W), got {tuple(getattr(x, 'shape', ()))}")
    check_int("size", size)
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"images of size {h}x{w} are larger than {size}x{size}; crop or resize them instead")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=value)

