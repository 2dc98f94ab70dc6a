"""Figures: image grids, training curves, and 2-D samples over the discriminator's contour.

All functions draw with matplotlib and return the ``Figure`` (or ``Axes``) so notebooks can save or adjust them.
``sample_figure`` is the one place that decides how samples are shown (points, images or a histogram); the
live plot and the command line both use it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from .utils import eval_mode

if TYPE_CHECKING:
    from .data import Dataset

__all__ = ["image_grid", "show_images", "gan_diagram", "plot_history", "plot_2d", "discriminator_grid", "sample_kind",
           "sample_figure", "figure_samples", "LivePlot"]


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] -> (H', W', 3) float array in [0, 1] laid out by torchvision's make_grid."""
    from torchvision.utils import make_grid

    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, size: float = 4.0):
    """Show (N, C, H, W) images in [-1, 1] as one grid; returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image_grid(images, nrow), cmap="gray", interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def gan_diagram(ax: plt.Axes | None = None) -> plt.Figure:
    """The GAN in one picture: noise z -> G -> G(z); real x and G(z) -> D -> "real or fake?"; returns the Figure.

    Drawn with matplotlib only (boxes and arrows, no data), for notebooks that open with it.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0.4, 3.6)
    ax.set_axis_off()
    boxes = {  # name: (x, y, text, face colour)
        "z": (0.9, 1.0, "noise\n$z \\sim \\mathcal{N}(0, I)$", "#eeeeee"),
        "G": (3.0, 1.0, "generator\n$G$", "#c6dbef"),
        "Gz": (5.2, 1.0, "fake sample\n$G(z)$", "#eeeeee"),
        "x": (5.2, 3.0, "real sample\n$x \\sim p_{data}$", "#eeeeee"),
        "D": (7.3, 2.0, "discriminator\n$D$", "#fdd0a2"),
        "out": (9.2, 2.0, "$D(\\cdot) \\in (0, 1)$\nreal or fake?", "white"),
    }
    for x, y, text, face in boxes.values():
        ax.text(x, y, text, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.4", facecolor=face, edgecolor="0.3"))
    arrow = dict(arrowstyle="-|>", color="0.2", lw=1.4, shrinkA=28, shrinkB=28)
    for a, b in [("z", "G"), ("G", "Gz"), ("Gz", "D"), ("x", "D"), ("D", "out")]:
        ax.annotate("", xy=boxes[b][:2], xytext=boxes[a][:2], arrowprops=arrow)
    ax.set_title("G turns noise into samples; D tells real samples from G's")
    return ax.figure


def plot_history(history: dict, smooth: int = 25, axes=None, loss: str | None = None):
    """Loss curves (left) and mean D(x), D(G(z)) (right) from ``GANTrainer.history``; returns the Figure.

    ``loss``: the run's loss (``TrainConfig.loss``). The right panel shows the mean sigmoid of D's outputs; for
    a loss whose D outputs a score rather than a logit (lsgan, hinge, wgan-gp) it is labelled as such, and the
    dashed line at 0.5 (D's equilibrium under BCE) is left out (``losses.d_output_labels``)."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    else:
        fig = axes[0].figure

    def smoothed(v):
        v = np.asarray(v, dtype=float)
        k = max(1, min(smooth, len(v) // 5 or 1))
        return np.convolve(v, np.ones(k) / k, mode="valid") if len(v) >= k else v

    for key, label in (("d_loss", "discriminator loss"), ("g_loss", "generator loss")):
        if history.get(key):
            axes[0].plot(smoothed(history[key]), label=label)
    axes[0].set_xlabel("step")
    axes[0].set_title("losses")
    axes[0].legend()
    from .losses import d_output_labels, outputs_probabilities

    real_label, fake_label = d_output_labels(loss)
    for key, label in (("d_real", f"mean {real_label}"), ("d_fake", f"mean {fake_label}")):
        if history.get(key):
            axes[1].plot(smoothed(history[key]), label=label)
    if outputs_probabilities(loss):
        axes[1].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_xlabel("step")
    axes[1].set_title("discriminator outputs")
    axes[1].legend()
    fig.tight_layout()
    return fig


@torch.no_grad()
def discriminator_grid(D: Callable, lim: float, n: int = 100, device="cpu"):
    """Evaluate D(x) = sigmoid(logit) on an n x n grid over [-lim, lim]^2; returns (xx, yy, probs) arrays."""
    xs = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(xs, xs, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(device)
    with eval_mode(D if isinstance(D, torch.nn.Module) else None):  # a plain function has no mode
        probs = torch.sigmoid(D(pts).float()).reshape(n, n).cpu().numpy()
    return xx.numpy(), yy.numpy(), probs


def plot_2d(samples: torch.Tensor, real: torch.Tensor | None = None, D: Callable | None = None,
            centres: torch.Tensor | None = None, lim: float | None = None, ax=None, title: str | None = None,
            device="cpu", loss: str | None = None):
    """Generated points (orange) over real points (blue) and, if ``D`` is given, its D(x) contour; returns Axes.
    ``loss`` names the contour's colour bar (``losses.d_output_labels``: D(x), or the sigmoid of a score)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    s = samples.detach().float().cpu().numpy()
    if lim is None:
        ref = real if real is not None else (centres if centres is not None else samples)
        lim = float(torch.as_tensor(ref).abs().max()) * 1.35 + 0.2
    if D is not None:
        xx, yy, probs = discriminator_grid(D, lim, device=device)
        cs = ax.contourf(xx, yy, probs, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
        from .losses import d_output_labels
        ax.figure.colorbar(cs, ax=ax, fraction=0.046, label=d_output_labels(loss)[0])
    if real is not None:
        r = real.detach().float().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:orange", alpha=0.6, label="generated")
    if centres is not None:
        c = torch.as_tensor(centres).cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="k", s=30, label="mode centres")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    if title:
        ax.set_title(title)
    return ax


def sample_kind(dataset: "Dataset") -> str:
    """How samples of ``dataset`` are shown: ``"images"`` (a grid), ``"points"`` (2-D points, over D's contour
    when there is a D) or ``"values"`` (a histogram of every coordinate: 1-D data, or points of other widths)."""
    if dataset.kind == "images":
        return "images"
    return "points" if tuple(dataset.sample_shape) == (2,) else "values"


def sample_figure(samples: torch.Tensor, dataset: "Dataset", D: Callable | None = None, device=None,
                  title: str | None = None, ax=None, loss: str | None = None):
    """Draw generated ``samples`` the way their dataset's kind calls for (see :func:`sample_kind`); returns the
    Axes (``ax.figure`` is the Figure to save). ``loss``: the run's loss, which names D's contour (``plot_2d``).

    * images, ``(N, C, H, W)`` in [-1, 1]: one grid (8 per row);
    * 2-D points, ``(N, 2)``: over ``len(samples)`` real points, the mode centres and, if ``D`` is given, its
      D(x) contour, evaluated on ``device`` (default: the device of D's parameters, else the CPU);
    * anything else, ``(N, D)``: a histogram of all ``N * D`` values over one of the real data.

    Raises:
        ValueError: the samples do not have the dataset's sample shape (the message names both).
    """
    shape = tuple(samples.shape[1:])
    if samples.dim() < 2 or shape != tuple(dataset.sample_shape):
        raise ValueError(f"samples of shape {tuple(samples.shape)} do not match dataset {dataset.name!r}, whose "
                         f"samples have shape {tuple(dataset.sample_shape)}; pass (N, "
                         f"{', '.join(map(str, dataset.sample_shape))}) samples from a model trained on it")
    kind = sample_kind(dataset)
    if kind == "images":
        return show_images(samples, title=title, ax=ax, size=5)
    if kind == "points":
        if device is None:
            param = next(D.parameters(), None) if isinstance(D, torch.nn.Module) else None
            device = param.device if param is not None else "cpu"
        return plot_2d(samples, dataset.x[: len(samples)], D=D, centres=dataset.centres, ax=ax, title=title,
                       device=device, loss=loss)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    values = samples.detach().float().cpu().numpy().ravel()
    real = dataset.x[: len(samples)].float().cpu().numpy().ravel()
    bins = np.linspace(min(values.min(), real.min()), max(values.max(), real.max()), 61)
    ax.hist(real, bins=bins, density=True, histtype="step", color="tab:blue", label="real")
    ax.hist(values, bins=bins, density=True, alpha=0.6, color="tab:orange", label="generated")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def figure_samples(trainer, n: int = 2500) -> torch.Tensor:
    """The samples a figure of a run shows (``sample_figure``): for images, 64 from the trainer's fixed noise
    (and fixed labels), the same images step after step; for points or values, ``n`` fresh samples. The live
    plot and ``python -m course_lib train``'s ``samples.png`` both draw these."""
    if sample_kind(trainer.dataset) == "images":
        labels = None if trainer.fixed_labels is None else trainer.fixed_labels.cpu()
        return trainer.sample(64, noise=trainer.fixed_noise.cpu(), labels=labels)
    return trainer.sample(n)


class LivePlot:
    """A training callback that redraws a figure in the notebook every ``callback_every`` steps.

    For point data it draws samples over D's contour with the mode metrics; for images a grid from the
    trainer's fixed noise; in both cases the history curves beside it. Outside a notebook it does nothing
    visible until ``show_final`` (use ``LivePlot(live=False)`` to draw only at the end).
    """

    def __init__(self, n_samples: int = 1000, live: bool = True):
        self.n_samples, self.live = n_samples, live
        self._handle = None

    def draw(self, trainer):
        from .metrics import mode_metrics

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        ds, title = trainer.dataset, f"step {trainer.step}"
        x = figure_samples(trainer, self.n_samples)
        if sample_kind(ds) == "points" and ds.centres is not None:
            m = mode_metrics(x, ds.centres, ds.std, min_count=max(1, round(20 * self.n_samples / 2500)))
            title += f": {m['modes']}/{m['num_modes']} modes, {100 * m['high_quality']:.0f}% HQ"
        loss = trainer.config.loss
        sample_figure(x, ds, D=trainer.D, device=trainer.device, title=title, ax=axes[0], loss=loss)
        plot_history(trainer.history, axes=axes[1:], loss=loss)
        fig.tight_layout()
        return fig

    def __call__(self, trainer) -> None:
        if not self.live:
            return
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        fig = self.draw(trainer)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
