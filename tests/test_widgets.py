"""course_lib.widgets without a browser: the widgets build, moving a control redraws, the static fallback works,
bad arguments raise. (tests/test_browser.py checks the same widgets in JupyterLab itself.)"""
import base64

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib import widgets
from course_lib.models import DCGANGenerator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(autouse=True)
def _interactive_mode(monkeypatch):
    monkeypatch.delenv("COURSE_STATIC_WIDGETS", raising=False)
    yield
    plt.close("all")


def _png_bytes(bundle: dict) -> bytes:
    data = base64.b64decode(bundle["image/png"])
    assert data.startswith(PNG_MAGIC), "image/png is not a base64 PNG"
    return data


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=8, channels=1, image_size=8, width=4)


@pytest.fixture(scope="module")
def conditional_generator():
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=8, channels=1, image_size=8, width=4, num_classes=3, embed_dim=4)


def test_divergence_explorer_builds_and_redraws_when_a_slider_moves():
    ex = widgets.divergence_explorer()
    assert ex.widget is not None and set(ex.controls) == {"mean", "std"}
    assert ex.render_count == 1 and ex.values == {"mean": 0.0, "std": 1.0}
    mean = ex.controls["mean"]
    assert (mean.min, mean.max, mean.value) == (-4.0, 4.0, 0.0)
    assert not mean.continuous_update, "a drag would queue one redraw per pixel"
    mean.value = 1.5                                   # what moving the slider in the browser does
    assert ex.render_count == 2 and ex.values == {"mean": 1.5, "std": 1.0}
    ex.controls["std"].value = 0.5
    assert ex.render_count == 3 and ex.values == {"mean": 1.5, "std": 0.5}


def test_divergence_figure_depends_on_the_values():
    titles = []
    for mean in (0.0, 2.0):
        fig = widgets.divergence_figure(mean=mean, std=0.5)
        titles.append(fig.axes[0].get_title())
        plt.close(fig)
    assert titles[0] != titles[1] and all("JSD" in t for t in titles)


def test_widget_bundle_carries_the_view_and_a_static_fallback():
    ex = widgets.divergence_explorer(mean=1.0)
    bundle = ex._repr_mimebundle_()
    assert bundle[WIDGET_MIME]["model_id"] == ex.widget.model_id
    assert bundle["text/plain"] == widgets.STATIC_MESSAGE
    _png_bytes(bundle)


def test_static_mode_returns_a_png_and_the_message(monkeypatch):
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "1")
    ex = widgets.divergence_explorer(mean=-1.0, std=2.0)
    assert ex.widget is None and ex.controls == {}
    assert ex.values == {"mean": -1.0, "std": 2.0}
    bundle = ex._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}
    assert "JupyterLab" in bundle["text/plain"] and "static figure" in bundle["text/plain"]
    assert len(_png_bytes(bundle)) > 1000
    assert ex.render_count == 1
    ex.update(mean=0.5)                                # update still works without widgets
    assert ex.values["mean"] == 0.5 and ex.render_count == 2


def test_without_ipywidgets_the_static_figure_is_used(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipywidgets", None)     # import ipywidgets -> ImportError
    ex = widgets.divergence_explorer()
    assert ex.widget is None
    assert set(ex._repr_mimebundle_()) == {"image/png", "text/plain"}


def test_latent_interpolation_builds_and_redraws(generator):
    generator.train()
    ex = widgets.latent_interpolation(generator, latent_dim=8, steps=4, seed=3)
    assert set(ex.controls) == {"seed", "t"} and ex.values == {"seed": 3, "t": 0.5}
    assert ex.render_count == 1
    ex.controls["t"].value = 0.25
    ex.controls["seed"].value = 7
    assert ex.render_count == 3 and ex.values == {"seed": 7, "t": 0.25}
    assert generator.training, "the generator's train/eval mode must be restored after drawing"


def test_latent_interpolation_of_a_conditional_generator(conditional_generator):
    ex = widgets.latent_interpolation(conditional_generator, latent_dim=8, steps=3, label=2, num_classes=3)
    ex.controls["t"].value = 1.0
    assert ex.render_count == 2


def test_class_explorer_builds_and_redraws(conditional_generator):
    ex = widgets.class_explorer(conditional_generator, latent_dim=8, num_classes=3, n=4,
                                class_names=["zero", "one", "two"])
    assert set(ex.controls) == {"label", "seed"}
    assert list(ex.controls["label"].options) == [("zero", 0), ("one", 1), ("two", 2)]
    ex.controls["label"].value = 2
    assert ex.render_count == 2 and ex.values["label"] == 2


def test_interactive_with_a_custom_figure(monkeypatch):
    calls = []

    def render(k, mode):
        calls.append((k, mode))
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.set_title(f"{k} {mode}")
        return fig

    ex = widgets.interactive(render, k=("int", 2, 1, 5), mode=("choice", "a", ["a", "b"]))
    ex.controls["mode"].value = "b"
    assert calls == [(2, "a"), (2, "b")] and ex.render_count == 2
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "1")
    static = widgets.interactive(render, k=("int", 4, 1, 5), mode=("choice", "b", ["a", "b"]))
    _png_bytes(static._repr_mimebundle_())
    assert calls[-1] == (4, "b")


@pytest.mark.parametrize("static", [False, True], ids=["widgets", "static"])
@pytest.mark.parametrize("spec, match", [
    (("slider", 0, 1, 2), "kind 'float', 'int' or 'choice'"),
    (("float", 0.0, -1.0, 1.0), r"\('float', default, min, max, step\)"),
    (("int", 1), r"\('int', default, min, max\)"),
    (3, "expected a tuple"),
])
def test_interactive_rejects_bad_controls(monkeypatch, static, spec, match):
    if static:
        monkeypatch.setenv("COURSE_STATIC_WIDGETS", "1")
    with pytest.raises(ValueError, match=match):
        widgets.interactive(lambda x: plt.figure(), x=spec)


def test_bad_arguments_raise(generator, conditional_generator):
    with pytest.raises(TypeError, match="render must be a function"):
        widgets.interactive("not a function", x=("int", 1, 0, 2))
    with pytest.raises(ValueError, match="steps must be at least 2"):
        widgets.latent_interpolation(generator, latent_dim=8, steps=1)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        widgets.class_explorer(generator, latent_dim=8, num_classes=1)
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        widgets.class_explorer(conditional_generator, latent_dim=8, num_classes=3, class_names=["a", "b"])


def test_the_widgets_draw_the_maths_of_theory():
    """D* and the JSD have one home, course_lib.theory; the old names in widgets are the same functions."""
    from course_lib import theory

    assert widgets.optimal_discriminator is theory.optimal_discriminator
    assert widgets.jsd_by_quadrature is theory.jsd_by_quadrature
    fig = widgets.divergence_figure(mean=1.0, std=0.5)
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    jsd = theory.jsd_by_quadrature(widgets.mixture1d_pdf(x), theory.gaussian_pdf(x, 1.0, 0.5), x)
    assert f"JSD = {jsd:.3f} nats" in fig.axes[0].get_title()
    plt.close(fig)


def test_static_widgets_switch_reads_the_one_env_flag(monkeypatch):
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "on")
    assert widgets.divergence_explorer().widget is None
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "off")
    assert widgets.divergence_explorer().widget is not None
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "maybe")
    with pytest.raises(ValueError, match=r"COURSE_STATIC_WIDGETS='maybe' is not a switch"):
        widgets.divergence_explorer()


def test_samples_come_from_sampling_generate_and_keep_the_mode(conditional_generator):
    from course_lib.sampling import generate

    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1])
    conditional_generator.train()
    got = widgets._generate(conditional_generator, z, labels)
    assert conditional_generator.training  # mode restored
    want = generate(conditional_generator, 4, 8, torch.device("cpu"), labels=labels, noise=z, num_classes=3)
    assert got.shape == (4, 1, 8, 8) and got.dtype == torch.float32 and torch.equal(got, want)
