"""Interactive figures for the notebooks (ipywidgets 8, JupyterLab 4). The widgets only draw: the maths they
show is in ``course_lib.theory`` (D*, the JSD, the Gaussian density) and the samples come from
``course_lib.sampling.generate``.

Each function returns a widget: controls (sliders, dropdowns) above a figure that is redrawn when a control moves.
Where no widget front end exists, nothing is lost:

* the widget's display also carries a static PNG of its first figure, which front ends without a widget manager
  (nbconvert, GitHub, a plain terminal) show instead, with a one-line message;
* without ipywidgets installed, or with ``COURSE_STATIC_WIDGETS=1``, the functions draw the static figure for the
  default values and say why.

    >>> from course_lib import widgets
    >>> widgets.divergence_explorer()                  # notebook 01: move p_g, watch D* and the JSD
    >>> widgets.latent_interpolation(G, latent_dim)    # notebook 04: walk between two points of z-space
    >>> widgets.class_explorer(G, latent_dim, 10)      # notebook 08: pick a class, browse its samples
"""
from __future__ import annotations

import base64
import io
import math
from typing import Any, Callable

import matplotlib.pyplot as plt
import torch

from .data import mixture1d_pdf
from .sampling import generate
from .theory import gaussian_pdf, jsd_by_quadrature, optimal_discriminator
from .utils import env_flag

__all__ = ["Explorer", "interactive", "divergence_explorer", "divergence_figure", "latent_interpolation",
           "class_explorer"]
# optimal_discriminator and jsd_by_quadrature are importable from here too (their home before course_lib.theory)

STATIC_MESSAGE = ("Interactive version: run this notebook in JupyterLab (or Jupyter Notebook 7) with ipywidgets "
                  "installed; shown here is a static figure for the default values.")


def _widgets_available() -> bool:
    if env_flag("COURSE_STATIC_WIDGETS"):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class Explorer:
    """A figure driven by controls. ``render(**values) -> matplotlib Figure`` draws it.

    Attributes:
        widget: the ipywidgets container (None in static mode).
        controls: dict name -> ipywidgets control.
        render_count: how many figures have been drawn (tests use it).
        values: the values of the last drawing.
    """

    def __init__(self, render: Callable[..., Any], controls: dict[str, Any], defaults: dict[str, Any]):
        self.render, self.controls, self.values = render, controls, dict(defaults)
        self.render_count = 0
        self.widget = None
        self._static_png = None
        if controls and _widgets_available():
            import ipywidgets as w

            self.output = w.Output()
            self.widget = w.VBox([w.HBox(list(controls.values())), self.output])
            for name, control in controls.items():
                control.observe(lambda change, name=name: self.update(**{name: change["new"]}), names="value")
            with self.output:
                self._draw()

    def _draw(self):
        from IPython.display import display

        fig = self.render(**self.values)
        self.render_count += 1
        if self._static_png is None:
            self._static_png = _png(fig)
        if self.widget is not None:
            self.output.clear_output(wait=True)
            with self.output:
                display(fig)
        plt.close(fig)
        return fig

    def update(self, **values) -> None:
        """Redraw with some values changed (what moving a control does)."""
        self.values.update(values)
        self._draw()

    def _repr_mimebundle_(self, include=None, exclude=None):
        if self.widget is not None:
            bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
            bundle["text/plain"] = STATIC_MESSAGE
            bundle["image/png"] = self._static_png
            return bundle
        fig = self.render(**self.values)
        self.render_count += 1
        png = _png(fig)
        plt.close(fig)
        return {"image/png": png, "text/plain": STATIC_MESSAGE}


def interactive(render: Callable[..., Any], **controls: Any) -> Explorer:
    """Build an ``Explorer`` from ``render`` and controls given as ``name=(kind, default, *args)``.

    Kinds: ``("float", default, min, max, step)``, ``("int", default, min, max)``,
    ``("choice", default, options)``. Example: ``interactive(f, mean=("float", 0.0, -4, 4, 0.1))``.
    """
    if not callable(render):
        raise TypeError(f"render must be a function (**values) -> matplotlib Figure, got {type(render).__name__}")
    for name, spec in controls.items():   # checked in static mode too, so a mistake shows wherever it runs
        if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in _CONTROL_SHAPES:
            raise ValueError(f"control {name!r}: expected a tuple (kind, default, ...) with kind 'float', 'int' or "
                             f"'choice', got {spec!r}")
        size, shape = _CONTROL_SHAPES[spec[0]]
        if len(spec) != size:
            raise ValueError(f"control {name!r}: a {spec[0]!r} control is {shape}, got {spec!r}")
    defaults = {name: spec[1] for name, spec in controls.items()}
    made = {}
    if _widgets_available():
        import ipywidgets as w

        style = {"description_width": "initial"}
        for name, spec in controls.items():
            kind = spec[0]
            if kind == "float":
                made[name] = w.FloatSlider(value=spec[1], min=spec[2], max=spec[3], step=spec[4],
                                           description=name, continuous_update=False, style=style)
            elif kind == "int":
                made[name] = w.IntSlider(value=spec[1], min=spec[2], max=spec[3], description=name,
                                         continuous_update=False, style=style)
            else:
                made[name] = w.Dropdown(value=spec[1], options=spec[2], description=name, style=style)
    return Explorer(render, made, defaults)


_CONTROL_SHAPES = {"float": (5, "('float', default, min, max, step)"), "int": (4, "('int', default, min, max)"),
                   "choice": (3, "('choice', default, options)")}


# ----------------------------------------------------------------------------- notebook 01: D* and the JSD

def divergence_figure(mean: float = 0.0, std: float = 1.0, lim: float = 6.0):
    """Figure: the data mixture (``course_lib.data.mixture1d_pdf``), a Gaussian p_g = N(mean, std^2), D*(x),
    and the generator's criterion C(G) = -log 4 + 2 JSD(p_data || p_g) in the title."""
    x = torch.linspace(-lim, lim, 2001, dtype=torch.float64)
    p_data = mixture1d_pdf(x)
    p_g = gaussian_pdf(x, mean, std)
    d_star = optimal_discriminator(p_data, p_g)
    jsd = jsd_by_quadrature(p_data, p_g, x)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(x, p_data, label=r"$p_{data}$")
    ax.plot(x, p_g, label=r"$p_g$")
    ax.set_ylabel("density")
    ax.set_xlabel("x")
    ax2 = ax.twinx()
    ax2.plot(x, d_star, "k--", lw=1.2, label=r"$D^*(x)$")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel(r"$D^*(x)$")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [l.get_label() for l in lines], loc="upper left", fontsize=8)
    ax.set_title(f"JSD = {jsd:.3f} nats,  C(G) = -log 4 + 2 JSD = {-math.log(4) + 2 * jsd:.3f}")
    fig.tight_layout()
    return fig


def divergence_explorer(mean: float = 0.0, std: float = 1.0) -> Explorer:
    """Sliders for p_g = N(mean, std^2) against the data mixture; redraws p_g, D*(x) and the JSD."""
    return interactive(lambda mean, std: divergence_figure(mean, std),
                       mean=("float", mean, -4.0, 4.0, 0.1), std=("float", std, 0.1, 3.0, 0.05))


# ----------------------------------------------------------------------------- notebooks 04 and 08: latent space

def _images_figure(images: torch.Tensor, title: str, nrow: int):
    from .plots import show_images

    fig, ax = plt.subplots(figsize=(min(12, 1.0 * nrow + 1), 1.6 * max(1, math.ceil(len(images) / nrow)) + 0.4))
    show_images(images, nrow=nrow, ax=ax, title=title)
    fig.tight_layout()
    return fig


def _generate(G: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """G(z) (with ``labels`` for a conditional G) in eval mode, on G's device -> float32 on the CPU."""
    return generate(G, len(z), z.shape[1], next(G.parameters()).device, labels=labels, noise=z,
                    num_classes=None if labels is None else getattr(G, "num_classes", None))


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between (D,) vectors a and b at the (T,) fractions t -> (T, D)."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t[:, None])
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a + (torch.sin(t * omega) / so)[:, None] * b


def latent_interpolation(G: torch.nn.Module, latent_dim: int, steps: int = 8, seed: int = 0,
                         label: int | None = None, num_classes: int | None = None) -> Explorer:
    """Images along a spherical path between two noise vectors z_a (``seed``) and z_b (``seed`` + 1).

    Controls: ``seed`` (picks the end points) and ``t`` (highlights G(z) at one point of the path, shown large
    on the right). ``label`` fixes the class of a conditional generator with ``num_classes`` classes.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")

    def render(seed: int, t: float):
        g = torch.Generator().manual_seed(int(seed))
        za, zb = torch.randn(latent_dim, generator=g), torch.randn(latent_dim, generator=g)
        ts = torch.linspace(0, 1, steps)
        z = torch.cat([_slerp(za, zb, ts), _slerp(za, zb, torch.tensor([float(t)]))])
        labels = None if label is None else torch.full((len(z),), int(label), dtype=torch.long)
        images = _generate(G, z, labels)
        from .plots import image_grid

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 1.9), gridspec_kw={"width_ratios": [steps, 1.3]})
        ax1.imshow(image_grid(images[:steps], nrow=steps), cmap="gray", interpolation="nearest")
        ax1.set_axis_off()
        ax1.set_title(f"z_a -> z_b (seed {seed})")
        ax2.imshow(image_grid(images[steps:], nrow=1), cmap="gray", interpolation="nearest")
        ax2.set_axis_off()
        ax2.set_title(f"t = {t:.2f}")
        return fig

    return interactive(render, seed=("int", seed, 0, 99), t=("float", 0.5, 0.0, 1.0, 0.05))


def class_explorer(G: torch.nn.Module, latent_dim: int, num_classes: int, n: int = 16,
                   class_names: list[str] | None = None) -> Explorer:
    """For a class-conditional generator: pick a class and a seed, see ``n`` samples of that class."""
    if not num_classes or num_classes < 2:
        raise ValueError("class_explorer needs a conditional generator with num_classes >= 2")
    names = class_names or [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")

    def render(label: int, seed: int):
        z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(int(seed)))
        images = _generate(G, z, torch.full((n,), int(label), dtype=torch.long))
        return _images_figure(images, f"class {names[int(label)]} (seed {seed})", nrow=min(n, 8))

    options = [(name, i) for i, name in enumerate(names)]
    return interactive(render, label=("choice", 0, options), seed=("int", 0, 0, 99))
