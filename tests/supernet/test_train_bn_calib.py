"""BN recalibration re-estimates the active statistics; extracted subnets carry them."""

import torch

from latkit.supernet.bn_calib import batchnorm_layers, recalibrate_bn
from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")


def small_model():
    torch.manual_seed(0)
    m = ElasticMobileNetV3(SPACE, n_classes=5, kernel_transform=False)
    for bn in batchnorm_layers(m):  # pretend training left stale statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return m.eval()


def test_recalibration_uses_the_batch_statistics_of_the_subnet():
    m = small_model()
    arch = SPACE.min_arch(128)
    block = m.stages[0][0]
    mid = block.mid(arch.e[0][0])
    before_mean = block.expand_bn.running_mean.clone()
    unused = m.stages[0][3].expand_bn.running_mean.clone()  # depth 2: block 4 is not active
    torch.manual_seed(1)
    x = torch.randn(12, 3, 128, 128)
    rng_before = torch.get_rng_state()
    recalibrate_bn(m, arch, x, batch_size=4)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert not m.training
    assert all(bn.momentum == 0.1 for bn in batchnorm_layers(m))
    after = block.expand_bn.running_mean
    assert not torch.allclose(after[:mid], before_mean[:mid])
    assert torch.equal(after[mid:], before_mean[mid:])  # inactive channels untouched
    assert torch.equal(m.stages[0][3].expand_bn.running_mean, unused)
    # the stem's statistics are the mean over the three batches of the batch means
    with torch.no_grad():
        conv = m.stem[0]
        means = [conv(x[i:i + 4]).mean(dim=(0, 2, 3)) for i in range(0, 12, 4)]
    assert torch.allclose(m.stem[1].running_mean, torch.stack(means).mean(0), atol=1e-5)


def test_extracted_subnet_carries_recalibrated_statistics():
    m = small_model()
    arch = SPACE.sample(__import__("random").Random(3), 128)
    x = torch.randn(8, 3, 128, 128)
    stale = m.extract(arch).eval()
    recalibrate_bn(m, arch, x, batch_size=8)
    net = m.extract(arch).eval()
    static_bns = batchnorm_layers(net)
    stale_bns = batchnorm_layers(stale)
    assert any(not torch.allclose(a.running_mean, b.running_mean)
               for a, b in zip(static_bns, stale_bns))
    with torch.no_grad():
        y_super = m(x, arch)
        y_static = net(x)
    assert torch.allclose(y_super, y_static, atol=1e-4)
    # and they are what recalibrating the static net on its own gives
    expected = [bn.running_mean.clone() for bn in static_bns]
    net.train()
    with torch.no_grad():
        for bn in batchnorm_layers(net):
            bn.reset_running_stats()
            bn.momentum = None
        net(x)
    for bn, e in zip(batchnorm_layers(net), expected):
        assert torch.allclose(bn.running_mean, e, atol=1e-5)
