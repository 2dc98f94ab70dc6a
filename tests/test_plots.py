"""course_lib.plots: "points or images" is decided in one place (sample_kind / sample_figure), which the live plot
(and the command line) use; the discriminator's contour leaves D's mode as it was."""
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.image import AxesImage

from course_lib import data, plots
from course_lib.models import MLPDiscriminator
from course_lib.train import GANTrainer

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name, kind", [("ring8", "points"), ("grid25", "points"), ("mixture1d", "values"),
                                        ("digits", "images")])
def test_sample_kind_follows_the_dataset(name, kind):
    ds = data.load(name, n=100) if name != "digits" else data.load(name, image_size=8)
    assert plots.sample_kind(ds) == kind


def test_points_are_drawn_over_the_real_data_and_ds_contour():
    ds = data.load("ring8", n=500)
    D = MLPDiscriminator(2, hidden=8)
    D.train()
    ax = plots.sample_figure(ds.x[:200] * 1.1, ds, D=D, title="step 3")
    assert ax.get_title() == "step 3" and D.training  # the contour was drawn in eval mode, then restored
    assert any(type(c).__name__ == "QuadContourSet" for c in ax.collections)  # D(x) contour
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert labels == {"real", "generated", "mode centres"}
    scatter_sizes = [len(c.get_offsets()) for c in ax.collections if type(c).__name__ == "PathCollection"]
    assert 200 in scatter_sizes and scatter_sizes.count(200) == 2  # as many real points as generated ones
    no_d = plots.sample_figure(ds.x[:50], ds)
    assert not any(type(c).__name__ == "QuadContourSet" for c in no_d.collections)


def test_images_are_one_grid_and_values_a_histogram():
    digits = data.load("digits", image_size=8)
    ax = plots.sample_figure(digits.x[:16], digits, title="digits")
    assert [type(a) for a in ax.get_images()] == [AxesImage] and ax.get_title() == "digits"
    mix = data.load("mixture1d", n=1000)
    ax = plots.sample_figure(mix.x[:300] + 0.5, mix)
    assert len(ax.patches) >= 2 and {t.get_text() for t in ax.get_legend().get_texts()} == {"real", "generated"}


def test_samples_of_another_shape_are_refused_naming_both_shapes():
    ds = data.load("ring8", n=100)
    with pytest.raises(ValueError, match=r"samples of shape \(10, 3\) do not match dataset 'ring8', whose samples "
                                         r"have shape \(2,\)"):
        plots.sample_figure(torch.zeros(10, 3), ds)


@pytest.mark.parametrize("name", ["ring8", "digits", "mixture1d"])
def test_live_plot_draws_every_kind_through_sample_figure(name, small_config, monkeypatch):
    seen = []
    real = plots.sample_figure
    monkeypatch.setattr(plots, "sample_figure", lambda *a, **k: seen.append(plots.sample_kind(a[1])) or real(*a, **k))
    cfg = small_config(name, steps=2) if name != "mixture1d" else small_config(name, steps=2, batch_size=32)
    trainer = GANTrainer(cfg, verbose=False)
    trainer.fit()
    fig = plots.LivePlot(n_samples=200, live=False).draw(trainer)
    assert len(fig.axes) >= 3 and seen == [plots.sample_kind(trainer.dataset)]
    title = fig.axes[0].get_title()
    assert title.startswith("step 2") and (("modes" in title) == (name == "ring8"))


@pytest.mark.parametrize("loss, probability", [("nonsaturating", True), ("saturating", True), (None, True),
                                               ("hinge", False), ("lsgan", False), ("wgan-gp", False)])
def test_d_outputs_are_called_probabilities_only_under_the_bce_losses(loss, probability):
    from course_lib import losses, progress
    history = {"d_loss": [1.0, 0.9], "g_loss": [0.7, 0.8], "d_real": [0.6, 0.7], "d_fake": [0.4, 0.3]}
    fig = plots.plot_history(history, loss=loss)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    dashed = [line for line in fig.axes[1].get_lines() if line.get_linestyle() == "--"]
    if probability:
        assert labels == ["mean D(x)", "mean D(G(z))"] and len(dashed) == 1    # 1/2: D's equilibrium under BCE
        assert set(progress.progress_postfix(history, loss)) == {"d", "g", "Dx", "DGz"}
    else:
        assert all(loss in t and "score" in t and "sigmoid" in t for t in labels) and not dashed
        assert set(progress.progress_postfix(history, loss)) == {"d", "g", "s(Dx)", "s(DGz)"}
    ring = data.load("ring8", n=200)
    D = torch.nn.Sequential(torch.nn.Linear(2, 1))
    ax = plots.sample_figure(ring.x[:50], ring, D=D, loss=loss)
    assert ax.figure.axes[-1].get_ylabel() == losses.d_output_labels(loss)[0]   # the contour's colour bar
    plt.close("all")


def test_gan_diagram_shows_both_networks_and_both_inputs_of_d():
    fig = plots.gan_diagram()
    ax = fig.axes[0]
    texts = " ".join(t.get_text() for t in ax.texts)
    for word in ("generator", "discriminator", "G(z)", "p_{data}", "real or fake"):
        assert word in texts, f"the diagram lacks {word!r}: {texts!r}"
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 5  # z->G, G->G(z), G(z)->D, x->D, D->out
