"""Known-answer tests of course_lib.metrics (mixture and image metrics, the floors, the run report), the digits
classifier and `python -m course_lib evaluate`."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data, image_metrics, metrics
from course_lib.classifier import get_classifier


@pytest.fixture(scope="module")
def clf():
    return get_classifier("digits", image_size=16)


@pytest.fixture(scope="module")
def digits_split():
    return data.load("digits", image_size=16, split="train"), data.load("digits", image_size=16, split="test")


# ----------------------------------------------------------------------------- Frechet distance

def test_frechet_identical_sets_is_zero():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_gaussians_closed_form():
    # N(0, I) vs N(m, s^2 I) in F dims: |m|^2 + F (1 - s)^2
    f, s = 6, 2.0
    mu2 = np.arange(f, dtype=float)
    d = metrics.frechet_distance_gaussians(np.zeros(f), np.eye(f), mu2, s ** 2 * np.eye(f))
    assert d == pytest.approx((mu2 ** 2).sum() + f * (1 - s) ** 2, rel=1e-10)
    # non-commuting full covariances: compare with scipy's sqrtm formula
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(f, f)), rng.normal(size=(f, f))
    c1, c2 = a @ a.T, b @ b.T
    m1, m2 = rng.normal(size=f), rng.normal(size=f)
    ref = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real)
    assert metrics.frechet_distance_gaussians(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-6)


def test_frechet_shifted_samples_match_closed_form():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=g, dtype=torch.float64) * 0.5 + 3.0
    expected = 4 * 3.0 ** 2 + 4 * (1 - 0.5) ** 2  # 37
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_singular_covariance_is_finite():
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))  # fewer samples than features
    d = metrics.frechet_distance(x, x + 1)
    assert d == pytest.approx(32.0, rel=1e-6)


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(torch.full((10, 3), float("nan")), torch.randn(10, 3))
    with pytest.raises(ValueError, match="feature sizes differ"):
        metrics.frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        metrics.frechet_distance(torch.randn(10), torch.randn(10))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(torch.randn(1, 3), torch.randn(10, 3))


# ----------------------------------------------------------------------------- classes

def test_classifier_score_and_coverage_known_answers():
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 1
    assert metrics.classifier_score(one_class) == pytest.approx(1.0)
    cov = metrics.class_coverage(one_class)
    assert cov["classes_present"] == pytest.approx(0.1)
    assert cov["min_class_share"] == 0 and cov["max_class_share"] == 1
    assert cov["tv_from_uniform"] == pytest.approx(0.9)
    assert cov["kl_from_uniform"] == pytest.approx(math.log(10))

    balanced = torch.eye(10).repeat(10, 1)
    assert metrics.classifier_score(balanced) == pytest.approx(10.0, rel=1e-6)
    cov = metrics.class_coverage(torch.arange(100) % 10)
    assert cov["classes_present"] == 1 and cov["tv_from_uniform"] == pytest.approx(0)
    assert metrics.classifier_score(torch.full((50, 10), 0.1)) == pytest.approx(1.0)


def test_class_metrics_bad_input():
    with pytest.raises(ValueError, match="softmax"):
        metrics.classifier_score(torch.randn(10, 10))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        metrics.class_coverage(torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="columns"):
        metrics.class_coverage(torch.full((4, 5), 0.2), num_classes=10)


# ----------------------------------------------------------------------------- k-NN metrics

def test_precision_recall_density_coverage_identical_and_disjoint():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    pr = metrics.precision_recall(x, x, k=3)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    dc = metrics.density_coverage(x, x, k=5)
    assert dc["coverage"] == 1.0 and dc["density"] >= 1.0
    far = x + 100.0
    pr = metrics.precision_recall(x, far, k=3)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0
    assert metrics.density_coverage(x, far)["coverage"] == 0.0


def test_precision_recall_half_the_modes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    real = centres[torch.arange(400) % 2] + 0.1 * torch.randn(400, 2, generator=g)
    fake = centres[0] + 0.1 * torch.randn(400, 2, generator=g)  # one mode only: precise, half the recall
    pr = metrics.precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.95
    assert 0.4 < pr["recall"] < 0.55
    assert 0.4 < metrics.density_coverage(real, fake)["coverage"] < 0.55


def test_knn_metrics_bad_input():
    with pytest.raises(ValueError, match="too few for k=3"):
        metrics.precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)
    with pytest.raises(ValueError, match="NaN"):
        metrics.density_coverage(torch.randn(10, 2), torch.full((10, 2), float("inf")))


# ----------------------------------------------------------------------------- memorisation

def test_memorisation_flags_copies(digits_split):
    train, test = digits_split
    copies = train.x[:200]
    mem = metrics.memorisation(copies, train.x, test.x)
    assert mem["share_exact"] == 1.0 and mem["share_closer"] == 1.0 and mem["median_ratio"] == 0.0
    honest = metrics.memorisation(test.x[:180], train.x, test.x[180:])
    assert honest["share_exact"] == 0.0 and honest["share_closer"] < 0.1
    assert 0.7 < honest["median_ratio"] < 1.4


def test_nearest_distance_over_several_blocks_of_a_uint8_training_set_is_exact():
    g = torch.Generator().manual_seed(0)
    train_u8 = torch.randint(0, 256, (2 * image_metrics._BLOCK_ROWS + 300, 1, 4, 4), generator=g, dtype=torch.uint8)
    train_f = train_u8.float() / 127.5 - 1
    queries = torch.cat([train_f[[5, image_metrics._BLOCK_ROWS + 7, -1]],        # copies from each block
                         torch.rand(40, 1, 4, 4, generator=g) * 2 - 1]).reshape(43, -1)
    got = image_metrics._nearest_distance(queries, train_u8.reshape(len(train_u8), -1))
    want = torch.cdist(queries.double(), train_f.reshape(len(train_f), -1).double()).min(1).values
    assert torch.equal(got[:3], torch.zeros(3, dtype=torch.float64)), "copies are at distance exactly 0"
    assert torch.allclose(got, want, atol=1e-9)
    heldout = torch.rand(50, 1, 4, 4, generator=g) * 2 - 1
    as_u8 = metrics.memorisation(queries.reshape(43, 1, 4, 4), train_u8, heldout)
    as_float = metrics.memorisation(queries.reshape(43, 1, 4, 4), train_f, heldout)
    assert as_u8 == pytest.approx(as_float), "uint8 and float training sets give the same result"


def test_the_classifier_reads_uint8_images_as_their_values_in_minus_one_to_one():
    from course_lib.classifier import Classifier

    torch.manual_seed(0)
    clf = Classifier(channels=1, image_size=16)
    x8 = torch.randint(0, 256, (300, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    f8, p8 = clf.embed(x8, batch_size=128)
    ff, pf = clf.embed(x8.float() / 127.5 - 1)
    assert f8.shape == (300, clf.feature_dim)
    assert torch.allclose(f8, ff, atol=1e-5) and torch.allclose(p8, pf, atol=1e-6)


# ----------------------------------------------------------------------------- 2-D modes

def test_mode_metrics_exact_centres_and_far_points():
    ds = data.load("ring8")
    on_centres = ds.centres.repeat(25, 1)
    m = metrics.mode_metrics(on_centres, ds.centres, ds.std)
    assert m["modes"] == 8 and m["high_quality"] == 1.0 and m["counts"] == [25] * 8
    far = torch.full((200, 2), 50.0)
    m = metrics.mode_metrics(far, ds.centres, ds.std)
    assert m["modes"] == 0 and m["high_quality"] == 0.0


# ----------------------------------------------------------------------------- classifier and images

def test_classifier_accuracy_and_shapes(clf, digits_split):
    assert clf.accuracy >= 0.97
    _, test = digits_split
    x = test.x[:7]
    assert clf(x).shape == (7, 10)
    assert clf.features(x).shape == (7, clf.feature_dim)
    p = clf.predict_proba(x)
    assert torch.allclose(p.sum(1), torch.ones(7), atol=1e-5)
    assert get_classifier("digits", image_size=16) is clf  # cached
    with pytest.raises(ValueError, match="expects images of shape"):
        clf.features(torch.zeros(2, 1, 8, 8))


def test_evaluate_images_one_class_generator_and_real_floor(clf, digits_split):
    train, test = digits_split
    ones = train.x[train.y == 1]
    fake = ones[torch.arange(400) % len(ones)] + 0.05 * torch.randn(400, 1, 16, 16,
                                                                      generator=torch.Generator().manual_seed(0))
    r = metrics.evaluate_images(fake.clamp(-1, 1))
    assert r["classes_present"] <= 0.2 and r["max_class_share"] > 0.95  # one class (a stray sample or two)
    assert r["classes_present_real"] == 1.0
    assert r["recall"] < 0.3 * r["recall_real"]
    assert r["frechet_distance"] > 10 * r["frechet_distance_real"]
    assert r["classifier_score"] < 1.5 < r["classifier_score_real"]
    assert r["k"] == 3 and r["n_eval"] == 239 and r["n_reference"] == len(test)  # half the 478-image floor pool
    assert r["frechet_distance_real_sd"] > 0 and r["floor_resamples"] == 5
    assert r["frechet_distance_verdict"] == r["recall_verdict"] == "worse than real data"
    assert r["kid"] > r["kid_real"] + 2 * r["kid_real_sd"] and r["kid_sd"] > 0
    assert "359 of the 359 held-out test images" in r["reference"]
    with pytest.raises(ValueError, match="image_size"):
        metrics.evaluate_images(torch.zeros(400, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate_images(torch.full((400, 1, 16, 16), float("nan")))


# ----------------------------------------------------------------------------- CLI

def _tiny_checkpoint(tmp_path, data_name, **changes):
    from course_lib.train import GANTrainer, TrainConfig

    cfg = TrainConfig.for_data(data_name, steps=3, checkpoint_every=3, device="cpu", **changes)
    trainer = GANTrainer(cfg, out_dir=tmp_path / data_name, verbose=False)
    trainer.fit()
    return trainer.last_checkpoint


def test_evaluate_cli_images(tmp_path, capsys, clf):
    from course_lib.cli import main

    ckpt = _tiny_checkpoint(tmp_path, "digits", batch_size=32)
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--n", "400", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("frechet_distance", "precision", "recall", "density", "coverage", "classifier_score",
                "classes_present", "memorisation_share_closer"):
        assert key in result and f"{key}_real" in result
    assert result["frechet_distance"] > result["frechet_distance_real"]  # 3 steps of training: poor samples
    printed = capsys.readouterr().out
    assert "frechet_distance" in printed and "real floor" in printed


def test_evaluate_cli_points(tmp_path, capsys):
    from course_lib.cli import main

    ckpt = _tiny_checkpoint(tmp_path, "ring8")
    assert main(["evaluate", "--checkpoint", str(ckpt), "--n", "500"]) == 0
    result = json.loads((ckpt.parent / "evaluation.json").read_text())
    assert result["modes_real"] == 8 and result["high_quality_real"] > 0.98
    assert 0 <= result["modes"] <= 8 and 0 <= result["high_quality"] <= 1
    assert "modes" in capsys.readouterr().out


def test_evaluate_cli_missing_checkpoint(tmp_path, capsys):
    from course_lib.cli import main

    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_classifier_disk_cache_round_trip_and_damaged_file(clf, tmp_path):
    from course_lib import classifier as C

    path = tmp_path / "clf.pt"
    C._save_cached(clf, path)
    back = C._load_cached(path, "digits", 16, 0)
    assert back is not None and back.accuracy == clf.accuracy
    x = torch.zeros(2, 1, 16, 16)
    assert torch.allclose(back(x), clf(x))
    assert C._load_cached(path, "digits", 32, 0) is None  # another size: retrain
    path.write_bytes(b"not a checkpoint")
    assert C._load_cached(path, "digits", 16, 0) is None  # damaged: retrain, silently


def test_recipe_benchmark_script_runs_every_recipe_in_quick_mode(tmp_path):
    """A smoke test of benchmarks/recipes.py: every recipe of every dataset trains and is measured (20 steps,
    nothing written); the real benchmark takes about 15 minutes and is run by hand."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "recipes.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"data"')]
    assert {(r["data"], r["recipe"]) for r in rows} == {
        ("ring8", "course"), ("ring8", "vanilla"), ("grid25", "course"), ("grid25", "vanilla"),
        ("digits", "course"), ("digits", "unconditional"), ("digits", "vanilla")}
    assert all(r["steps"] == 20 for r in rows)
    assert not list(tmp_path.iterdir())  # quick mode writes no results


def test_recipe_benchmark_report_only_rewrites_the_report_from_the_json(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    (tmp_path / "results-recipes.json").write_text((bench / "results-recipes.json").read_text())
    proc = subprocess.run([sys.executable, str(bench / "recipes.py"), "--report-only", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "RESULTS-recipes.md").read_text() == (bench / "RESULTS-recipes.md").read_text()


def test_recipe_benchmark_rows_keep_the_machine_they_ran_on():
    """Re-running one dataset keeps the other datasets' rows with their own machine and date, and each section of
    the report names the machines of its rows (not the last run's machine for all)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import recipes as bench

    xeon = {"cpu": "Xeon X", "cores": 2, "torch_threads": 2, "torch": "2.14.1", "python": "3.11.7"}
    epyc = dict(xeon, cpu="EPYC Y", torch_threads=1)
    old = {"date": "2026-11-29 06:07", "machine": xeon, "runs": [
        {"data": d, "recipe": "course", "seed": 0, "steps": 10, "train_seconds": 1.0, "load_before": 0.1, "modes": 8,
         "num_modes": 8, "high_quality": 0.98} for d in ("ring8", "grid25")]}
    new = [dict(old["runs"][0], seed=s, machine=epyc, date="2026-12-03 13:00", threads=1, cpu_seconds=2.0)
           for s in (0, 1)]
    rows = bench.merge_runs(old, new)
    assert [(r["data"], r["seed"], r["machine"]["cpu"]) for r in rows] == [
        ("ring8", 0, "EPYC Y"), ("ring8", 1, "EPYC Y"), ("grid25", 0, "Xeon X")]
    text = bench.markdown({"date": "2026-12-03 13:00", "machine": epyc, "runs": rows, "summary": bench.summary(rows)})
    # the sections by their heading lines; every row names its CPU and date
    ring, grid = text.split("\n## ring8\n")[1].split("\n## grid25\n")
    grid = grid.split("\n## ")[0]
    assert "| EPYC Y | 2026-12-03 |" in ring and "Xeon X" not in ring
    assert "| Xeon X | 2026-11-29 |" in grid and "EPYC Y" not in grid


# ----------------------------------------------------------------------------- cross-checks with the reference packages

def test_frechet_distance_equals_pytorch_fid():
    fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid is a dev dependency")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 0.5
    ref = fid_score.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert metrics.frechet_distance(a, b) == pytest.approx(ref, abs=1e-9, rel=1e-9)


def test_precision_recall_density_coverage_equal_prdc():
    prdc = pytest.importorskip("prdc", reason="prdc is a dev dependency")
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 8))
    fake = rng.normal(size=(400, 8)) * 1.2 + 0.3
    for k in (3, 5):
        ref = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
        pr, dc = metrics.precision_recall(real, fake, k=k), metrics.density_coverage(real, fake, k=k)
        for key, value in {**pr, **dc}.items():
            if key != "k":
                assert value == pytest.approx(ref[key], abs=1e-9), key


def test_chunked_distances_match_one_block(monkeypatch):
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(300, 4)), rng.normal(size=(200, 4))
    whole = {**metrics.precision_recall(real, fake), **metrics.density_coverage(real, fake)}
    monkeypatch.setattr(image_metrics, "CHUNK_BYTES", 8 * 300 * 7)  # blocks of 7 rows
    assert {**metrics.precision_recall(real, fake), **metrics.density_coverage(real, fake)} == whole


# ----------------------------------------------------------------------------- KID

def _kid_naive(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()


def test_kid_is_the_unbiased_cubic_mmd_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 1.0
    one = metrics.kid(x, y, subsets=1, subset_size=50)  # all rows: no subsampling
    assert one["kid"] == pytest.approx(_kid_naive(x, y), rel=1e-12) and one["kid_sd"] == 0.0
    same = metrics.kid(rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6)), subsets=50, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_sd"] / np.sqrt(50) + 1e-3  # unbiased: mean about 0
    far = metrics.kid(x, y, subsets=20, subset_size=30)
    assert far["kid"] > 10 * far["kid_sd"] / np.sqrt(20) and far["subset_size"] == 30
    assert metrics.kid(x, y, subsets=5, subset_size=1000)["subset_size"] == 50  # fewer rows than asked


# ----------------------------------------------------------------------------- bad input: one clear error each

def test_frechet_gaussians_refuses_invalid_covariances():
    f = 3
    with pytest.raises(ValueError, match="not positive semi-definite"):
        metrics.frechet_distance_gaussians(np.zeros(f), -np.eye(f), np.zeros(f), -np.eye(f))
    asym = np.eye(f)
    asym[0, 1] = 0.5
    with pytest.raises(ValueError, match="not symmetric"):
        metrics.frechet_distance_gaussians(np.zeros(f), asym, np.zeros(f), np.eye(f))
    # round-off below the tolerance is fine (sample covariances of fewer rows than features)
    x = np.random.default_rng(0).normal(size=(4, 10))
    c = np.cov(x, rowvar=False)
    assert metrics.frechet_distance_gaussians(x.mean(0), c, x.mean(0), c) == pytest.approx(0, abs=1e-8)


def test_frechet_refuses_complex_input():
    a = np.random.default_rng(0).normal(size=(10, 3)) * (1 + 1j)
    with pytest.raises(ValueError, match="complex"):
        metrics.frechet_distance(a, a.real)
    with pytest.raises(ValueError, match="complex"):
        metrics.frechet_distance(torch.randn(10, 3, dtype=torch.complex64), torch.randn(10, 3))


def test_mode_metrics_bad_input_and_tensor_std():
    ds = data.load("ring8", n=500)
    assert metrics.mode_metrics(ds.x, ds.centres, torch.tensor(0.02)) == metrics.mode_metrics(ds.x, ds.centres, 0.02)
    with pytest.raises(ValueError, match="NaN"):
        metrics.mode_metrics(torch.full((10, 2), float("nan")), ds.centres, ds.std)
    with pytest.raises(ValueError, match="centres is empty"):
        metrics.mode_metrics(ds.x, torch.zeros(0, 2), ds.std)
    with pytest.raises(ValueError, match="one number"):
        metrics.mode_metrics(ds.x, ds.centres, torch.tensor([0.02, 0.02]))


def test_memorisation_with_no_rows_says_so():
    with pytest.raises(ValueError, match="fake has 0 rows"):
        metrics.memorisation(torch.zeros(0, 1, 4, 4), torch.zeros(5, 1, 4, 4), torch.zeros(5, 1, 4, 4))
    with pytest.raises(ValueError, match="train has 0 rows"):
        metrics.memorisation(torch.zeros(3, 16), torch.zeros(0, 16), torch.zeros(5, 16))


def test_memorisation_exact_copies_of_a_large_uint8_train_set():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (3000, 1, 8, 8), generator=g, dtype=torch.uint8)
    heldout = torch.randint(0, 256, (200, 1, 8, 8), generator=g, dtype=torch.uint8)
    copies = train[:100].float() / 127.5 - 1
    mem = metrics.memorisation(copies, train, heldout)
    assert mem["share_exact"] == 1.0 and mem["median_nn_fake"] == 0.0 and mem["share_closer"] == 1.0


# ----------------------------------------------------------------------------- floor and verdicts

def test_floor_verdict_never_says_better_than_real():
    assert metrics.floor_verdict(0.1, 1.0, 0.2) == metrics.WITHIN_NOISE  # below the floor: within noise
    assert metrics.floor_verdict(1.3, 1.0, 0.2) == metrics.WITHIN_NOISE
    assert metrics.floor_verdict(1.5, 1.0, 0.2) == "worse than real data"
    assert metrics.floor_verdict(0.5, 0.9, 0.1, higher_is_better=True) == "worse than real data"
    assert metrics.floor_verdict(1.4, 1.0, 0.1, higher_is_better=None) == "differs from real data"


def test_compare_sets_floor_matches_class_counts_and_subsamples_the_reference():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 8, generator=g) * 3
    pool_y = torch.arange(4000) % 10
    pool = centres[pool_y] + torch.randn(4000, 8, generator=g)
    ref_y = torch.randint(0, 10, (3000,), generator=g)
    ref = centres[ref_y] + torch.randn(3000, 8, generator=g)
    fake_y = torch.randint(0, 3, (600,), generator=g)  # three classes only
    fake = centres[fake_y] + torch.randn(600, 8, generator=g)
    r = metrics.compare_sets(fake, ref, pool, fake_y, pool_y, max_reference=1000, kid_subsets=10)
    assert r["n_reference"] == 1000 and r["n_reference_available"] == 3000 and r["n_eval"] == 600
    # the floor has the generated class counts, so it scores like the generated set: within noise
    assert r["frechet_distance_verdict"] == metrics.WITHIN_NOISE
    r = metrics.compare_sets(fake, ref, pool, max_reference=1000, kid_subsets=10)  # uniform floor: far better
    assert r["frechet_distance_verdict"] == "worse than real data" and r["frechet_distance_real_sd"] > 0
    with pytest.raises(ValueError, match="pool holds"):
        metrics.compare_sets(fake, ref, pool[:700], fake_y, pool_y[:700], n_eval=600)


def test_evaluate_peak_memory_against_a_60000_image_reference_is_bounded():
    """The old summary built full pairwise matrices (60,000^2 doubles = 29 GB); now about 2 GB at most."""
    code = r"""
import resource, torch
from course_lib import metrics
g = torch.Generator().manual_seed(0)
ref = torch.rand(60_000, 64, generator=g)
pool = torch.rand(10_000, 64, generator=g)
fake = torch.rand(5_000, 64, generator=g)
r = metrics.compare_sets(fake, ref, pool, kid_subsets=5, floor_resamples=2)
assert r["n_reference"] == 10_000 and r["n_reference_available"] == 60_000 and r["n_eval"] == 5_000
train = torch.randint(0, 256, (60_000, 1, 32, 32), generator=g, dtype=torch.uint8)
metrics.memorisation(torch.rand(1000, 1, 32, 32), train, train[:500])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert peak_mb < 2048, f"peak RSS {peak_mb:.0f} MB"


# ----------------------------------------------------------------------------- training summary API

def test_summary_request_points_and_conditional_labels():
    ring = data.load("ring8", n=1000)
    assert metrics.summary_request(ring) == (2500, None)
    n, labels = metrics.summary_request("digits", num_classes=10, seed=1)
    assert n == metrics.IMAGE_EVAL_SAMPLES["digits"] and labels.shape == (n,) and labels.dtype == torch.int64
    test_freq = torch.bincount(data.load("digits", split="test").y, minlength=10).double() / 359
    drawn = torch.bincount(labels, minlength=10).double() / n
    assert (drawn - test_freq).abs().max() < 0.04  # like the test split, not a round-robin
    assert not torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), n // 10))
    assert torch.equal(metrics.summary_request("digits", 10, seed=1)[1], labels)  # seeded
    assert metrics.summary_request("digits") == (n, None)
    odd = data.Dataset("custom", torch.zeros(20, 1, 8, 8), kind="images")
    assert metrics.summary_request(odd) == (0, None)
    with pytest.raises(ValueError, match="num_classes"):
        metrics.summary_request("digits", num_classes=True)


def test_summarize_points_images_and_nothing(clf):
    ring = data.load("ring8", n=3000)
    s = metrics.summarize(ring.x[:2500], ring)
    assert s["modes"] == 8 and s["high_quality"] > 0.98  # 1 - exp(-4.5) = 0.989 within 3 std in 2-D
    ref = metrics.real_reference("digits", 16)
    s = metrics.summarize(ref["pool_x"][:300], data.load("digits", split="train"))
    assert s["frechet_distance_verdict"] == metrics.WITHIN_NOISE and "standard_fid" in s
    assert "no course classifier" in metrics.summarize(torch.zeros(5, 1, 8, 8),
                                                       data.Dataset("custom", torch.zeros(5, 1, 8, 8),
                                                                    kind="images"))["metrics_note"]
    train16 = data.load("digits", split="train")
    assert "image_size" in metrics.summarize(torch.zeros(300, 1, 8, 8), train16)["image_metrics_error"]
    assert "NaN" in metrics.summarize(torch.full((300, 1, 16, 16), float("nan")), "digits")["image_metrics_error"]
