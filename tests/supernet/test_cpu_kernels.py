"""latkit's C++ CPU kernel (depthwise weight gradient) and the 1x1 convolution as a matrix product."""

import shutil

import pytest
import torch
import torch.nn.functional as F

from latkit.errors import TrainError
from latkit.supernet import cpu_kernels, ops
from latkit.supernet.train import CPU_KERNELS_MIN_STEPS, resolve_cpu_kernels

needs_compiler = pytest.mark.skipif(
    not (shutil.which("c++") and shutil.which("ninja")),
    reason="building latkit's CPU kernel needs a C++ compiler (c++) and ninja")


@pytest.fixture
def kernels_off_after():
    yield
    ops.use_cpu_kernels(False)


def _onednn_weight_grad(x, w, g, s, p):
    return torch.ops.aten.convolution_backward(
        g, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], x.shape[1], [False, True, False])[1]


@needs_compiler
@pytest.mark.parametrize("n,c,hw,k,stride", [(4, 32, 8, 7, 1), (4, 48, 9, 5, 2), (3, 24, 4, 7, 1),
                                             (2, 40, 16, 7, 2), (2, 20, 32, 5, 1), (1, 8, 5, 7, 2),
                                             (2, 16, 13, 3, 1), (2, 3, 7, 5, 1)])
def test_the_kernel_gives_onednns_weight_gradient(n, c, hw, k, stride):
    """Odd map sizes, channel counts that are not a multiple of its 16-channel blocks, maps smaller
    than the kernel, both memory formats."""
    kernels = cpu_kernels.load()  # built here once (about 40 s), then cached
    torch.manual_seed(0)
    for fmt in (torch.channels_last, torch.contiguous_format):
        x = torch.randn(n, c, hw, hw).contiguous(memory_format=fmt)
        w = torch.randn(c, 1, k, k)
        g = torch.randn_like(F.conv2d(x, w, stride=stride, padding=k // 2, groups=c))
        got = kernels.dw_weight_grad(x, g, k, stride, k // 2)
        assert got.shape == (c, 1, k, k)
        torch.testing.assert_close(got, _onednn_weight_grad(x, w, g, stride, k // 2),
                                   rtol=1e-4, atol=1e-4)


@needs_compiler
def test_depthwise_conv_uses_the_kernel_and_keeps_conv2ds_gradients(kernels_off_after):
    cpu_kernels.load()
    ops.use_cpu_kernels(True)
    torch.manual_seed(0)
    x = torch.randn(2, 24, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(24, 1, 5, 5).requires_grad_()
    ref = F.conv2d(x, w, stride=2, padding=2, groups=24)
    g = torch.randn_like(ref)
    gx0, gw0 = torch.autograd.grad(ref, (x, w), g)
    calls = []
    real = ops._cpu_kernel
    ops._cpu_kernel = lambda *a: calls.append(a[2:]) or real(*a)
    out = ops.depthwise_conv(x, w, 2, 2)
    gx1, gw1 = torch.autograd.grad(out, (x, w), g)
    assert calls == [(5, 2, 2)]
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(gx1, gx0)
    torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-4)


def test_use_cpu_kernels_refuses_a_kernel_not_built(tmp_path, monkeypatch, kernels_off_after):
    monkeypatch.setenv("LATKIT_KERNEL_DIR", str(tmp_path))
    with pytest.raises(cpu_kernels.KernelBuildError, match="not built"):
        ops.use_cpu_kernels(True)
    assert ops._cpu_kernel is None


def test_cpu_kernels_resolved_as_the_flag_says(tmp_path, monkeypatch, kernels_off_after):
    monkeypatch.setenv("LATKIT_KERNEL_DIR", str(tmp_path))
    said = []
    assert not resolve_cpu_kernels("off", "cpu", 10**6)
    assert not resolve_cpu_kernels("on", "cuda:0", 10**6)  # GPUs keep cuDNN's kernels
    with pytest.raises(TrainError, match="auto, on or off"):
        resolve_cpu_kernels("yes", "cpu", 1)
    # auto, a short run and nothing built here: no build, no kernel
    assert not resolve_cpu_kernels("auto", "cpu", CPU_KERNELS_MIN_STEPS - 1, said.append)
    assert not any(tmp_path.iterdir()) and not said
    # no compiler: on is an error that says what to do, auto says so and goes on without
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(TrainError) as e:
        resolve_cpu_kernels("on", "cpu", 1)
    assert "no C++ compiler" in str(e.value) and "--cpu-kernels off" in str(e.value)
    assert "\n" not in str(e.value)
    assert not resolve_cpu_kernels("auto", "cpu", CPU_KERNELS_MIN_STEPS, said.append)
    assert any("no C++ compiler" in m and "oneDNN" in m for m in said)


def test_the_build_folder_is_per_source_torch_and_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("LATKIT_KERNEL_DIR", str(tmp_path))
    a = cpu_kernels.build_dir()
    monkeypatch.setattr(cpu_kernels, "_cpu_signature", lambda: "flags: another cpu")
    assert cpu_kernels.build_dir() != a and a.parent == tmp_path


@pytest.mark.parametrize("n,c,hw,out,bias", [(4, 24, 8, 40, False), (3, 40, 1, 16, True),
                                             (2, 16, 5, 24, True)])
def test_pointwise_conv_is_conv2d(n, c, hw, out, bias):
    """Forward and both gradients as F.conv2d's, from sliced (non-contiguous) weights, in either
    memory format; channels-last output for a channels-last input."""
    torch.manual_seed(0)
    big = torch.randn(out + 8, c + 8, 1, 1, requires_grad=True)
    b = torch.randn(out + 8, requires_grad=True) if bias else None
    for fmt in (torch.channels_last, torch.contiguous_format):
        x = torch.randn(n, c, hw, hw).contiguous(memory_format=fmt).requires_grad_()
        w, bb = big[:out, :c], (b[:out] if bias else None)
        ref = F.conv2d(x, w, bb)
        got = ops.pointwise_conv(x, w, bb)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(ref)
        wrt = (x, big) + ((b,) if bias else ())
        for a, e in zip(torch.autograd.grad(got, wrt, g), torch.autograd.grad(ref, wrt, g),
                        strict=True):
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)
        if fmt is torch.channels_last and hw > 1:
            assert got.is_contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            torch.testing.assert_close(ops.pointwise_conv(x, w, bb), ref.detach(),
                                       rtol=1e-5, atol=1e-5)


def test_pointwise_conv_is_a_conv_under_no_grad_for_export(monkeypatch):
    """Export runs under no_grad: the graph must keep its Conv (a MatMul would be timed instead)."""
    seen = []
    real = F.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **k: seen.append(1) or real(*a, **k))
    x = torch.randn(1, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 8, 1, 1)
    with torch.no_grad():
        ops.pointwise_conv(x, w)
    assert seen == [1]
    ops.pointwise_conv(x, w.requires_grad_())
    assert seen == [1]  # with autograd: the matrix product
