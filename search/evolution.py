"""Evolutionary search for spaces too large to enumerate (once-for-all: ~2e19 subnets per resolution).

once-for-all's ``EvolutionFinder``, made batched, bounded and reproducible:

1. the initial population is sampled uniformly from the space (``space.sample``) and kept only where
   the predicted latency is within the budget. Sampling is done in batches (one latency call per
   batch) and bounded by ``max_init_samples``; the min subnet of each resolution is offered too, so
   a tight but possible budget still starts. If nothing fits, the search stops with a
   ``BudgetError`` naming the fastest latency the space reaches (min subnets at every resolution and
   a few thousand random samples);
2. each generation keeps the most accurate ``parents_ratio`` of the population, then refills it
   with mutations of random parents (``space.mutate``: every gene resampled with probability
   ``mutate_prob``) and crossovers of two random parents (``space.crossover``). The operators are
   the space's own, so every child is a valid subnet. Children are proposed in batches and only the
   feasible ones (predicted latency within the budget) that are not yet in the population are kept;
   proposal rounds are bounded, and a shortfall is filled with parents;
3. every latency and accuracy value is computed once per arch (a cache by arch inside the run) and
   in one batched call per generation.

Randomness comes only from the ``random.Random`` passed in: a seed reproduces a run exactly.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from latkit.errors import LatkitError
from latkit.search.pareto import (
    Candidates,
    SearchResult,
    make_frontier,
    no_subnet_error,
    pareto_indices,
    picks_for,
)
from latkit.search.protocols import AccuracySource, LatencySource
from latkit.supernet.space import ArchConfig, SearchSpace, get_space


@dataclass(frozen=True)
class EvolutionSettings:
    """once-for-all's defaults (population 100, 25% parents, 50% mutations with p=0.1)."""

    population: int = 100
    parents_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    generations: int = 60
    patience: int | None = None  # stop after this many generations without improvement
    max_init_samples: int = 10_000
    max_fill_rounds: int = 8
    resolutions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.population < 4:
            raise LatkitError(f"population must be at least 4, got {self.population}")
        if not 0 < self.parents_ratio < 1 or not 0 <= self.mutation_ratio <= 1:
            raise LatkitError("parents_ratio must be in (0, 1) and mutation_ratio in [0, 1]")
        if self.parents_ratio + self.mutation_ratio > 1:
            raise LatkitError("parents_ratio + mutation_ratio must not exceed 1")
        if self.generations < 0:
            raise LatkitError(f"generations must be >= 0, got {self.generations}")


#: the fast default used by lat-search (tuned in benchmarks/search_speed.py)
FAST = EvolutionSettings()
#: once-for-all's long run, the reference the fast default is compared with
LONG = EvolutionSettings(generations=500)


@dataclass
class EvolutionResult:
    best: ArchConfig
    latency_ms: float
    top1: float
    history: list[float]
    evaluated: Candidates  # every feasible arch whose accuracy was computed
    latency_calls: int
    accuracy_calls: int
    seconds: float


@dataclass
class _Scorer:
    """Batched, cached calls to one latency source and one accuracy source."""

    latency: LatencySource
    accuracy: AccuracySource
    lat: dict[ArchConfig, float] = field(default_factory=dict)
    acc: dict[ArchConfig, float] = field(default_factory=dict)

    def latency_ms(self, archs: Sequence[ArchConfig]) -> list[float]:
        new = list(dict.fromkeys(a for a in archs if a not in self.lat))
        if new:
            self.lat.update(zip(new, self.latency.predict_ms(new).tolist()))
        return [self.lat[a] for a in archs]

    def top1(self, archs: Sequence[ArchConfig]) -> list[float]:
        new = list(dict.fromkeys(a for a in archs if a not in self.acc))
        if new:
            self.acc.update(zip(new, self.accuracy.top1(new).tolist()))
        return [self.acc[a] for a in archs]


def _resolutions(space: SearchSpace, settings: EvolutionSettings) -> list[int]:
    rs = list(settings.resolutions or space.resolutions)
    bad = [r for r in rs if r not in space.resolutions]
    if bad:
        raise LatkitError(f"resolutions {bad} are not in {space.name} {list(space.resolutions)}")
    return rs


def fastest_subnet(space: "str | SearchSpace", latency: LatencySource, rng: random.Random,
                   n_random: int = 2000, resolutions: Sequence[int] | None = None
                   ) -> tuple[float, ArchConfig]:
    """The fastest predicted subnet among the min subnet of each resolution and random samples."""
    sp = get_space(space)
    rs = list(resolutions or sp.resolutions)
    cands = [sp.min_arch(r) for r in rs] + [sp.sample(rng, rs) for _ in range(n_random)]
    lat = latency.predict_ms(cands)
    i = int(np.argmin(lat))
    return float(lat[i]), cands[i]


def _fill(n: int, propose: Callable[[], ArchConfig], scorer: _Scorer, budget_ms: float,
          taken: set[ArchConfig], max_rounds: int, max_total: int | None = None) -> list[ArchConfig]:
    """Up to ``n`` new feasible archs from ``propose``, in batches sized by the feasibility rate."""
    out: list[ArchConfig] = []
    rate, proposed, rounds = 0.5, 0, 0
    while len(out) < n and rounds < max_rounds:
        size = math.ceil((n - len(out)) / max(rate, 0.05) * 1.25) + 2
        if max_total is not None:
            size = min(size, max_total - proposed)
            if size <= 0:
                break
        batch = [propose() for _ in range(size)]
        proposed += size
        ok = 0
        for a, ms in zip(batch, scorer.latency_ms(batch)):
            if ms <= budget_ms:
                ok += 1
                if a not in taken and len(out) < n:
                    taken.add(a)
                    out.append(a)
        rate = 0.5 * rate + 0.5 * ok / size
        rounds += 1
    return out


def evolve(space: "str | SearchSpace", latency: LatencySource, accuracy: AccuracySource,
           budget_ms: float, rng: random.Random, settings: EvolutionSettings = FAST,
           scorer: _Scorer | None = None) -> EvolutionResult:
    """The most accurate subnet found with predicted latency within ``budget_ms``."""
    sp = get_space(space)
    t0 = time.perf_counter()
    s = settings
    rs = _resolutions(sp, s)
    sc = scorer or _Scorer(latency, accuracy)
    n_lat0, n_acc0 = len(sc.lat), len(sc.acc)
    taken: set[ArchConfig] = set()
    mins = [sp.min_arch(r) for r in rs]
    seeds = [a for a, ms in zip(mins, sc.latency_ms(mins)) if ms <= budget_ms]
    rounds = max(1, math.ceil(s.max_init_samples / s.population))
    pop = _fill(s.population, lambda: sp.sample(rng, rs), sc, budget_ms, taken,
                max_rounds=rounds, max_total=s.max_init_samples)
    for a in seeds:
        if len(pop) < s.population and a not in taken:
            taken.add(a)
            pop.append(a)
    if not pop:
        ms, arch = fastest_subnet(sp, latency, rng, resolutions=rs)
        raise no_subnet_error(sp.name, latency.device, budget_ms, ms, arch)

    n_parents = max(1, round(s.population * s.parents_ratio))
    n_mut = round(s.population * s.mutation_ratio)
    history: list[float] = []
    stale = 0
    for _gen in range(s.generations + 1):
        acc = sc.top1(pop)
        order = sorted(range(len(pop)), key=lambda i: -acc[i])
        history.append(acc[order[0]])
        if len(history) > 1 and history[-1] <= history[-2]:
            stale += 1
        else:
            stale = 0
        if _gen == s.generations or (s.patience is not None and stale >= s.patience):
            break
        parents = [pop[i] for i in order[:n_parents]]
        taken = set(parents)
        mut = _fill(n_mut, lambda: sp.mutate(rng.choice(parents), rng, s.mutate_prob, rs),
                    sc, budget_ms, taken, s.max_fill_rounds)
        n_cross = s.population - len(parents) - len(mut)
        cross = _fill(n_cross, lambda: sp.crossover(rng.choice(parents), rng.choice(parents), rng),
                      sc, budget_ms, taken, s.max_fill_rounds) if len(parents) > 1 else []
        pop = parents + mut + cross
    acc = sc.top1(pop)
    best_i = max(range(len(pop)), key=lambda i: acc[i])
    best = pop[best_i]
    feas = [a for a in sc.acc if sc.lat[a] <= budget_ms]
    evaluated = Candidates(latency.device, feas, np.array([sc.lat[a] for a in feas]),
                           np.array([sc.acc[a] for a in feas]))
    return EvolutionResult(best, sc.lat[best], acc[best_i], history, evaluated,
                           len(sc.lat) - n_lat0, len(sc.acc) - n_acc0, time.perf_counter() - t0)


def evolution_search(space: "str | SearchSpace", latency: Sequence[LatencySource],
                     accuracy: AccuracySource, budgets_ms: Sequence[float], rng: random.Random,
                     settings: EvolutionSettings = FAST,
                     log: Callable[[str], None] | None = None) -> SearchResult:
    """``evolve`` for every (device, budget); a frontier per device over everything scored.

    Each device keeps one cache across its budgets, and its frontier is built from every arch
    whose latency and accuracy were both computed, so a verification that rejects a pick can walk
    down to the next most accurate subnet predicted to be faster.
    """
    sp = get_space(space)
    t0 = time.perf_counter()
    devices = [src.device for src in latency]
    cands, frontiers, picks, runs = {}, {}, [], []
    for src in latency:
        sc = _Scorer(src, accuracy)
        for b in budgets_ms:
            r = evolve(sp, src, accuracy, float(b), random.Random(rng.getrandbits(64)), settings, sc)
            runs.append({"device": src.device, "budget_ms": float(b), "best": str(r.best),
                         "top1": r.top1, "latency_ms": r.latency_ms, "seconds": r.seconds,
                         "generations": len(r.history) - 1, "latency_calls": r.latency_calls,
                         "accuracy_calls": r.accuracy_calls})
            if log:
                log(f"{src.device} {b:g} ms: {r.best} top1 {r.top1:.2f} at {r.latency_ms:.2f} ms "
                    f"({r.seconds:.2f} s)")
        archs = list(sc.acc)
        c = Candidates(src.device, archs, np.array([sc.lat[a] for a in archs]),
                       np.array([sc.acc[a] for a in archs]))
        cands[src.device] = c
        frontiers[src.device] = make_frontier(src.device, c, pareto_indices(c.latency_ms, c.top1)[0])
        picks += picks_for(sp.name, frontiers[src.device], budgets_ms)
    return SearchResult(sp.name, "evolution", devices, [float(b) for b in budgets_ms], cands,
                        frontiers, picks, time.perf_counter() - t0,
                        info={"settings": _settings_dict(settings), "runs": runs})


def _settings_dict(s: EvolutionSettings) -> dict[str, Any]:
    d = asdict(s)
    d["resolutions"] = list(s.resolutions) if s.resolutions else None
    return d

