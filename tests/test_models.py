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
