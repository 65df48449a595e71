"""Elastic supernet: extract == active forward, analytic counts == module counts, reordering."""

import random

import pytest
import torch

from latkit.errors import TrainError
from latkit.supernet.model import (
    ElasticMobileNetV3,
    build_layer,
    count_macs,
    count_params,
    layer_input_shape,
    load_supernet,
)
from latkit.supernet.space import get_space, list_spaces


def _perturb(model):
    """Non-trivial BN statistics and kernel transforms, so that slicing mistakes show."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
        for n, p in model.named_parameters():
            if ".depthwise.t" in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("name", list_spaces())
def test_extract_equals_supernet_forward(name):
    torch.manual_seed(0)
    sp = get_space(name)
    model = _perturb(ElasticMobileNetV3(sp)).eval()
    rng = random.Random(0)
    for _ in range(3):
        arch = sp.sample(rng, resolution=[sp.resolutions[0], sp.resolutions[-1]])
        x = torch.randn(2, 3, arch.r, arch.r)
        with torch.no_grad():
            ref = model(x, arch)
            net = model.extract(arch)
            out = net(x)
        assert (ref - out).abs().max().item() < 1e-5
        assert count_params(net) == sp.params(arch)
        assert count_macs(net, (1, 3, arch.r, arch.r)) == sp.macs(arch)


def test_kernel_transform_changes_small_kernels_only():
    sp = get_space("ofa-mbv3-w1.0")
    block = ElasticMobileNetV3(sp).stages[0][0].depthwise
    w7 = block.active_weight(8, 7)
    assert torch.equal(w7, block.weight[:8])
    with torch.no_grad():
        block.t7to5.mul_(2.0)
    w5 = block.active_weight(8, 5)
    assert torch.allclose(w5, 2 * block.weight[:8, :, 1:6, 1:6])


def test_compofa_has_no_kernel_transforms():
    model = ElasticMobileNetV3("compofa-w1.0")
    assert not [n for n, _ in model.named_parameters() if ".depthwise.t" in n]


def test_reorder_channels_keeps_largest_subnet_function():
    torch.manual_seed(0)
    sp = get_space("ofa-mbv3-w1.0")
    model = _perturb(ElasticMobileNetV3(sp)).eval()
    x = torch.randn(1, 3, 128, 128)
    arch = sp.max_arch(128)
    with torch.no_grad():
        before = model(x, arch)
        model.reorder_channels()
        after = model(x, arch)
    assert (before - after).abs().max().item() < 1e-4
    imp = model.stages[0][1].project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "compofa-w1.0"])
def test_build_layer_counts_match_spec(name):
    for spec in get_space(name).unique_layers([128]):
        mod = build_layer(spec).eval()
        assert count_params(mod) == spec.params, spec.key
        assert count_macs(mod, layer_input_shape(spec)) == spec.macs, spec.key
        with torch.no_grad():
            y = mod(torch.zeros(layer_input_shape(spec)))
        assert y.shape[1] == spec.out_c


def test_checkpoint_round_trip(tmp_path):
    model = ElasticMobileNetV3("compofa-w1.0", n_classes=10)
    torch.save(model.checkpoint_dict(), tmp_path / "c.pt")
    loaded, ckpt = load_supernet(tmp_path / "c.pt", space="compofa-w1.0")
    assert loaded.n_classes == 10
    with pytest.raises(TrainError, match="is for space"):
        load_supernet(tmp_path / "c.pt", space="ofa-mbv3-w1.0")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainError, match="could not be read safely"):
        load_supernet(tmp_path / "bad.pt")


@pytest.mark.parametrize("n,c,hw,k,stride", [(4, 32, 8, 7, 1), (4, 48, 8, 5, 2), (3, 24, 4, 7, 1),
                                             (2, 16, 16, 7, 1), (2, 16, 16, 7, 2), (2, 8, 32, 7, 1),
                                             (2, 16, 8, 3, 1)])
def test_depthwise_conv_gradients_match_conv2d(n, c, hw, k, stride):
    """``depthwise_conv`` (its weight gradient as a forward convolution on small maps, oneDNN's
    elsewhere) gives F.conv2d's output and both gradients, channels-last and NCHW."""
    from latkit.supernet.ops import depthwise_conv

    torch.manual_seed(0)
    for fmt in (torch.channels_last, torch.contiguous_format):
        x = torch.randn(n, c, hw, hw).contiguous(memory_format=fmt).requires_grad_()
        w = torch.randn(c, 1, k, k).requires_grad_()
        ref = torch.nn.functional.conv2d(x, w, stride=stride, padding=k // 2, groups=c)
        g = torch.randn_like(ref)
        gx0, gw0 = torch.autograd.grad(ref, (x, w), g)
        out = depthwise_conv(x, w, stride, k // 2)
        gx1, gw1 = torch.autograd.grad(out, (x, w), g)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(gx1, gx0)
        torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-4)
