"""course_lib.article: size formulas agree with PyTorch, the listing-style networks have the article's shapes,
and the tracing / statistics helpers report what they claim."""
import pytest
import torch
from torch import nn

from course_lib import article
from course_lib.models import dcgan_weights_init


@pytest.mark.parametrize("size,k,s,p,d", [(28, 4, 2, 1, 1), (32, 4, 2, 1, 1), (7, 3, 1, 1, 1), (9, 3, 2, 0, 2),
                                          (4, 4, 1, 0, 1), (5, 5, 3, 2, 1)])
def test_conv2d_out_size_matches_pytorch(size, k, s, p, d):
    conv = nn.Conv2d(1, 1, k, s, p, dilation=d)
    assert article.conv2d_out_size(size, k, s, p, d) == conv(torch.zeros(1, 1, size, size)).shape[-1]


@pytest.mark.parametrize("size,k,s,p,op", [(1, 4, 1, 0, 0), (4, 4, 2, 1, 0), (7, 4, 2, 1, 0), (1, 7, 1, 0, 0),
                                           (5, 3, 2, 1, 1), (3, 5, 3, 2, 2)])
def test_conv_transpose2d_out_size_matches_pytorch(size, k, s, p, op):
    conv = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=op)
    assert article.conv_transpose2d_out_size(size, k, s, p, op) == conv(torch.zeros(1, 1, size, size)).shape[-1]


def test_size_formulas_refuse_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        article.conv2d_out_size(3, 4)                       # the article's last D layer on 28x28 MNIST
    with pytest.raises(ValueError, match="kernel"):
        article.conv2d_out_size(8, 0)
    with pytest.raises(ValueError, match="output_padding"):
        article.conv_transpose2d_out_size(4, 4, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="non-positive"):
        article.conv_transpose2d_out_size(1, 1, padding=1)
    with pytest.raises(ValueError, match="size"):
        article.conv2d_out_size(True, 3)


def test_listing_networks_shapes():
    G = article.listing_generator(channels=3, latent_dim=100, width=8)
    D = article.listing_discriminator(channels=3, width=8)
    x = G(torch.randn(5, 100, 1, 1))
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    out = D(x)
    assert out.shape == (5, 1, 1, 1) and ((out > 0) & (out < 1)).all()
    assert article.stack_out_sizes(G, 1) == [1, 4, 8, 16, 32]
    assert article.stack_out_sizes(D, 32) == [32, 16, 8, 4, 1]
    logits = article.listing_discriminator(1, 8, sigmoid=False)(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, 1, 1, 1)
    # the widths follow the article's 256 / 128 / 64 at width=64
    widths = [m.out_channels for m in article.listing_generator().modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [256, 128, 64, 3]


def test_stack_out_sizes_finds_the_28x28_failure():
    D = article.listing_discriminator(channels=1, width=4)
    with pytest.raises(ValueError, match="does not fit"):
        article.stack_out_sizes(D, 28)


def test_trace_shapes_names_the_failing_layer():
    G = article.listing_generator(channels=1, width=4)
    trace = article.trace_shapes(G, torch.randn(2, 100, 1, 1))
    assert trace[0] == ("0: ConvTranspose2d", (2, 16, 4, 4))
    assert trace[-1] == ("10: Tanh", (2, 1, 32, 32))
    D = article.listing_discriminator(channels=1, width=4)
    with pytest.raises(article.ShapeTraceError, match=r"layer 8: Conv2d failed on an input of shape \(2, 16, 3, 3\)"):
        article.trace_shapes(D, torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="no child layers"):
        article.trace_shapes(nn.ReLU(), torch.zeros(1))


def test_weight_stats_before_and_after_dcgan_init():
    torch.manual_seed(0)
    G = article.listing_generator(channels=1, width=16)
    before = {r["layer"]: r for r in article.weight_stats(G)}
    G.apply(dcgan_weights_init)
    after = article.weight_stats(G)
    convs = [r for r in after if r["kind"] == "ConvTranspose2d"]
    bns = [r for r in after if r["kind"] == "BatchNorm2d"]
    assert len(convs) == 4 and len(bns) == 3
    assert all(abs(r["std"] - 0.02) < 0.003 for r in convs)
    assert all(abs(r["mean"] - 1.0) < 0.01 and r["std"] < 0.05 for r in bns)
    assert before["9"]["std"] > 0.1           # PyTorch's default: the 1-channel output layer has a small fan-in
    assert all(before[r["layer"]]["std"] == 0.0 for r in bns if r["layer"] in before)  # default BN scale is 1


def test_grad_norm_and_pad_to():
    lin = nn.Linear(3, 1)
    assert article.grad_norm(lin) == 0.0
    lin(torch.ones(2, 3)).sum().backward()
    expected = torch.cat([lin.weight.grad.flatten(), lin.bias.grad.flatten()]).norm()
    assert article.grad_norm(lin) == pytest.approx(float(expected))
    x = torch.zeros(2, 1, 28, 28)
    y = article.pad_to(x, 32)
    assert y.shape == (2, 1, 32, 32)
    assert (y[:, :, :2] == -1).all() and (y[:, :, 2:30, 2:30] == 0).all() and (y[:, :, 30:] == -1).all()
    assert article.pad_to(torch.zeros(1, 1, 5, 5), 8)[0, 0, 1:6, 1:6].eq(0).all()
    with pytest.raises(ValueError, match="larger"):
        article.pad_to(torch.zeros(1, 1, 40, 40), 32)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        article.pad_to(torch.zeros(28, 28), 32)
