"""The elastic MobileNetV3 supernet, static subnets, and single-layer modules.

``ElasticMobileNetV3(space)`` holds the largest network of a space; ``model(x, arch)`` runs the
subnet ``arch`` (the active subnet is an argument, never a mode flag). ``extract(model, arch)``
returns a standalone ``StaticMobileNetV3`` with the active weights copied, whose output equals the
supernet's active forward. ``build_layer(spec)`` returns one layer as a standalone module (for
profiling): the same classes build whole subnets, so a layer measured alone is the layer that runs
inside the network.

Checkpoints (written by the trainer, read here) are dicts with at least ``format`` =
``"latkit-supernet"``, ``space``, ``n_classes`` and ``model`` (a state dict); they are always loaded
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latkit.errors import ArchError, TrainError
from latkit.supernet.arch import ArchConfig
from latkit.supernet.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from latkit.supernet.layers import LayerSpec, make_divisible
from latkit.supernet.ops import (
    Classifier,
    ConvBNAct,
    ElasticBatchNorm2d,
    ElasticDepthwiseConv,
    ElasticPointConv,
    ElasticSE,
    GlobalAvgPool,
    MBConv,
    activation,
)
from latkit.supernet.space import (
    FIRST_BLOCK_ACT,
    FIRST_BLOCK_SE,
    FIRST_BLOCK_STRIDE,
    SearchSpace,
    get_space,
)

# ----------------------------------------------------------------------------------------------
# Static networks and layers
# ----------------------------------------------------------------------------------------------


def build_layer(spec: LayerSpec, dropout: float = 0.0) -> nn.Module:
    """A standalone module for one layer; input shape is ``layer_input_shape(spec)``."""
    k = spec.kind
    if k == "Conv":
        return ConvBNAct(spec.in_c, spec.out_c, 3, 2, act="h_swish")
    if k == "expanded_conv":
        return MBConv(spec.in_c, spec.mid_c, spec.out_c, spec.kernel, spec.stride, spec.act,
                      spec.se, spec.idskip)
    if k == "Conv_1":
        return ConvBNAct(spec.in_c, spec.out_c, 1, act="h_swish")
    if k == "AvgPool2D":
        return GlobalAvgPool()
    if k == "Conv_2":
        return ConvBNAct(spec.in_c, spec.out_c, 1, act="h_swish", bn=False)
    if k == "Logits":
        return Classifier(spec.in_c, spec.out_c, dropout)
    raise ArchError(f"unknown layer kind {k!r}")


def layer_input_shape(spec: LayerSpec, batch: int = 1) -> tuple[int, int, int, int]:
    return (batch, spec.in_c, spec.in_hw, spec.in_hw)


class StaticMobileNetV3(nn.Sequential):
    """A plain network made of ``build_layer`` modules, one per ``LayerSpec``, in order."""

    def __init__(self, specs: Iterable[LayerSpec], dropout: float = 0.0) -> None:
        specs = list(specs)
        super().__init__(*(build_layer(s, dropout if s.kind == "Logits" else 0.0) for s in specs))
        self.specs = specs


# ----------------------------------------------------------------------------------------------
# The elastic supernet
# ----------------------------------------------------------------------------------------------


class ElasticMBConv(nn.Module):
    """An MBConv block at its largest width; ``forward(x, k, e)`` runs kernel k, expand ratio e."""

    def __init__(self, in_c: int, out_c: int, kernel_sizes: tuple[int, ...], max_e: int,
                 stride: int, act: str, se: bool, kernel_transform: bool = True) -> None:
        super().__init__()
        self.in_c, self.out_c, self.stride = in_c, out_c, stride
        self.max_mid = make_divisible(round(in_c * max_e), 8)
        self.expand_conv = ElasticPointConv(in_c, self.max_mid)
        self.expand_bn = ElasticBatchNorm2d(self.max_mid)
        self.depthwise = ElasticDepthwiseConv(self.max_mid, kernel_sizes, stride, kernel_transform)
        self.depthwise_bn = ElasticBatchNorm2d(self.max_mid)
        self.se = ElasticSE(self.max_mid) if se else None
        self.project = ElasticPointConv(self.max_mid, out_c)
        self.project_bn = nn.BatchNorm2d(out_c)
        self.act = activation(act, fused=True)
        self.act_name = act
        self.idskip = stride == 1 and in_c == out_c

    def mid(self, e: int) -> int:
        return make_divisible(round(self.in_c * e), 8)

    def forward(self, x: torch.Tensor, k: int, e: int) -> torch.Tensor:
        m = self.mid(e)
        y = self.act(self.expand_bn(self.expand_conv(x, m)))
        y = self.act(self.depthwise_bn(self.depthwise(y, k)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project(y, self.out_c))
        return x + y if self.idskip else y

    @torch.no_grad()
    def copy_to(self, block: MBConv, k: int, e: int) -> None:
        """Copy the active weights of (k, e) into a static ``MBConv``."""
        m = self.mid(e)
        assert block.expand is not None
        block.expand[0].weight.copy_(self.expand_conv.active_weight(self.in_c, m))
        _copy_bn(block.expand[1], self.expand_bn, m)
        block.depthwise[0].weight.copy_(self.depthwise.active_weight(m, k))
        _copy_bn(block.depthwise[1], self.depthwise_bn, m)
        if self.se is not None:
            assert block.se is not None
            s = self.se.mid(m)
            block.se.reduce.weight.copy_(self.se.reduce_weight[:s, :m])
            block.se.reduce.bias.copy_(self.se.reduce_bias[:s])
            block.se.expand.weight.copy_(self.se.expand_weight[:m, :s])
            block.se.expand.bias.copy_(self.se.expand_bias[:m])
        block.project[0].weight.copy_(self.project.active_weight(m, self.out_c))
        _copy_bn(block.project[1], self.project_bn, self.out_c)

    @torch.no_grad()
    def reorder_channels(self) -> None:
        """Sort middle (and SE middle) channels by importance, most important first.

        once-for-all does this before the elastic-width phases so that the first-N channels a small
        subnet keeps are the ones that matter most. Importance is the L1 norm of the projection
        weights reading each channel. The function computed by the largest subnet is unchanged.
        """
        imp = self.project.weight.abs().sum(dim=(0, 2, 3))
        order = torch.argsort(imp, descending=True)
        self.project.weight.copy_(self.project.weight[:, order])
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        for bn in (self.expand_bn, self.depthwise_bn):
            _permute_bn(bn, order)
        self.depthwise.weight.copy_(self.depthwise.weight[order])
        if self.se is not None:
            se = self.se
            se.expand_weight.copy_(se.expand_weight[order])
            se.expand_bias.copy_(se.expand_bias[order])
            se.reduce_weight.copy_(se.reduce_weight[:, order])
            se_imp = se.expand_weight.abs().sum(dim=(0, 2, 3))
            se_order = torch.argsort(se_imp, descending=True)
            se.expand_weight.copy_(se.expand_weight[:, se_order])
            se.reduce_weight.copy_(se.reduce_weight[se_order])
            se.reduce_bias.copy_(se.reduce_bias[se_order])


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        t.copy_(t[order])


class ElasticMobileNetV3(nn.Module):
    """The supernet of a space. ``forward(x, arch)`` runs subnet ``arch`` (input at arch.r)."""

    def __init__(self, space: str | SearchSpace, n_classes: int | None = None,
                 dropout: float = 0.1, kernel_transform: bool = True) -> None:
        super().__init__()
        self.space = get_space(space) if isinstance(space, str) else space
        sp, c = self.space, self.space.conf
        self.n_classes = n_classes or c.n_classes
        self.dropout = dropout
        # the fixed layers in their fused-activation form too (same parameters; ``extract`` copies
        # them into the written-out static layers that are exported)
        self.stem = ConvBNAct(3, sp.stem_width, 3, 2, act="h_swish", fused=True)
        self.first_block = MBConv(
            sp.stem_width, sp.stem_width, sp.first_block_width, 3, FIRST_BLOCK_STRIDE,
            FIRST_BLOCK_ACT, FIRST_BLOCK_SE,
            idskip=FIRST_BLOCK_STRIDE == 1 and sp.stem_width == sp.first_block_width, fused=True,
        )
        self.stages = nn.ModuleList()
        for s, st in enumerate(c.stages):
            blocks = nn.ModuleList()
            for b in range(sp.max_depth):
                blocks.append(
                    ElasticMBConv(
                        sp.stage_in_width(s) if b == 0 else sp.stage_widths[s],
                        sp.stage_widths[s],
                        c.ks_choices[s],
                        max(c.e_choices),
                        st.stride if b == 0 else 1,
                        st.act,
                        st.se,
                        kernel_transform,
                    )
                )
            self.stages.append(blocks)
        self.final_expand = ConvBNAct(sp.stage_widths[-1], sp.final_expand_width, 1, act="h_swish",
                                      fused=True)
        self.pool = GlobalAvgPool()
        self.feature_mix = ConvBNAct(sp.final_expand_width, sp.feature_mix_width, 1,
                                     act="h_swish", bn=False, fused=True)
        self.classifier = Classifier(sp.feature_mix_width, self.n_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.weight.shape[1] ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, arch: ArchConfig | None = None) -> torch.Tensor:
        arch = arch or self.space.max_arch()
        x = self.first_block(self.stem(x))
        for blocks, ks, es in zip(self.stages, arch.ks, arch.e, strict=False):
            for block, k, e in zip(blocks, ks, es, strict=False):
                x = block(x, k, e)
        x = self.feature_mix(self.pool(self.final_expand(x)))
        return self.classifier(x)

    def reorder_channels(self) -> None:
        for blocks in self.stages:
            for block in blocks:
                block.reorder_channels()

    @torch.no_grad()
    def extract(self, arch: ArchConfig) -> StaticMobileNetV3:
        """A standalone static subnet with the active weights (and BN statistics) copied."""
        self.space.validate(arch)
        specs = self.space.layers(arch)
        if self.n_classes != specs[-1].out_c:
            specs = specs[:-1] + [
                LayerSpec("Logits", 1, specs[-1].in_c, 1, self.n_classes, act="none")
            ]
        net = StaticMobileNetV3(specs, self.dropout)
        mods = list(net.children())
        mods[0].load_state_dict(self.stem.state_dict())
        mods[1].load_state_dict(self.first_block.state_dict())
        i = 2
        for blocks, ks, es in zip(self.stages, arch.ks, arch.e, strict=False):
            for block, k, e in zip(blocks, ks, es, strict=False):
                block.copy_to(mods[i], k, e)
                i += 1
        mods[i].load_state_dict(self.final_expand.state_dict())
        mods[i + 2].load_state_dict(self.feature_mix.state_dict())
        mods[i + 3].load_state_dict(self.classifier.state_dict())
        net.train(self.training)
        return net

    def checkpoint_dict(self, **extra: Any) -> dict[str, Any]:
        """The minimal checkpoint dict ``load_supernet`` reads (the trainer adds more)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "space": self.space.name,
            "n_classes": self.n_classes,
            "dropout": self.dropout,
            "model": self.state_dict(),
            **extra,
        }


def load_supernet(path: str | Path, space: str | None = None) -> tuple[ElasticMobileNetV3, dict]:
    """Load a supernet checkpoint (``weights_only=True``); returns (model in eval mode, checkpoint).

    once-for-all's and CompOFA's released files are read too (converted for ``space``; see
    ``latkit.supernet.ofa_format``). If the checkpoint holds recalibrated BatchNorm statistics per
    subnet (``bn_stats``), they are left in the returned dict for the caller (``extract_with_bn``).
    """
    ckpt = load_checkpoint(path, space)
    return supernet_from_checkpoint(ckpt, path, space), ckpt


def supernet_from_checkpoint(ckpt: dict, path: str | Path,
                             space: str | None = None) -> ElasticMobileNetV3:
    """The supernet (eval mode) of a checkpoint dict already read from ``path``."""
    p = Path(path)
    ck_space = ckpt.get("space")
    if space is not None and ck_space != space:
        raise TrainError(f"checkpoint {p} is for space {ck_space!r}, not {space!r}")
    model = ElasticMobileNetV3(ck_space, n_classes=int(ckpt["n_classes"]),
                               dropout=float(ckpt.get("dropout", 0.1)),
                               kernel_transform=bool(ckpt.get("kernel_transform", True)))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        raise TrainError(f"checkpoint {p} does not match the {ck_space} supernet: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    model.eval()
    return model


def count_params(module: nn.Module) -> int:
    """Parameters of a module (BatchNorm affine weights included; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of Conv2d and Linear layers for one forward pass (once-for-all's counting)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = m.weight.shape[2] * m.weight.shape[3]
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * m.in_features

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            was = module.training
            module.eval()
            module(torch.zeros(input_shape))
            module.train(was)
    finally:
        for h in hooks:
            h.remove()
    return total
