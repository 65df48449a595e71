"""The layers of a subnet: ``LayerSpec``, the shapes a lookup table is keyed by, and its canonical key.

An arch decomposes into an ordered list of ``LayerSpec``s (stem, each active block, final layers;
``SearchSpace.layers`` in ``latkit.supernet.space`` does it). That decomposition is the single
bridge between the network and the lookup tables: a layer's ``key`` indexes the lookup table and
the measurement store, ``build_layer(spec)`` in ``latkit.supernet.model`` builds it alone for
profiling, and its ``params``/``macs`` count it.

Layer keys follow the once-for-all latency-table format (see shared/data/README.md), e.g.
``expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0``
where ``expand`` is the middle channel count; ``LayerSpec.parse`` reads one back. The format never
changes: tables and stores written before stay readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from latkit.errors import ArchError


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """once-for-all's channel rounding: nearest multiple of ``divisor``, never 10% below ``v``."""
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv of this stride (ceil division, as once-for-all)."""
    return (size - 1) // stride + 1


LAYER_KINDS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a subnet, with the shapes a lookup table is keyed by.

    ``kind`` is one of ``LAYER_KINDS``: ``Conv`` (stem 3x3 stride 2, h_swish), ``expanded_conv`` (an
    MBConv block: optional 1x1 expansion to ``mid_c`` when ``mid_c != in_c``, depthwise
    ``kernel`` x ``kernel`` with ``stride``, optional squeeze-excite, 1x1 projection, identity skip
    when ``idskip``), ``Conv_1`` (final 1x1 expand + BN + h_swish), ``AvgPool2D`` (global average
    pool), ``Conv_2`` (feature mix 1x1, no BN, h_swish) and ``Logits`` (the linear classifier).
    """

    kind: str
    in_hw: int
    in_c: int
    out_hw: int
    out_c: int
    mid_c: int = 0
    kernel: int = 0
    stride: int = 1
    idskip: bool = False
    se: bool = False
    act: str = "relu"

    @property
    def key(self) -> str:
        """The once-for-all latency-table key of this layer."""
        i = f"input:{self.in_hw}x{self.in_hw}x{self.in_c}"
        if self.kind == "Logits":
            return f"Logits-input:1x1x{self.in_c}-output:{self.out_c}"
        o = f"output:{self.out_hw}x{self.out_hw}x{self.out_c}"
        if self.kind != "expanded_conv":
            return f"{self.kind}-{i}-{o}"
        return (
            f"expanded_conv-{i}-{o}-expand:{self.mid_c}-kernel:{self.kernel}-stride:{self.stride}"
            f"-idskip:{int(self.idskip)}-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
        )

    def __str__(self) -> str:
        return self.key

    @property
    def has_expand_conv(self) -> bool:
        return self.kind == "expanded_conv" and self.mid_c != self.in_c

    @property
    def se_mid_c(self) -> int:
        return make_divisible(self.mid_c // 4, 8) if self.se else 0

    @cached_property
    def params(self) -> int:
        """Parameters, BatchNorm affine weights included (once-for-all's convention)."""
        k = self.kind
        if k == "Conv":
            return 3 * 3 * 3 * self.out_c + 2 * self.out_c
        if k == "expanded_conv":
            p = 0
            if self.has_expand_conv:
                p += self.in_c * self.mid_c + 2 * self.mid_c
            p += self.mid_c * self.kernel * self.kernel + 2 * self.mid_c
            if self.se:
                s = self.se_mid_c
                p += self.mid_c * s + s + s * self.mid_c + self.mid_c
            p += self.mid_c * self.out_c + 2 * self.out_c
            return p
        if k == "Conv_1":
            return self.in_c * self.out_c + 2 * self.out_c
        if k == "AvgPool2D":
            return 0
        if k == "Conv_2":
            return self.in_c * self.out_c
        if k == "Logits":
            return self.in_c * self.out_c + self.out_c
        raise ArchError(f"unknown layer kind {k!r}; expected one of {LAYER_KINDS}")

    @cached_property
    def macs(self) -> int:
        """Multiply-accumulates of the conv and linear layers (once-for-all's counting)."""
        k = self.kind
        o2 = self.out_hw * self.out_hw
        if k == "Conv":
            return o2 * 27 * self.out_c
        if k == "expanded_conv":
            m = 0
            if self.has_expand_conv:
                m += self.in_hw * self.in_hw * self.in_c * self.mid_c
            m += o2 * self.mid_c * self.kernel * self.kernel
            if self.se:
                m += 2 * self.mid_c * self.se_mid_c
            m += o2 * self.mid_c * self.out_c
            return m
        if k == "Conv_1":
            return o2 * self.in_c * self.out_c
        if k == "AvgPool2D":
            return 0
        if k in ("Conv_2", "Logits"):
            return self.in_c * self.out_c
        raise ArchError(f"unknown layer kind {k!r}; expected one of {LAYER_KINDS}")

    _KEY_RE = re.compile(
        r"^(?P<kind>Conv|Conv_1|Conv_2|AvgPool2D)-input:(?P<ih>\d+)x(?P<iw>\d+)x(?P<ic>\d+)"
        r"-output:(?P<oh>\d+)x(?P<ow>\d+)x(?P<oc>\d+)$"
        r"|^Logits-input:1x1x(?P<lic>\d+)-output:(?P<loc>\d+)$"
        r"|^expanded_conv-input:(?P<eih>\d+)x(?P<eiw>\d+)x(?P<eic>\d+)"
        r"-output:(?P<eoh>\d+)x(?P<eow>\d+)x(?P<eoc>\d+)-expand:(?P<mid>\d+)-kernel:(?P<k>\d+)"
        r"-stride:(?P<s>\d+)-idskip:(?P<id>[01])-se:(?P<se>[01])-hs:(?P<hs>[01])$"
    )

    @classmethod
    def parse(cls, key: str) -> LayerSpec:
        """Inverse of ``key``. Raises ArchError on anything that is not a layer key."""
        m = cls._KEY_RE.match(key.strip())
        if not m:
            raise ArchError(
                f"not a once-for-all layer key: {key!r} (expected e.g. "
                "'expanded_conv-input:56x56x24-output:28x28x40-expand:72-kernel:5-stride:2-"
                "idskip:0-se:1-hs:0' or 'Conv-input:224x224x3-output:112x112x16')"
            )
        g = m.groupdict()
        if g["kind"]:
            act = "h_swish" if g["kind"] in ("Conv", "Conv_1", "Conv_2") else "relu"
            return cls(g["kind"], int(g["ih"]), int(g["ic"]), int(g["oh"]), int(g["oc"]), act=act)
        if g["lic"]:
            return cls("Logits", 1, int(g["lic"]), 1, int(g["loc"]), act="none")
        return cls(
            "expanded_conv",
            int(g["eih"]),
            int(g["eic"]),
            int(g["eoh"]),
            int(g["eoc"]),
            mid_c=int(g["mid"]),
            kernel=int(g["k"]),
            stride=int(g["s"]),
            idskip=g["id"] == "1",
            se=g["se"] == "1",
            act="h_swish" if g["hs"] == "1" else "relu",
        )
