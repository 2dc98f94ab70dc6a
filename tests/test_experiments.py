"""course_lib.experiments: recipe comparisons on the 2-D mixtures."""
import pytest
import torch

from course_lib import experiments


def test_compare_rows_are_complete_and_repeatable():
    recipes = {"base": {}, "hinge": {"loss": "hinge"}}
    rows = experiments.compare(recipes, data="ring8", steps=5, seeds=(0, 1), n_samples=200, min_count=2,
                               verbose=False)
    assert [r["name"] for r in rows] == ["base", "hinge"]
    for r in rows:
        assert r["num_modes"] == 8 and 0 <= r["min_modes"] <= r["modes"] <= 8
        assert 0.0 <= r["high_quality"] <= 1.0
        assert len(r["per_seed"]) == 2 and r["seeds"] == (0, 1) and r["steps"] == 5
        assert r["samples"].shape == (200, 2)
    assert rows[1]["config"].loss == "hinge" and rows[0]["config"].loss == "nonsaturating"
    again = experiments.compare({"base": {}}, data="ring8", steps=5, seeds=(0, 1), n_samples=200, min_count=2,
                                verbose=False)
    assert torch.equal(again[0]["samples"], rows[0]["samples"])
    assert again[0]["d_loss"] == rows[0]["d_loss"]


def test_compare_applies_base_then_recipe():
    rows = experiments.compare({"ttur": {"lr_d": 4e-4}}, data="ring8", steps=2, base={"lr_g": 1e-4, "lr_d": 1e-4},
                               n_samples=50, min_count=1, verbose=False)
    cfg = rows[0]["config"]
    assert cfg.lr_g == 1e-4 and cfg.lr_d == 4e-4 and cfg.steps == 2 and cfg.seed == 0
    assert cfg.compile is False and cfg.amp == "off"  # small 2-D runs: no compile, full precision
    rows = experiments.compare({"c": {"amp": "bf16"}}, data="ring8", steps=1, n_samples=50, min_count=1,
                               verbose=False)
    assert rows[0]["config"].amp == "bf16"  # a recipe may still ask for it


def test_compare_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D mixtures"):
        experiments.compare({"a": {}}, data="digits", steps=1)
    with pytest.raises(ValueError, match="non-empty"):
        experiments.compare({}, steps=1)
    with pytest.raises(ValueError, match="seeds"):
        experiments.compare({"a": {}}, steps=1, seeds=())
    with pytest.raises(TypeError, match="recipe 'bad'"):
        experiments.compare({"bad": {"not_a_field": 1}}, steps=1, verbose=False)
    with pytest.raises(ValueError, match="recipe 'smooth'"):
        experiments.compare({"smooth": {"loss": "hinge", "label_smoothing": 0.1}}, steps=1, verbose=False)


def test_format_table_aligns_and_checks_columns():
    rows = [{"name": "a", "modes": 8.0, "num_modes": 8, "high_quality": 0.975},
            {"name": "longer name", "modes": 7.5, "num_modes": 8, "high_quality": 0.5}]
    text = experiments.format_table(rows, columns=("name", "modes", "num_modes", "high_quality"))
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(l) for l in lines}) == 1
    assert "97.5%" in lines[2] and "50.0%" in lines[3] and lines[3].startswith("longer name")
    with pytest.raises(KeyError, match="seconds"):
        experiments.format_table(rows, columns=("name", "seconds"))
    with pytest.raises(ValueError):
        experiments.format_table([])


def test_plots_return_figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = experiments.compare({"a": {}, "b": {"loss": "hinge"}}, steps=2, n_samples=50, min_count=1,
                               verbose=False)
    fig = experiments.plot_results(rows)
    assert len(fig.axes) == 2
    fig2 = experiments.plot_samples(rows, centres=torch.zeros(8, 2) + 1, ncols=3)
    assert len(fig2.axes) == 3
    plt.close("all")
