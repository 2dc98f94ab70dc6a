"""Model shapes, ranges, initialisation and errors."""
import pytest
import torch

from course_lib import models


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_ranges(size, channels):
    G, D = models.build_models("dcgan", (channels, size, size), latent_dim=16, g_width=8, d_width=8)
    z = torch.randn(5, 16)
    x = G(z)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x)
    assert logits.shape == (5,) and logits.dtype == torch.float32


def test_dcgan_accepts_4d_noise_like_pytorch_examples():
    G = models.DCGANGenerator(latent_dim=10, channels=1, image_size=16, width=8)
    assert G(torch.randn(3, 10, 1, 1)).shape == (3, 1, 16, 16)


def test_conditional_dcgan_uses_labels():
    torch.manual_seed(0)
    G, D = models.build_models("dcgan", (1, 16, 16), 8, 8, 8, num_classes=10)
    z = torch.randn(4, 8)
    a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.full((4,), 7))
    assert a.shape == (4, 1, 16, 16) and not torch.allclose(a, b)
    assert D(a, torch.zeros(4, dtype=torch.long)).shape == (4,)
    with pytest.raises(ValueError, match="pass labels"):
        G(z)
    with pytest.raises(TypeError, match="integer"):
        G(z, torch.zeros(4))


def test_mlp_shapes():
    G, D = models.build_models("mlp", (2,), latent_dim=4, g_width=16, d_width=16, depth=2)
    x = G(torch.randn(7, 4))
    assert x.shape == (7, 2) and D(x).shape == (7,)


def test_mlp_generator_with_codes_reads_a_one_hot_code_and_small_noise():
    """latent_codes=K: the first K coordinates pick one of K codes (argmax), the rest is noise scaled down."""
    torch.manual_seed(0)
    G = models.MLPGenerator(latent_dim=6, out_dim=2, hidden=8, depth=1, codes=4)
    z = torch.randn(500, 6)
    h = torch.cat([torch.nn.functional.one_hot(z[:, :4].argmax(1), 4).float(), models.CODE_NOISE_SCALE * z[:, 4:]], 1)
    torch.testing.assert_close(G(z), G.net(h))
    # the code alone decides the input of the first layer's code columns: z's first 4 values matter only by argmax
    z2 = z.clone()
    z2[:, :4] = z[:, :4] * 3 + 10
    torch.testing.assert_close(G(z2), G(z))
    # uniform over the K codes: the argmax of iid Gaussians
    counts = torch.bincount(torch.randn(40000, 4).argmax(1), minlength=4).float() / 40000
    assert (counts - 0.25).abs().max() < 0.01


def test_mlp_generator_without_codes_is_unchanged():
    torch.manual_seed(0)
    a = models.MLPGenerator(4, 2, 8, 2)
    torch.manual_seed(0)
    b = models.MLPGenerator(4, 2, 8, 2, codes=0)
    z = torch.randn(3, 4)
    torch.testing.assert_close(a(z), b(z))
    torch.testing.assert_close(a(z), a.net(z))


@pytest.mark.parametrize("codes", [1, 6, 7, -1])
def test_mlp_generator_refuses_codes_without_room_for_noise(codes):
    with pytest.raises(ValueError, match=r"codes must be 0 .*\[2, 5\]"):
        models.MLPGenerator(latent_dim=6, codes=codes)


def test_latent_codes_in_the_config_and_the_checkpoint(tmp_path):
    from course_lib.config import MODEL_FIELDS, TrainConfig
    from course_lib.sampling import load_generator
    from course_lib.train import GANTrainer

    assert "latent_codes" in MODEL_FIELDS
    with pytest.raises(ValueError, match="latent_codes=4 needs model='mlp'"):
        TrainConfig.for_data("digits", latent_codes=4)
    with pytest.raises(ValueError, match="2 <= latent_codes < latent_dim"):
        TrainConfig.for_data("ring8", latent_dim=4, latent_codes=4)
    with pytest.raises(ValueError, match="non-negative integer"):
        TrainConfig.for_data("ring8", latent_dim=4, latent_codes=-1)
    with pytest.raises(ValueError, match="latent_codes is a feature of the 'mlp' model"):
        models.build_models("dcgan", (1, 16, 16), 8, 8, 8, latent_codes=4)
    cfg = TrainConfig.for_data("ring8", latent_dim=6, latent_codes=4, g_width=16, d_width=16, batch_size=64,
                               steps=3, checkpoint_every=3)
    trainer = GANTrainer(cfg, out_dir=tmp_path, verbose=False)
    trainer.fit(progress=False)
    assert trainer.G.codes == 4
    G, config = load_generator(tmp_path / "checkpoint.pt")[:2]
    assert G.codes == 4 and config.latent_codes == 4
    z = torch.randn(10, 6)
    torch.testing.assert_close(G(z), trainer.G_ema(z))


def test_dcgan_weight_init_statistics():
    torch.manual_seed(0)
    G = models.DCGANGenerator(100, 3, 64, 64)
    G.apply(models.dcgan_weights_init)
    convs = [m.weight for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([c.flatten() for c in convs])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bns = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bns.mean().item() - 1) < 0.01 and abs(bns.std().item() - 0.02) < 0.01


def test_spectral_norm_bounds_the_weights():
    torch.manual_seed(0)
    D = models.MLPDiscriminator(2, 64, 2, spectral_norm=True)
    for _ in range(20):  # power iterations converge in train mode
        D(torch.randn(8, 2))
    D.eval()
    for m in D.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.linalg.matrix_norm(m.weight, ord=2) < 1.05


@pytest.mark.parametrize("kwargs, match", [
    (dict(model="resnet"), "valid models are mlp, dcgan"),
    (dict(model="mlp", sample_shape=(1, 16, 16)), "use model='dcgan'"),
    (dict(model="dcgan", sample_shape=(2,)), "square images"),
    (dict(model="dcgan", sample_shape=(1, 28, 28)), "power of two"),
    (dict(model="dcgan", sample_shape=(1, 16, 16), latent_dim=0), "positive integer"),
])
def test_build_models_errors(kwargs, match):
    args = dict(model="mlp", sample_shape=(2,), latent_dim=4, g_width=8, d_width=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        models.build_models(**args)


def test_shape_mismatch_messages():
    G = models.DCGANGenerator(100, 3, 32, 8)
    with pytest.raises(ValueError, match=r"z of shape \(N, 100\)"):
        G(torch.randn(4, 64))
    D = models.DCGANDiscriminator(3, 32, 8)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\).*\(4, 1, 28, 28\)"):
        D(torch.randn(4, 1, 28, 28))


def test_mlp_generator_init_gain_scales_only_the_first_weights_and_draws_nothing_more():
    """init_gain=g: the first layer's weights start g times PyTorch's default, nothing else changes, and the
    random stream after building is the same (so a recipe's later draws do not move)."""
    torch.manual_seed(0)
    a = models.MLPGenerator(2, 2, 16, 3)
    after_a = torch.rand(3)
    torch.manual_seed(0)
    b = models.MLPGenerator(2, 2, 16, 3, init_gain=15.0)
    after_b = torch.rand(3)
    torch.testing.assert_close(after_a, after_b)
    torch.testing.assert_close(b.net[0].weight, 15.0 * a.net[0].weight)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if name != "net.0.weight":
            torch.testing.assert_close(pa, pb)
    # the same noise lands elsewhere
    z = torch.randn(64, 2)
    assert not torch.allclose(a(z), b(z))


@pytest.mark.parametrize("gain", [0.0, -1.0, float("nan"), float("inf")])
def test_mlp_generator_refuses_a_gain_that_is_not_positive(gain):
    with pytest.raises(ValueError, match="init_gain must be a positive finite number"):
        models.MLPGenerator(2, 2, 8, 1, init_gain=gain)


@pytest.mark.parametrize("data", ["ring8", "grid25", "digits"])
def test_the_article_settings_through_for_data_keep_nothing_of_the_course_recipe(data):
    """``TrainConfig.for_data(data, **VANILLA[data])`` starts from the course recipe: every setting the recipe
    makes must be undone by VANILLA, except the run's length and saving."""
    from course_lib.config import TrainConfig
    from course_lib.recipes import RECIPES, VANILLA

    via_recipe, plain = TrainConfig.for_data(data, **VANILLA[data]), TrainConfig(data=data, **VANILLA[data])
    leaked = {k for k in RECIPES[data] if k not in ("steps", "checkpoint_every", "conditional")
              and getattr(via_recipe, k) != getattr(plain, k)}
    assert not leaked, f"VANILLA[{data!r}] keeps the course recipe's {sorted(leaked)}"
    assert via_recipe.g_init_gain == 1.0


def test_g_init_gain_in_the_config_the_trainer_and_the_checkpoint(tmp_path):
    from course_lib.config import MODEL_FIELDS, TrainConfig
    from course_lib.recipes import RECIPES
    from course_lib.sampling import load_generator
    from course_lib.train import GANTrainer

    assert "g_init_gain" not in MODEL_FIELDS  # the start of training, not a shape: any checkpoint loads
    assert TrainConfig().g_init_gain == 1.0  # an option for experiments: no recipe uses it
    assert all(r.get("g_init_gain", 1.0) == 1.0 for r in RECIPES.values())
    with pytest.raises(ValueError, match="g_init_gain=2.0 needs model='mlp'"):
        TrainConfig.for_data("digits", g_init_gain=2.0)
    with pytest.raises(ValueError, match="g_init_gain must be a positive finite number"):
        TrainConfig.for_data("ring8", g_init_gain=0)
    with pytest.raises(ValueError, match="g_init_gain is a feature of the 'mlp' model"):
        models.build_models("dcgan", (1, 16, 16), 8, 8, 8, g_init_gain=2.0)
    small = dict(g_width=16, d_width=16, batch_size=64, steps=2, checkpoint_every=2, ema_decay=None,
                 g_init_gain=15.0)
    plain = GANTrainer(TrainConfig.for_data("ring8", **{**small, "g_init_gain": 1.0}), verbose=False)
    gained = GANTrainer(TrainConfig.for_data("ring8", **small), out_dir=tmp_path, verbose=False)
    torch.testing.assert_close(gained.G.net[0].weight, 15.0 * plain.G.net[0].weight)  # same seed, same draws
    gained.fit(progress=False)
    G, config = load_generator(tmp_path / "checkpoint.pt", use_ema=False)[:2]
    assert config.g_init_gain == 15.0
    z = torch.randn(10, 2)
    torch.testing.assert_close(G(z), gained.G(z))
