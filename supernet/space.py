"""Search spaces: the config tables of latkit's spaces and ``SearchSpace``, which derives the rest.

This module is the root of latkit's data flow: every other part speaks in ``ArchConfig`` (the arch
key, ``latkit.supernet.arch``) and ``LayerSpec`` (one layer and its lookup-table key,
``latkit.supernet.layers``), both importable from here too. It is pure Python (no torch) so that
describing, sampling and predicting stay fast.

Spaces (once-for-all's MobileNetV3 definitions, and CompOFA's coupled space):

================  ===============================================  ==============================
name              widths                                           elastic dimensions
================  ===============================================  ==============================
ofa-mbv3-w1.0     16 | 16 | 24 40 80 112 160 | 960 | 1280          ks {3,5,7}, e {3,4,6} per block,
                                                                   d {2,3,4} per stage
ofa-mbv3-w1.2     x1.2 rounded to multiples of 8                   same
compofa-w1.0      as w1.0                                          (d, e) per stage coupled:
                                                                   (2,3) (3,4) (4,6); ks fixed
                                                                   per stage [3,5,3,3,5]
================  ===============================================  ==============================

``SearchSpace`` validates, samples and enumerates archs, mutates and crosses them over for
evolution, and decomposes an arch into its ``LayerSpec``s (whose sums are the subnet's parameters
and MACs). ``get_space(name)`` gives the one instance of each space; ``list_spaces()`` their names.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from latkit.errors import ArchError, SpaceError
from latkit.supernet.arch import ArchConfig
from latkit.supernet.layers import LAYER_KINDS, LayerSpec, make_divisible, out_size

__all__ = [
    "FIRST_BLOCK_ACT", "FIRST_BLOCK_SE", "FIRST_BLOCK_STRIDE", "LAYER_KINDS", "SPACE_CONFS",
    "ArchConfig", "LayerSpec", "SearchSpace", "SpaceConf", "StageConf", "get_space", "list_spaces",
    "make_divisible", "out_size", "unique_layers",
]


# --------------------------------------------------------------------------------------------
# Config tables (data only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageConf:
    """One elastic stage of MobileNetV3 (base width before the width multiplier)."""

    base_width: int
    stride: int
    act: str  # "relu" or "h_swish"
    se: bool


@dataclass(frozen=True)
class SpaceConf:
    """The config table of a space: data only; ``SearchSpace`` derives every number from it."""

    name: str
    width_mult: float
    stem_base: int
    first_block_base: int
    stages: tuple[StageConf, ...]
    final_expand_base: int
    feature_mix_base: int
    ks_choices: tuple[tuple[int, ...], ...]  # per stage
    e_choices: tuple[int, ...]
    d_choices: tuple[int, ...]
    coupled: tuple[tuple[int, int], ...] | None  # (d, e) pairs when depth and expand are coupled
    resolutions: tuple[int, ...]
    n_classes: int = 1000
    description: str = ""


_MBV3_STAGES = (
    StageConf(24, 2, "relu", False),
    StageConf(40, 2, "relu", True),
    StageConf(80, 2, "h_swish", False),
    StageConf(112, 1, "h_swish", True),
    StageConf(160, 2, "h_swish", True),
)
# first block: stride 1, relu, no SE (stage 0 of once-for-all's tables)
FIRST_BLOCK_STRIDE, FIRST_BLOCK_ACT, FIRST_BLOCK_SE = 1, "relu", False

SPACE_CONFS: dict[str, SpaceConf] = {
    "ofa-mbv3-w1.0": SpaceConf(
        name="ofa-mbv3-w1.0",
        width_mult=1.0,
        stem_base=16,
        first_block_base=16,
        stages=_MBV3_STAGES,
        final_expand_base=960,
        feature_mix_base=1280,
        ks_choices=((3, 5, 7),) * 5,
        e_choices=(3, 4, 6),
        d_choices=(2, 3, 4),
        coupled=None,
        resolutions=tuple(range(128, 225, 4)),
        description="once-for-all MobileNetV3, width 1.0",
    ),
    "ofa-mbv3-w1.2": SpaceConf(
        name="ofa-mbv3-w1.2",
        width_mult=1.2,
        stem_base=16,
        first_block_base=16,
        stages=_MBV3_STAGES,
        final_expand_base=960,
        feature_mix_base=1280,
        ks_choices=((3, 5, 7),) * 5,
        e_choices=(3, 4, 6),
        d_choices=(2, 3, 4),
        coupled=None,
        resolutions=tuple(range(160, 225, 4)),
        description="once-for-all MobileNetV3, width 1.2",
    ),
    "compofa-w1.0": SpaceConf(
        name="compofa-w1.0",
        width_mult=1.0,
        stem_base=16,
        first_block_base=16,
        stages=_MBV3_STAGES,
        final_expand_base=960,
        feature_mix_base=1280,
        ks_choices=((3,), (5,), (3,), (3,), (5,)),
        e_choices=(3, 4, 6),
        d_choices=(2, 3, 4),
        coupled=((2, 3), (3, 4), (4, 6)),
        resolutions=tuple(range(128, 225, 4)),
        description="CompOFA: depth and expand coupled per stage, kernel fixed per stage",
    ),
}


# --------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """A search space: validation, sampling, enumeration, genetic operators, layer decomposition."""

    conf: SpaceConf
    _layer_cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    # ---- derived widths ----
    @property
    def name(self) -> str:
        return self.conf.name

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.conf.resolutions

    @property
    def n_stages(self) -> int:
        return len(self.conf.stages)

    @property
    def max_depth(self) -> int:
        return max(self.conf.d_choices)

    def _w(self, base: int) -> int:
        return make_divisible(base * self.conf.width_mult, 8)

    @cached_property
    def stem_width(self) -> int:
        return self._w(self.conf.stem_base)

    @cached_property
    def first_block_width(self) -> int:
        return self._w(self.conf.first_block_base)

    @cached_property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self._w(s.base_width) for s in self.conf.stages)

    @cached_property
    def final_expand_width(self) -> int:
        return self._w(self.conf.final_expand_base)

    @cached_property
    def feature_mix_width(self) -> int:
        return self._w(self.conf.feature_mix_base)

    @property
    def is_coupled(self) -> bool:
        return self.conf.coupled is not None

    def stage_in_width(self, stage: int) -> int:
        return self.first_block_width if stage == 0 else self.stage_widths[stage - 1]

    def mid_width(self, in_c: int, e: int) -> int:
        return make_divisible(round(in_c * e), 8)

    # ---- validation ----
    @cached_property
    def _stage_pairs(self) -> tuple[frozenset[tuple[tuple[int, ...], tuple[int, ...]]], ...]:
        """Per stage, every valid (ks, e) pair: a valid arch is then a few set lookups.

        Built once per space (37k pairs for once-for-all's spaces, a few ms), so that scoring
        thousands of archs (a lookup-table sum, a search) does not pay validation per field.
        """
        return tuple(frozenset(self._stage_options(s)) for s in range(self.n_stages))

    def validate(self, arch: ArchConfig) -> ArchConfig:
        """Raise ArchError naming the field and the allowed values; return ``arch`` if valid."""
        if arch.r in self.conf.resolutions and len(arch.ks) == len(arch.e) == self.n_stages and all(
                (ks, e) in pairs for ks, e, pairs in zip(arch.ks, arch.e, self._stage_pairs, strict=True)):
            return arch
        c = self.conf
        if arch.r not in c.resolutions:
            raise ArchError(
                f"resolution r={arch.r} is not in {c.name} (allowed: {c.resolutions[0]}.."
                f"{c.resolutions[-1]} step {c.resolutions[1] - c.resolutions[0]})"
            )
        if len(arch.ks) != self.n_stages:
            raise ArchError(f"{c.name} has {self.n_stages} stages; arch has {len(arch.ks)}")
        for s in range(self.n_stages):
            if arch.d[s] not in c.d_choices:
                raise ArchError(f"d[{s}] = {arch.d[s]} not in {set(c.d_choices)} ({c.name})")
            for b, (k, e) in enumerate(zip(arch.ks[s], arch.e[s], strict=False)):
                if k not in c.ks_choices[s]:
                    raise ArchError(
                        f"ks of stage {s + 1} block {b + 1} = {k} not in {set(c.ks_choices[s])} "
                        f"({c.name})"
                    )
                if e not in c.e_choices:
                    raise ArchError(
                        f"e of stage {s + 1} block {b + 1} = {e} not in {set(c.e_choices)} ({c.name})"
                    )
            if c.coupled is not None:
                allowed = dict(c.coupled)
                want = allowed[arch.d[s]]
                if any(e != want for e in arch.e[s]):
                    raise ArchError(
                        f"{c.name} couples depth and expand per stage {c.coupled}: stage {s + 1} "
                        f"has d={arch.d[s]}, so every block needs e={want}, found {list(arch.e[s])}"
                    )
        return arch

    def parse(self, text: str | Mapping[str, Any] | ArchConfig) -> ArchConfig:
        """Parse (key, dict or JSON text) and validate against this space."""
        return self.validate(ArchConfig.parse(text))

    # ---- construction ----
    def _stage_options(self, s: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Every (ks, e) tuple pair a stage can take (only used where enumerable)."""
        c = self.conf
        opts = []
        pairs = c.coupled if c.coupled is not None else [(d, None) for d in c.d_choices]
        for d, e_fixed in pairs:
            e_sets = [(e_fixed,)] if e_fixed is not None else [c.e_choices]
            for ks in itertools.product(c.ks_choices[s], repeat=d):
                for es in itertools.product(*(e_sets * d)) if e_fixed is None else [(e_fixed,) * d]:
                    opts.append((tuple(ks), tuple(es)))
        return opts

    def max_arch(self, r: int | None = None) -> ArchConfig:
        c = self.conf
        d, e = (c.coupled[-1] if c.coupled else (max(c.d_choices), max(c.e_choices)))
        return self.validate(
            ArchConfig(
                r=r or max(c.resolutions),
                ks=tuple((max(c.ks_choices[s]),) * d for s in range(self.n_stages)),
                e=tuple((e,) * d for _ in range(self.n_stages)),
            )
        )

    def min_arch(self, r: int | None = None) -> ArchConfig:
        c = self.conf
        d, e = (c.coupled[0] if c.coupled else (min(c.d_choices), min(c.e_choices)))
        return self.validate(
            ArchConfig(
                r=r or min(c.resolutions),
                ks=tuple((min(c.ks_choices[s]),) * d for s in range(self.n_stages)),
                e=tuple((e,) * d for _ in range(self.n_stages)),
            )
        )

    def sample(self, rng: random.Random, resolution: int | Sequence[int] | None = None) -> ArchConfig:
        """A uniformly random subnet (uniform per choice, as once-for-all samples)."""
        c = self.conf
        if resolution is None:
            r = rng.choice(c.resolutions)
        elif isinstance(resolution, int):
            r = resolution
        else:
            r = rng.choice(list(resolution))
        ks, es = [], []
        for s in range(self.n_stages):
            if c.coupled is not None:
                d, e = rng.choice(c.coupled)
                ks.append(tuple(rng.choice(c.ks_choices[s]) for _ in range(d)))
                es.append((e,) * d)
            else:
                d = rng.choice(c.d_choices)
                ks.append(tuple(rng.choice(c.ks_choices[s]) for _ in range(d)))
                es.append(tuple(rng.choice(c.e_choices) for _ in range(d)))
        return self.validate(ArchConfig(r=r, ks=tuple(ks), e=tuple(es)))

    def enumerate(self, resolution: int | None = None) -> Iterator[ArchConfig]:
        """Every subnet at ``resolution`` (all resolutions if None). Only for enumerable spaces."""
        n = self.num_subnets()
        if n > 10**7:
            raise ArchError(
                f"{self.name} has {n:.3g} subnets per resolution, too many to enumerate; "
                "sample them (lat space sample) or search with evolution"
            )
        rs = self.conf.resolutions if resolution is None else (resolution,)
        for r in rs:
            if r not in self.conf.resolutions:
                raise ArchError(f"resolution {r} is not in {self.name} {self.conf.resolutions}")
            per_stage = [self._stage_options(s) for s in range(self.n_stages)]
            for combo in itertools.product(*per_stage):
                yield ArchConfig(
                    r=r, ks=tuple(k for k, _ in combo), e=tuple(e for _, e in combo)
                )

    def num_subnets(self, per_resolution: bool = True) -> int:
        c = self.conf
        per_stage = []
        for s in range(self.n_stages):
            if c.coupled is not None:
                per_stage.append(sum(len(c.ks_choices[s]) ** d for d, _ in c.coupled))
            else:
                per_stage.append(
                    sum((len(c.ks_choices[s]) * len(c.e_choices)) ** d for d in c.d_choices)
                )
        n = math.prod(per_stage)
        return n if per_resolution else n * len(c.resolutions)

    # ---- genetic operators (for evolutionary search) ----
    def mutate(self, arch: ArchConfig, rng: random.Random, prob: float = 0.1,
               resolutions: Sequence[int] | None = None) -> ArchConfig:
        """Resample each gene with probability ``prob``; the result is always in the space."""
        c = self.conf
        r = arch.r
        if rng.random() < prob:
            r = rng.choice(list(resolutions or c.resolutions))
        ks = [list(k) for k in arch.ks]
        es = [list(e) for e in arch.e]
        for s in range(self.n_stages):
            if c.coupled is not None:
                if rng.random() < prob:
                    d, e = rng.choice(c.coupled)
                    ks[s] = [ks[s][i] if i < len(ks[s]) else rng.choice(c.ks_choices[s])
                             for i in range(d)]
                    es[s] = [e] * d
                continue
            if rng.random() < prob:
                d = rng.choice(c.d_choices)
                ks[s] = [ks[s][i] if i < len(ks[s]) else rng.choice(c.ks_choices[s])
                         for i in range(d)]
                es[s] = [es[s][i] if i < len(es[s]) else rng.choice(c.e_choices) for i in range(d)]
            for b in range(len(ks[s])):
                if rng.random() < prob:
                    ks[s][b] = rng.choice(c.ks_choices[s])
                if rng.random() < prob:
                    es[s][b] = rng.choice(c.e_choices)
        return self.validate(
            ArchConfig(r=r, ks=tuple(map(tuple, ks)), e=tuple(map(tuple, es)))
        )

    def crossover(self, a: ArchConfig, b: ArchConfig, rng: random.Random) -> ArchConfig:
        """Each stage (depth, kernels, expands) and the resolution from either parent."""
        pick = [rng.random() < 0.5 for _ in range(self.n_stages)]
        return self.validate(
            ArchConfig(
                r=a.r if rng.random() < 0.5 else b.r,
                ks=tuple(a.ks[s] if pick[s] else b.ks[s] for s in range(self.n_stages)),
                e=tuple(a.e[s] if pick[s] else b.e[s] for s in range(self.n_stages)),
            )
        )

    # ---- layer decomposition ----
    def stem_layer(self, r: int) -> LayerSpec:
        return LayerSpec("Conv", r, 3, out_size(r, 2), self.stem_width, kernel=3, stride=2,
                         act="h_swish")

    def first_block_layer(self, r: int) -> LayerSpec:
        hw = out_size(r, 2)
        c_in, c_out = self.stem_width, self.first_block_width
        return LayerSpec(
            "expanded_conv", hw, c_in, out_size(hw, FIRST_BLOCK_STRIDE), c_out, mid_c=c_in,
            kernel=3, stride=FIRST_BLOCK_STRIDE,
            idskip=FIRST_BLOCK_STRIDE == 1 and c_in == c_out, se=FIRST_BLOCK_SE,
            act=FIRST_BLOCK_ACT,
        )

    def block_layer(self, stage: int, block: int, in_hw: int, k: int, e: int) -> LayerSpec:
        st = self.conf.stages[stage]
        c_in = self.stage_in_width(stage) if block == 0 else self.stage_widths[stage]
        c_out = self.stage_widths[stage]
        stride = st.stride if block == 0 else 1
        return LayerSpec(
            "expanded_conv", in_hw, c_in, out_size(in_hw, stride), c_out,
            mid_c=self.mid_width(c_in, e), kernel=k, stride=stride,
            idskip=stride == 1 and c_in == c_out, se=st.se, act=st.act,
        )

    def block_layer_at(self, r: int, stage: int, block: int, k: int, e: int) -> LayerSpec:
        """Block ``block`` of stage ``stage`` in any subnet at resolution ``r`` (its input size
        depends only on where it sits: depth keeps the first blocks of a stage)."""
        hw = self.stage_hw(r)[stage]
        if block > 0:
            hw = out_size(hw, self.conf.stages[stage].stride)
        return self.block_layer(stage, block, hw, k, e)

    def final_layers(self, hw: int) -> list[LayerSpec]:
        c_last, fe, fm = self.stage_widths[-1], self.final_expand_width, self.feature_mix_width
        return [
            LayerSpec("Conv_1", hw, c_last, hw, fe, kernel=1, act="h_swish"),
            LayerSpec("AvgPool2D", hw, fe, 1, fe, act="none"),
            LayerSpec("Conv_2", 1, fe, 1, fm, kernel=1, act="h_swish"),
            LayerSpec("Logits", 1, fm, 1, self.conf.n_classes, act="none"),
        ]

    def layers(self, arch: ArchConfig) -> list[LayerSpec]:
        """The ordered layers of a (valid) subnet: stem, first block, active blocks, final layers."""
        cached = self._layer_cache.get(arch)
        if cached is not None:
            return cached
        self.validate(arch)
        out = [self.stem_layer(arch.r), self.first_block_layer(arch.r)]
        hw = out[-1].out_hw
        for s in range(self.n_stages):
            for b, (k, e) in enumerate(zip(arch.ks[s], arch.e[s], strict=False)):
                spec = self.block_layer(s, b, hw, k, e)
                out.append(spec)
                hw = spec.out_hw
        out += self.final_layers(hw)
        if len(self._layer_cache) < 100_000:
            self._layer_cache[arch] = out
        return out

    def params(self, arch: ArchConfig) -> int:
        return sum(layer.params for layer in self.layers(arch))

    def macs(self, arch: ArchConfig) -> int:
        return sum(layer.macs for layer in self.layers(arch))

    def stage_hw(self, r: int) -> list[int]:
        """Input spatial size of each stage at resolution ``r``."""
        hw = out_size(out_size(r, 2), FIRST_BLOCK_STRIDE)
        sizes = []
        for st in self.conf.stages:
            sizes.append(hw)
            hw = out_size(hw, st.stride)
        return sizes + [hw]

    def unique_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerSpec]:
        """Every distinct layer any subnet can contain at these resolutions (a LUT campaign's jobs)."""
        c = self.conf
        rs = list(resolutions) if resolutions is not None else list(c.resolutions)
        seen: dict[str, LayerSpec] = {}

        def add(spec: LayerSpec) -> None:
            seen.setdefault(spec.key, spec)

        for r in rs:
            if r not in c.resolutions:
                raise ArchError(f"resolution {r} is not in {c.name} {c.resolutions}")
            add(self.stem_layer(r))
            add(self.first_block_layer(r))
            for s in range(self.n_stages):
                for b in range(self.max_depth):
                    for k in c.ks_choices[s]:
                        for e in self._block_e_choices(b):
                            add(self.block_layer_at(r, s, b, k, e))
            for spec in self.final_layers(self.stage_hw(r)[-1]):
                add(spec)
        return list(seen.values())

    def _block_e_choices(self, block: int) -> tuple[int, ...]:
        """Expand ratios block index ``block`` of a stage can take (coupling restricts deep blocks)."""
        c = self.conf
        if c.coupled is None:
            return c.e_choices if block < max(c.d_choices) else ()
        return tuple(sorted({e for d, e in c.coupled if d > block}))

    def describe(self) -> dict[str, Any]:
        c = self.conf
        return {
            "name": c.name,
            "description": c.description,
            "widths": [self.stem_width, self.first_block_width, *self.stage_widths,
                       self.final_expand_width, self.feature_mix_width],
            "ks": [list(k) for k in c.ks_choices],
            "e": list(c.e_choices),
            "d": list(c.d_choices),
            "coupled": [list(p) for p in c.coupled] if c.coupled else None,
            "resolutions": list(c.resolutions),
            "subnets_per_resolution": self.num_subnets(),
            "subnets_total": self.num_subnets(per_resolution=False),
        }


_SPACES: dict[str, SearchSpace] = {}


_FAMILIES: dict[tuple[str, int, int], SearchSpace] = {}


def get_space(name: str) -> SearchSpace:
    """The space called ``name``, or the family in the JSON file ``name`` (``latkit.supernet.family``);
    SpaceError listing the known names otherwise."""
    if isinstance(name, SearchSpace):
        return name
    if name not in SPACE_CONFS and isinstance(name, str):
        from latkit.supernet.family import is_family_path, load_family  # noqa: PLC0415 -- family.py imports this module

        if is_family_path(name):
            try:
                st = Path(name).stat()
            except OSError:
                return load_family(name)  # the one-line error for a missing file
            key = (str(Path(name).resolve()), st.st_mtime_ns, st.st_size)
            if key not in _FAMILIES:
                _FAMILIES[key] = load_family(name)
            return _FAMILIES[key]
    if name not in SPACE_CONFS:
        raise SpaceError(f"unknown space {name!r}; known spaces: {', '.join(SPACE_CONFS)}, or a "
                         "family file (FAMILY.json, lat space derive)")
    if name not in _SPACES:
        _SPACES[name] = SearchSpace(SPACE_CONFS[name])
    return _SPACES[name]


def list_spaces() -> list[str]:
    return list(SPACE_CONFS)


def unique_layers(space: str | SearchSpace, resolutions: Iterable[int] | None = None) -> list[LayerSpec]:
    """Every distinct layer of ``space`` at ``resolutions`` (all of the space's if None)."""
    return get_space(space).unique_layers(resolutions)
