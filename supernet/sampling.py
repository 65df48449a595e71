"""Which subnets a training step trains: the largest, then ones drawn from a space or a family.

``SubnetSampler(space, seed, sampling, latency)`` is what ``train`` calls once per step
(``sampler(phase, step, r)``); its draws depend only on (seed, step), so every rank and a resumed
run draw the same subnets, as ``schedules.step_subnets`` does.

- ``sampling="uniform"`` on a built-in space: ``schedules.step_subnets`` (uniform per open choice,
  once-for-all's and CompOFA's sampler), unchanged.
- ``sampling="uniform"`` on a family (``supernet.family``): uniform over the family's member
  structures, each projected onto what the phase has opened (a closed dimension takes the phase's
  value, as the phase's own sampler would), at the batch resolution.
- ``sampling="latency"``: per draw, a target device uniformly, a latency uniformly between the
  fastest and the slowest candidate on it at the batch resolution, and the candidate whose
  predicted latency is nearest. Uniform over the grammar over-weights mid-size subnets (a sum of
  many choices concentrates); uniform over latency trains every part of the frontier the targets
  will search. Candidates: the family's structures, every subnet the phase allows in an enumerable
  space (CompOFA: 243 per resolution), or a seeded pool of ``POOL`` draws of the phase's sampler.

The largest subnet the phase allows comes first in every step, as today. ``latency`` maps a device
to a function giving the predicted milliseconds of a list of archs: the supernet package sits
below the predictors, so the caller (``lat train``: ``latkit.cli``) loads them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latkit.errors import ArchError, TrainError
from latkit.fileio import sha256_file
from latkit.supernet.arch import ArchConfig
from latkit.supernet.family import FamilySpace
from latkit.supernet.schedules import (
    Phase,
    _choices,
    _pairs,
    _stage_kernels,
    largest_subnet,
    step_subnets,
)
from latkit.supernet.space import SearchSpace, get_space

SAMPLINGS = ("uniform", "latency")
#: candidates drawn per (phase, resolution) from a space too large to enumerate
POOL = 2048
#: above this many subnets per resolution a space's candidates are a pool, not an enumeration
ENUMERATE_MAX = 5000

LatencyFn = Callable[[Sequence[ArchConfig]], np.ndarray]


def project(space: SearchSpace, phase: Phase, arch: ArchConfig, r: int) -> ArchConfig | None:
    """``arch``'s structure at resolution ``r`` with every choice the phase has not opened set to
    the phase's value; None if that is not a subnet of ``space``."""
    c = space.conf
    d_opts = _choices(phase, "d", c.d_choices)
    e_opts = _choices(phase, "e", c.e_choices)
    ks, es = [], []
    for s in range(space.n_stages):
        k_opts = _stage_kernels(space, phase, s)
        kk, ee = arch.ks[s], arch.e[s]
        if phase.compound:
            pairs = _pairs(space)
            pair = (len(kk), ee[0]) if (len(kk), ee[0]) in pairs and len(set(ee)) == 1 else max(pairs)
            d, e_blocks = pair[0], (pair[1],) * pair[0]
        else:
            d = len(kk) if len(kk) in d_opts else max(d_opts)
            e_blocks = tuple(ee[i] if i < len(ee) and ee[i] in e_opts else max(e_opts) for i in range(d))
        ks.append(tuple(kk[i] if i < len(kk) and kk[i] in k_opts else max(k_opts) for i in range(d)))
        es.append(e_blocks)
    try:
        return space.validate(ArchConfig(r=r, ks=tuple(ks), e=tuple(es)))
    except ArchError:
        return None


def latency_provenance(specs: Sequence[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """Each (device, predictor spec) target and its file's sha256 (a ``lut:DIR`` has none)."""
    out = []
    for device, spec in specs or ():
        path = Path(spec)
        digest = sha256_file(path) if not spec.startswith("lut:") and path.is_file() else None
        out.append({"device": device, "spec": spec, "sha256": digest})
    return out


class SubnetSampler:
    """The subnets of each training step (see the module docstring)."""

    def __init__(self, space: str | SearchSpace, seed: int, sampling: str = "uniform",
                 latency: Mapping[str, LatencyFn] | None = None) -> None:
        given = get_space(space)
        if sampling not in SAMPLINGS:
            raise TrainError(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if sampling == "latency" and not latency:
            raise TrainError("--sampling latency needs the targets' latency: give --latency "
                             "DEV=PRED.json[,DEV=...] (lat fit) or DEV=lut:DIR")
        self.family = given if isinstance(given, FamilySpace) else None
        self.space = given.parent if self.family is not None else given  # the supernet's space
        self.seed = seed
        self.sampling = sampling
        self.latency = dict(latency or {})
        self._pools: dict[tuple[str, int], list[ArchConfig]] = {}
        self._lat: dict[tuple[str, int, str], np.ndarray] = {}

    # ---- candidates ----
    def pool(self, phase: Phase, r: int) -> list[ArchConfig]:
        """What a step of ``phase`` at resolution ``r`` draws from (cached)."""
        key = (phase.name, r)
        if key not in self._pools:
            sp = self.space
            if self.family is not None:
                archs = [project(sp, phase, a, r) for a in self.family.structures()]
            elif sp.num_subnets() <= ENUMERATE_MAX:
                archs = [a for a in sp.enumerate(r) if project(sp, phase, a, r) == a]
            else:
                from latkit.supernet.schedules import sample_subnet  # noqa: PLC0415 -- only for large spaces

                rng = random.Random(f"latkit-pool-{self.seed}-{phase.name}-{r}")
                archs = [sample_subnet(sp, phase, rng, r) for _ in range(POOL)]
            self._pools[key] = list(dict.fromkeys(a for a in archs if a is not None))
        return self._pools[key]

    def latency_ms(self, device: str, phase: Phase, r: int) -> np.ndarray:
        key = (phase.name, r, device)
        if key not in self._lat:
            pool = self.pool(phase, r)
            ms = np.asarray(self.latency[device](pool), dtype=np.float64).reshape(-1)
            if ms.shape[0] != len(pool) or not np.all(np.isfinite(ms)):
                raise TrainError(f"the latency predictor of {device} gave {ms.shape[0]} finite "
                                 f"values for {len(pool)} subnets")
            self._lat[key] = ms
        return self._lat[key]

    # ---- one step ----
    def __call__(self, phase: Phase, step: int, r: int) -> list[ArchConfig]:
        if self.family is None and self.sampling == "uniform":
            return step_subnets(self.space, phase, self.seed, step, r)
        rng = random.Random(f"latkit-subnets-{self.seed}-{step}")
        archs = [largest_subnet(self.space, phase, r)]
        n = phase.subnets_per_step - 1
        if n <= 0:
            return archs
        pool = self.pool(phase, r)
        if not pool:
            return archs + [archs[0]] * n
        if self.sampling == "uniform":
            return archs + [rng.choice(pool) for _ in range(n)]
        devices = sorted(self.latency)
        for _ in range(n):
            ms = self.latency_ms(rng.choice(devices), phase, r)
            target = rng.uniform(float(ms.min()), float(ms.max()))
            archs.append(pool[int(np.argmin(np.abs(ms - target)))])
        return archs

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about how its subnets were drawn."""
        return {"sampling": self.sampling, "space": self.space.name,
                "family": self.family.provenance() if self.family is not None else None,
                "latency_devices": sorted(self.latency)}
