"""Elastic operations, written once (STYLE 3), and the static layers they are extracted to.

Elastic ops hold the weights of the largest layer and run a smaller one by slicing:

- ``ElasticPointConv``: 1x1 conv; the first ``out_c`` filters and the first ``in_c`` input channels.
- ``ElasticDepthwiseConv``: depthwise conv over the first C channels with an elastic kernel: a
  smaller kernel is the centre crop of the next larger one, passed through a learned
  kernel-transform matrix (once-for-all, initialised to identity). With a single kernel size there
  are no transforms (CompOFA's fixed kernels).
- ``ElasticBatchNorm2d``: BatchNorm over the first C channels (statistics and affine weights sliced,
  running statistics updated in place in the slice).
- ``ElasticSE``: squeeze-excite over the first C channels, middle width make_divisible(C // 4, 8).

The active sub-layer is an argument of ``forward`` (no mode flags, STYLE 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from latkit.supernet.layers import make_divisible


class HSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def activation(name: str, fused: bool = False) -> nn.Module:
    """The activation ``name``; ``fused``: torch's one-kernel ``hardswish`` and an in-place ReLU
    (the same function; for the supernet's training step, where the four elementwise passes of
    the written-out h_swish and their saved tensors cost memory traffic; a BatchNorm's output may
    be overwritten, its backward needs only its input). Static layers keep the written-out form,
    which is what is exported and measured."""
    if name == "relu":
        return nn.ReLU(inplace=fused)
    if name == "h_swish":
        return nn.Hardswish() if fused else HSwish()
    if name in ("none", ""):
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


def _he_fout_(w: torch.Tensor) -> None:
    n = w.shape[0] * w.shape[2] * w.shape[3]
    with torch.no_grad():
        w.normal_(0.0, math.sqrt(2.0 / n))


class ElasticPointConv(nn.Module):
    """1x1 convolution with elastic input and output channel counts (no bias)."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        _he_fout_(self.weight)

    def active_weight(self, in_c: int, out_c: int) -> torch.Tensor:
        return self.weight[:out_c, :in_c]

    def forward(self, x: torch.Tensor, out_c: int) -> torch.Tensor:
        return pointwise_conv(x, self.active_weight(x.shape[1], out_c))


def pointwise_conv(x: torch.Tensor, w: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, w, bias)`` for a 1x1 ``w``; in a CPU training step, a matrix product.

    A channels-last map is an (N*H*W, C) matrix already, so the 1x1 convolution is one GEMM forward
    and two backward, with no reorder of the (sliced) weight into oneDNN's blocked layout. On the
    2-core AVX-512 CPU, forward and backward at batch 16: 2.3x faster at 1x1 maps (squeeze-excite,
    the final 960->1280 layer: 6.1 against 2.7 ms), 1.1-1.5x at 8x8 to 64x64, even at worst.
    Also in inference mode (the teacher's forward: 0.17 against 0.24 ms at 8x8, 0.3 against 1.1 ms at
    1x1). Under plain ``no_grad`` (export: the graph keeps its Conv), on other devices or on an NCHW
    map it is ``F.conv2d``; under ``torch.compile`` too (Inductor chooses; the compiled teacher ran
    as fast either way).
    """
    n, c, h, wd = x.shape
    if (x.device.type != "cpu" or torch.compiler.is_compiling()
            or not (torch.is_grad_enabled() or torch.is_inference_mode_enabled())
            or not (h * wd == 1 or x.permute(0, 2, 3, 1).is_contiguous())):
        return F.conv2d(x, w, bias)
    xf = x.permute(0, 2, 3, 1).reshape(n * h * wd, c)
    wt = w.reshape(w.shape[0], c).t()
    y = torch.mm(xf, wt) if bias is None else torch.addmm(bias, xf, wt)
    return y.view(n, h, wd, w.shape[0]).permute(0, 3, 1, 2)


def depthwise_conv(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, w, stride, padding, groups=C)``, with a faster weight gradient on a CPU.

    oneDNN's CPU kernel for a depthwise convolution's weight gradient is a fast one only for 3x3
    kernels; for 5x5 and 7x7 it takes a generic grouped-convolution path that costs 5-10x the
    forward pass (20 ms against 0.2 ms forward for 960 channels at 4x4, batch 16). On small feature
    maps the same gradient is computed as a *forward* depthwise convolution, which oneDNN runs
    fast for any kernel (``_depthwise_weight_grad``). With latkit's CPU kernel loaded
    (``use_cpu_kernels``; ``--cpu-kernels``) that kernel computes it on every map, 2-30x faster
    than oneDNN (``cpu_kernels``). Everything else (the forward pass, the input gradient, GPUs,
    3x3 kernels, no autograd) is ``F.conv2d``'s own.
    """
    c, k = x.shape[1], w.shape[-1]
    if (x.device.type != "cpu" or k <= 3 or not torch.is_grad_enabled()
            or not w.requires_grad or x.dtype != torch.float32):
        return F.conv2d(x, w, stride=stride, padding=padding, groups=c)
    return _DepthwiseConv.apply(x, w, stride, padding)


# the weight gradient as a forward convolution pays off on input maps up to 8x8 (16x16 for 7x7
# kernels) whose padded (image, channel) planes hold up to 4M values (measured on the 2-core
# AVX-512 CPU, forward and backward of one layer, batch 16: 960 channels at 4x4 6.5x faster, 672 at
# 8x8 stride 2 3.8x, 480 at 8x8 1.6x, 240 at 16x16 7x7 1.3x; 5x5 at 16x16, 32x32 maps and batch 64
# at 8x8 slower or even)
_DW_GRAD_MAX_ELEMENTS = 4 << 20

_cpu_kernel: Callable | None = None  # the loaded kernels' dw_weight_grad (use_cpu_kernels)


def use_cpu_kernels(on: bool) -> None:
    """Route 5x5/7x7 depthwise weight gradients to latkit's C++ kernel (``cpu_kernels``, which
    must be loaded: ``cpu_kernels.load``) or back to oneDNN and the forward-convolution form."""
    global _cpu_kernel
    if on:
        from latkit.supernet import cpu_kernels  # noqa: PLC0415 -- only when asked for

        module = cpu_kernels.load(build=False)
        if module is None:
            raise cpu_kernels.KernelBuildError("latkit's CPU kernels are not built here")
        _cpu_kernel = module.dw_weight_grad
    else:
        _cpu_kernel = None


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, stride, padding):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, w, stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, w = ctx.saved_tensors
        s, p, c = ctx.stride, ctx.padding, x.shape[1]
        want_x, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n, _, h, wd = x.shape
        kernel = (_cpu_kernel if want_w and g.dtype == torch.float32
                  and not torch.compiler.is_compiling() else None)
        own = (want_w and kernel is None
               and (h * wd <= 8 * 8 or (h * wd <= 16 * 16 and w.shape[-1] >= 7))
               and n * c * (h + 2 * p) * (wd + 2 * p) <= _DW_GRAD_MAX_ELEMENTS)
        gx = gw = None
        aten_w = want_w and not own and kernel is None
        if want_x or aten_w:
            gx, gw, _ = torch.ops.aten.convolution_backward(
                g, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], c,
                [want_x, aten_w, False])
        if kernel is not None:
            gw = kernel(x, g, w.shape[-1], s, p).to(w.dtype)
        elif own:
            gw = _depthwise_weight_grad(x, g, w.shape[-1], s, p)
        return gx, gw, None, None


def _depthwise_weight_grad(x: torch.Tensor, g: torch.Tensor, k: int, stride: int,
                           padding: int) -> torch.Tensor:
    """d loss / d weight of a depthwise convolution, as a forward depthwise convolution.

    ``gw[c, i, j] = sum over n, h, w of xpad[n, c, h*s + i, w*s + j] * g[n, c, h, w]``: every
    (image, channel) pair is a channel of one image whose "kernel" is that pair's output gradient,
    dilated by the stride; the sum over images follows.
    """
    n, c, h, w = x.shape
    p = padding
    hp, wp = h + 2 * p, w + 2 * p
    xp = F.pad(x, (p, p, p, p))
    # one image of N*C channels, channel n*C + c, laid out channels-last ([h][w][n][c])
    xs = xp.permute(2, 3, 0, 1).reshape(1, hp, wp, n * c).permute(0, 3, 1, 2)
    ks = g.reshape(n * c, 1, g.shape[2], g.shape[3])
    out = F.conv2d(xs, ks, groups=n * c, dilation=stride)
    return out[0, :, :k, :k].reshape(n, c, k, k).sum(0).unsqueeze(1)


class ElasticDepthwiseConv(nn.Module):
    """Depthwise conv with elastic channels and kernel size (centre crop + transform matrices)."""

    def __init__(self, max_c: int, kernel_sizes: tuple[int, ...], stride: int,
                 transform: bool = True) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.max_k = self.kernel_sizes[-1]
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_c, 1, self.max_k, self.max_k))
        _he_fout_(self.weight)
        self.transform = transform and len(self.kernel_sizes) > 1
        if self.transform:
            for big, small in zip(self.kernel_sizes[::-1][:-1], self.kernel_sizes[::-1][1:], strict=False):
                self.register_parameter(
                    f"t{big}to{small}", nn.Parameter(torch.eye(small * small))
                )

    def active_weight(self, c: int, k: int) -> torch.Tensor:
        if k not in self.kernel_sizes:
            raise ValueError(f"kernel {k} not in {self.kernel_sizes}")
        w = self.weight[:c]
        cur = self.max_k
        for small in reversed(self.kernel_sizes):
            if cur == k:
                break
            if small >= cur:
                continue
            lo = (cur - small) // 2
            w = w[:, :, lo : lo + small, lo : lo + small]
            if self.transform:
                t = getattr(self, f"t{cur}to{small}")
                w = F.linear(w.reshape(c, small * small), t).reshape(c, 1, small, small)
            cur = small
        return w

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return depthwise_conv(x, self.active_weight(x.shape[1], k), self.stride, k // 2)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first C channels of its (max-width) parameters and statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(
                self.num_batches_tracked
            )
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean[:c] if not self.training or self.track_running_stats else None,
            self.running_var[:c] if not self.training or self.track_running_stats else None,
            self.weight[:c],
            self.bias[:c],
            use_batch,
            factor,
            self.eps,
        )


class ElasticSE(nn.Module):
    """Squeeze-excite (reduction 4, middle rounded to 8) over the first C channels."""

    def __init__(self, max_c: int, reduction: int = 4) -> None:
        super().__init__()
        self.reduction = reduction
        max_mid = make_divisible(max_c // reduction, 8)
        self.reduce_weight = nn.Parameter(torch.empty(max_mid, max_c, 1, 1))
        self.reduce_bias = nn.Parameter(torch.zeros(max_mid))
        self.expand_weight = nn.Parameter(torch.empty(max_c, max_mid, 1, 1))
        self.expand_bias = nn.Parameter(torch.zeros(max_c))
        _he_fout_(self.reduce_weight)
        _he_fout_(self.expand_weight)

    def mid(self, c: int) -> int:
        return make_divisible(c // self.reduction, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        m = self.mid(c)
        y = x.mean(dim=(2, 3), keepdim=True)
        y = F.relu(pointwise_conv(y, self.reduce_weight[:m, :c], self.reduce_bias[:m]), inplace=True)
        y = F.hardsigmoid(pointwise_conv(y, self.expand_weight[:c, :m], self.expand_bias[:c]))
        return x * y


# ----------------------------------------------------------------------------------------------
# Static layers (what a subnet is extracted to, and what single-layer profiling runs)
# ----------------------------------------------------------------------------------------------


class _PointConv2d(nn.Conv2d):
    """A 1x1 ``nn.Conv2d`` (same parameters) that trains as ``pointwise_conv``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return pointwise_conv(x, self.weight, self.bias)


class ConvBNAct(nn.Sequential):
    """Conv, [BatchNorm], activation. ``fused``: for the supernet's training step, the
    activation's one-kernel form (``activation``) and a 1x1 convolution as ``pointwise_conv``; the
    parameters and the function are the same."""

    def __init__(self, in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1,
                 act: str = "relu", bn: bool = True, fused: bool = False) -> None:
        conv = _PointConv2d if fused and k == 1 and groups == 1 and stride == 1 else nn.Conv2d
        layers: list[nn.Module] = [
            conv(in_c, out_c, k, stride, k // 2, groups=groups, bias=False)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_c))
        layers.append(activation(act, fused))
        super().__init__(*layers)


class SE(nn.Module):
    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, c, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        y = F.relu(self.reduce(y))
        return x * (F.relu6(self.expand(y) + 3.0) / 6.0)


class MBConv(nn.Module):
    """A static MobileNetV3 block: [1x1 expand] -> depthwise -> [SE] -> 1x1 project [+ skip]."""

    def __init__(self, in_c: int, mid_c: int, out_c: int, k: int, stride: int, act: str,
                 se: bool, idskip: bool, fused: bool = False) -> None:
        super().__init__()
        self.expand = ConvBNAct(in_c, mid_c, 1, act=act, fused=fused) if mid_c != in_c else None
        self.depthwise = ConvBNAct(mid_c, mid_c, k, stride, groups=mid_c, act=act, fused=fused)
        self.se = SE(mid_c, make_divisible(mid_c // 4, 8)) if se else None
        self.project = ConvBNAct(mid_c, out_c, 1, act="none", fused=fused)
        self.idskip = idskip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.idskip else y


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Classifier(nn.Module):
    """Flatten + dropout + linear (the ``Logits`` layer)."""

    def __init__(self, in_c: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.flatten(x, 1)))
