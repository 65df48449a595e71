"""Training schedules as data: once-for-all's progressive shrinking and CompOFA's compound training.

A ``Schedule`` is a tuple of ``Phase``s run in order on one supernet. A phase says how long it runs
(epochs, fractional allowed: a phase is ``round(epochs * steps_per_epoch)`` steps, at least one),
its peak learning rate, which elastic dimensions are open (``"ks"``, ``"d"``, ``"e"``; a closed
dimension stays at its largest value), which values an open dimension may take, how many subnets
share each batch (gradient accumulation; the first is always the largest subnet the phase can
reach), whether the other subnets are distilled from it, and whether the middle channels are
re-ordered by importance before the phase starts.

Published settings (ImageNet, SGD Nesterov momentum 0.9, weight decay 3e-5 without BN/bias, label
smoothing 0.1, cosine learning rate per phase, dropout 0.1, kd_ratio 1.0). Learning rates are given
for a global batch of 256 (``base_lr * 256 / 2048`` in both code bases) and rescaled linearly to the
batch actually used:

=====================  ======  =========  =====  ==============  ===========================
phase (once-for-all)   epochs  warmup ep  lr     open            subnets per step (paper)
=====================  ======  =========  =====  ==============  ===========================
full network           180     0          0.325  -               1 (no distillation)
elastic kernel         120     +5         0.325  ks {3,5,7}      1
elastic depth 1        25      0          0.01   d {3,4}         2
elastic depth 2        120     +5         0.03   d {2,3,4}       2
elastic expand 1 (*)   25      0          0.01   e {4,6}         4
elastic expand 2 (*)   120     +5         0.03   e {3,4,6}       4
=====================  ======  =========  =====  ==============  ===========================

(*) middle channels re-ordered by importance before the phase. Source: Cai et al., "Once-for-All",
ICLR 2020, and ``train_ofa_net.py`` of mit-han-lab/once-for-all (as carried into CompOFA's repo).

=====================  ======  =========  =====  ==============  ===========================
phase (CompOFA)        epochs  warmup ep  lr     open            subnets per step (paper)
=====================  ======  =========  =====  ==============  ===========================
full network           180     0          0.325  -               1 (no distillation)
compound 1 (*)         25      0          0.01   (d, e) coupled  4
compound 2 (*)         120     +5         0.03   (d, e) coupled  4
=====================  ======  =========  =====  ==============  ===========================

CompOFA: no elastic-kernel phase, kernel size fixed per stage (3,5,3,3,5) without kernel-transform
matrices, (depth, expand) sampled jointly per stage from (2,3), (3,4), (4,6). Source: Sahni et al.,
"CompOFA: Compound Once-For-All Networks for Faster Multi-Platform Deployment", ICLR 2021, and
``train_ofa_net.py --task compound --fixed_kernel --heuristic simple`` of gatech-sysml/CompOFA
(which starts from once-for-all's released 180-epoch full network; the paper reports 493.5 vs
978.3 GPU hours for the whole of CompOFA vs once-for-all training).

latkit's differences, all deliberate: every step also trains the largest subnet first and its
detached soft labels are the distillation target of the other subnets (in-place distillation), so
``subnets_per_step`` here is the paper's count plus one (the full phase stays at 1); there is no
separate teacher network and no extra teacher forward pass. Warmup epochs are part of ``epochs``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from latkit.errors import TrainError
from latkit.supernet.arch import ArchConfig
from latkit.supernet.space import SPACE_CONFS, SearchSpace

DIMS = ("ks", "d", "e")
# CompOFA's coupling and fixed kernels, used when the compound schedule runs on an uncoupled space.
COMPOFA_PAIRS: tuple[tuple[int, int], ...] = ((2, 3), (3, 4), (4, 6))
COMPOFA_KERNELS: tuple[int, ...] = tuple(k[0] for k in SPACE_CONFS["compofa-w1.0"].ks_choices)


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule (see the module docstring for the published values)."""

    name: str
    epochs: float  # total, warmup included
    lr: float  # peak learning rate for a global batch of 256
    dims_open: frozenset = field(default_factory=frozenset)  # subset of {"ks", "d", "e"}
    ks_choices: tuple[int, ...] | None = None  # None: the space's choices for an open dimension
    d_choices: tuple[int, ...] | None = None
    e_choices: tuple[int, ...] | None = None
    subnets_per_step: int = 1  # the largest first, then random ones
    warmup_epochs: float = 0.0
    distill: bool = True  # subnets after the first learn from its soft labels too
    compound: bool = False  # (d, e) sampled jointly per stage (CompOFA)
    reorder_channels_before: bool = False

    def __post_init__(self) -> None:
        bad = set(self.dims_open) - set(DIMS)
        if bad:
            raise TrainError(f"phase {self.name}: unknown dimensions {sorted(bad)}; use {DIMS}")
        if self.epochs < 0 or self.lr < 0 or self.subnets_per_step < 1:
            raise TrainError(f"phase {self.name}: epochs, lr must be >= 0 and subnets_per_step >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "epochs": self.epochs, "lr": self.lr,
            "dims_open": sorted(self.dims_open),
            "ks_choices": list(self.ks_choices) if self.ks_choices else None,
            "d_choices": list(self.d_choices) if self.d_choices else None,
            "e_choices": list(self.e_choices) if self.e_choices else None,
            "subnets_per_step": self.subnets_per_step, "warmup_epochs": self.warmup_epochs,
            "distill": self.distill, "compound": self.compound,
            "reorder_channels_before": self.reorder_channels_before,
        }


@dataclass(frozen=True)
class Schedule:
    name: str
    phases: tuple[Phase, ...]
    kernel_transform: bool = True  # once-for-all's kernel-transform matrices (off in CompOFA)
    reference: str = ""

    def scaled(self, epochs_scale: float) -> Schedule:
        """Every phase's epochs (and warmup) multiplied by ``epochs_scale``."""
        if not epochs_scale > 0:
            raise TrainError(f"--epochs-scale must be > 0, got {epochs_scale}")
        return replace(self, phases=tuple(
            replace(p, epochs=p.epochs * epochs_scale, warmup_epochs=p.warmup_epochs * epochs_scale)
            for p in self.phases
        ))

    @property
    def total_epochs(self) -> float:
        return sum(p.epochs for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kernel_transform": self.kernel_transform,
                "reference": self.reference, "phases": [p.to_dict() for p in self.phases]}


# --------------------------------------------------------------------------------------------
# The two published schedules
# --------------------------------------------------------------------------------------------

LR_FULL, LR_PHASE1, LR_PHASE2 = 2.6 * 256 / 2048, 0.08 * 256 / 2048, 0.24 * 256 / 2048


def ofa_schedule() -> Schedule:
    """once-for-all's progressive shrinking (Cai et al., ICLR 2020)."""
    ks, d, e = frozenset({"ks"}), frozenset({"ks", "d"}), frozenset({"ks", "d", "e"})
    return Schedule(
        name="ofa",
        phases=(
            Phase("full", 180, LR_FULL, frozenset(), subnets_per_step=1, distill=False),
            Phase("kernel", 125, LR_FULL, ks, subnets_per_step=2, warmup_epochs=5),
            Phase("depth-1", 25, LR_PHASE1, d, d_choices=(3, 4), subnets_per_step=3),
            Phase("depth-2", 125, LR_PHASE2, d, subnets_per_step=3, warmup_epochs=5),
            Phase("expand-1", 25, LR_PHASE1, e, e_choices=(4, 6), subnets_per_step=5,
                  reorder_channels_before=True),
            Phase("expand-2", 125, LR_PHASE2, e, subnets_per_step=5, warmup_epochs=5,
                  reorder_channels_before=True),
        ),
        kernel_transform=True,
        reference="Cai et al., Once-for-All, ICLR 2020; mit-han-lab/once-for-all train_ofa_net.py",
    )


def compofa_schedule() -> Schedule:
    """CompOFA's compound training (Sahni et al., ICLR 2021)."""
    de = frozenset({"d", "e"})
    return Schedule(
        name="compofa",
        phases=(
            Phase("full", 180, LR_FULL, frozenset(), subnets_per_step=1, distill=False),
            Phase("compound-1", 25, LR_PHASE1, de, subnets_per_step=5, compound=True,
                  reorder_channels_before=True),
            Phase("compound-2", 125, LR_PHASE2, de, subnets_per_step=5, warmup_epochs=5,
                  compound=True, reorder_channels_before=True),
        ),
        kernel_transform=False,
        reference="Sahni et al., CompOFA, ICLR 2021; gatech-sysml/CompOFA train_ofa_net.py "
                  "--task compound --fixed_kernel --heuristic simple",
    )


SCHEDULES = {"ofa": ofa_schedule, "compofa": compofa_schedule}


def get_schedule(name: str, space: SearchSpace | None = None) -> Schedule:
    """The schedule called ``name``; checked against ``space`` when given."""
    if name not in SCHEDULES:
        raise TrainError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    sched = SCHEDULES[name]()
    if space is not None:
        check_schedule(sched, space)
    return sched


def check_schedule(schedule: Schedule, space: SearchSpace) -> None:
    """Raise TrainError if a phase cannot sample from ``space`` (e.g. ofa on a coupled space)."""
    for p in schedule.phases:
        if space.is_coupled and not p.compound and ({"d", "e"} & p.dims_open):
            raise TrainError(
                f"schedule {schedule.name!r} phase {p.name} opens depth and expand independently, "
                f"but {space.name} couples them; use --schedule compofa with this space, or "
                "--space ofa-mbv3-w1.0"
            )
        if p.compound and not space.is_coupled:
            for s, k in enumerate(COMPOFA_KERNELS):
                if k not in space.conf.ks_choices[s]:
                    raise TrainError(f"{space.name} stage {s + 1} has no kernel {k} for CompOFA")


# --------------------------------------------------------------------------------------------
# Sampling the subnets of a phase
# --------------------------------------------------------------------------------------------


def _stage_kernels(space: SearchSpace, phase: Phase, s: int) -> tuple[int, ...]:
    allowed = space.conf.ks_choices[s]
    if phase.compound and not space.is_coupled:
        return (COMPOFA_KERNELS[s],)
    if "ks" not in phase.dims_open:
        return (max(allowed),)
    ks = tuple(k for k in allowed if phase.ks_choices is None or k in phase.ks_choices)
    return ks or (max(allowed),)


def _choices(phase: Phase, dim: str, space_values: Sequence[int]) -> tuple[int, ...]:
    if dim not in phase.dims_open:
        return (max(space_values),)
    restrict = getattr(phase, f"{dim}_choices")
    vals = tuple(v for v in space_values if restrict is None or v in restrict)
    if not vals:
        raise TrainError(f"phase {phase.name}: {dim}_choices {restrict} not in {tuple(space_values)}")
    return vals


def _pairs(space: SearchSpace) -> tuple[tuple[int, int], ...]:
    return space.conf.coupled or COMPOFA_PAIRS


def largest_subnet(space: SearchSpace, phase: Phase, r: int) -> ArchConfig:
    """The largest subnet ``phase`` can sample at resolution ``r`` (its distillation teacher)."""
    ks, es = [], []
    for s in range(space.n_stages):
        k = max(_stage_kernels(space, phase, s))
        if phase.compound:
            d, e = max(_pairs(space))
        else:
            d = max(_choices(phase, "d", space.conf.d_choices))
            e = max(_choices(phase, "e", space.conf.e_choices))
        ks.append((k,) * d)
        es.append((e,) * d)
    return space.validate(ArchConfig(r=r, ks=tuple(ks), e=tuple(es)))


def sample_subnet(space: SearchSpace, phase: Phase, rng: random.Random, r: int) -> ArchConfig:
    """A random subnet of ``phase`` (uniform per open choice, as once-for-all/CompOFA sample)."""
    d_opts = _choices(phase, "d", space.conf.d_choices)
    e_opts = _choices(phase, "e", space.conf.e_choices)
    ks, es = [], []
    for s in range(space.n_stages):
        k_opts = _stage_kernels(space, phase, s)
        if phase.compound:
            d, e = rng.choice(_pairs(space))
            e_blocks = (e,) * d
        else:
            d = rng.choice(d_opts)
            e_blocks = tuple(rng.choice(e_opts) for _ in range(d))
        ks.append(tuple(rng.choice(k_opts) for _ in range(d)))
        es.append(e_blocks)
    return space.validate(ArchConfig(r=r, ks=tuple(ks), e=tuple(es)))


def step_subnets(space: SearchSpace, phase: Phase, seed: int, step: int, r: int) -> list[ArchConfig]:
    """The subnets of training step ``step``: the largest, then random ones.

    The generator is seeded by (seed, step) only, so every rank of a distributed run, and a resumed
    run, draws the same subnets.
    """
    rng = random.Random(f"latkit-subnets-{seed}-{step}")
    archs = [largest_subnet(space, phase, r)]
    archs += [sample_subnet(space, phase, rng, r) for _ in range(phase.subnets_per_step - 1)]
    return archs
