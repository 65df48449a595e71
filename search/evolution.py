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
   mutations and crossovers are scored together (one latency call per round, the batch sized by
   the feasibility rate seen so far); proposal rounds are bounded, and a shortfall leaves the
   population smaller for that generation;
3. every latency and accuracy value is computed once per arch (a cache by arch inside the run) and
   in one batched call per generation.

Randomness comes only from the ``random.Random`` passed in: a seed reproduces a run exactly.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

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
    restarts: int = 1  # independent populations; the best of them wins
    init_pool: int = 0  # >population: start from the most accurate of this many random feasible
    stratify: bool = False  # restart i searches only the i-th band of the resolutions
    final_generations: int = 0  # then: one population of every band's best, over all resolutions
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
        if self.generations < 0 or self.restarts < 1:
            raise LatkitError(f"generations must be >= 0 and restarts >= 1, got "
                              f"{self.generations} and {self.restarts}")


#: the fast default used by lat-search (tuned in benchmarks/search_speed.py): four populations of
#: 100, one per quarter of the resolutions, 34 generations each, then 16 generations of one
#: population made of the best quarter of each (a band's population alone can stall)
FAST = EvolutionSettings(generations=34, restarts=4, stratify=True, final_generations=16)
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
            self.lat.update(zip(new, self.latency.predict_ms(new).tolist(), strict=True))
        return [self.lat[a] for a in archs]

    def top1(self, archs: Sequence[ArchConfig]) -> list[float]:
        new = list(dict.fromkeys(a for a in archs if a not in self.acc))
        if new:
            self.acc.update(zip(new, self.accuracy.top1(new).tolist(), strict=True))
        return [self.acc[a] for a in archs]


def _resolutions(space: SearchSpace, settings: EvolutionSettings) -> list[int]:
    rs = list(settings.resolutions or space.resolutions)
    bad = [r for r in rs if r not in space.resolutions]
    if bad:
        raise LatkitError(f"resolutions {bad} are not in {space.name} {list(space.resolutions)}")
    return rs


def fastest_subnet(space: str | SearchSpace, latency: LatencySource, rng: random.Random,
                   n_random: int = 2000, resolutions: Sequence[int] | None = None
                   ) -> tuple[float, ArchConfig]:
    """The fastest predicted subnet among the min subnet of each resolution and random samples."""
    sp = get_space(space)
    rs = list(resolutions or sp.resolutions)
    cands = [sp.min_arch(r) for r in rs] + [sp.sample(rng, rs) for _ in range(n_random)]
    lat = latency.predict_ms(cands)
    i = int(np.argmin(lat))
    return float(lat[i]), cands[i]


def _fill(wants: Sequence[tuple[int, Callable[[], ArchConfig]]], scorer: _Scorer,
          budget_ms: float, taken: set[ArchConfig], rates: list[float], max_rounds: int,
          max_total: int | None = None) -> list[list[ArchConfig]]:
    """For each (n, propose): up to n new feasible archs, all kinds scored in one batch per round.

    Batch sizes follow each kind's yield of new feasible archs (``rates``, updated in place and
    carried from one generation to the next), so one latency call per generation usually suffices.
    """
    outs: list[list[ArchConfig]] = [[] for _ in wants]
    proposed = 0
    for _ in range(max_rounds):
        sizes = [math.ceil((n - len(o)) / max(rate, 0.05) * 1.25) + 2 if len(o) < n else 0
                 for (n, _p), o, rate in zip(wants, outs, rates, strict=True)]
        if max_total is not None:
            room = max_total - proposed
            if sum(sizes) > room:
                sizes = [min(sz, max(0, room)) for sz in sizes]
        if sum(sizes) == 0:
            break
        batches = [[propose() for _ in range(size)] for (_n, propose), size in zip(wants, sizes, strict=True)]
        flat = [a for b in batches for a in b]
        proposed += len(flat)
        lat = iter(scorer.latency_ms(flat))
        for k, ((n, _p), batch) in enumerate(zip(wants, batches, strict=True)):
            new = 0  # feasible and not seen in this population: what a proposal is worth
            for a in batch:
                if next(lat) <= budget_ms and a not in taken:
                    taken.add(a)
                    new += 1
                    if len(outs[k]) < n:
                        outs[k].append(a)
            if batch:
                rates[k] = 0.5 * rates[k] + 0.5 * new / len(batch)
    return outs


def _bands(rs: list[int], n: int) -> list[list[int]]:
    """``rs`` cut into ``n`` contiguous bands, as even as possible (fewer if there are fewer)."""
    n = max(1, min(n, len(rs)))
    k, extra = divmod(len(rs), n)
    out, i = [], 0
    for j in range(n):
        size = k + (1 if j < extra else 0)
        out.append(rs[i:i + size])
        i += size
    return out


def _initial_population(sp: SearchSpace, rs: list[int], sc: _Scorer, budget_ms: float,
                        rng: random.Random, s: EvolutionSettings, seeds: list[ArchConfig]
                        ) -> list[ArchConfig]:
    """``population`` feasible archs: random ones (the most accurate of ``init_pool`` when set)."""
    want = max(s.population, s.init_pool)
    rounds = max(1, math.ceil(s.max_init_samples / s.population))
    (pop,) = _fill([(want, lambda: sp.sample(rng, rs))], sc, budget_ms, set(), [0.5],
                   max_rounds=rounds, max_total=max(s.max_init_samples, want))
    pop += [a for a in seeds if a not in set(pop)]
    if len(pop) > s.population:
        acc = sc.top1(pop)
        order = sorted(range(len(pop)), key=lambda i: -acc[i])
        pop = [pop[i] for i in order[:s.population]]
    return pop


def _run_population(sp: SearchSpace, rs: list[int], sc: _Scorer, budget_ms: float,
                    rng: random.Random, s: EvolutionSettings, pop: list[ArchConfig]
                    ) -> tuple[list[ArchConfig], list[float]]:
    """once-for-all's loop on one population; returns the last population and the best per step."""
    n_parents = max(1, round(s.population * s.parents_ratio))
    n_mut = round(s.population * s.mutation_ratio)
    n_cross = s.population - n_parents - n_mut
    rates = [0.5, 0.5]
    history: list[float] = []
    stale = 0
    for gen in range(s.generations + 1):
        acc = sc.top1(pop)
        order = sorted(range(len(pop)), key=lambda i: -acc[i])
        history.append(acc[order[0]])
        stale = stale + 1 if len(history) > 1 and history[-1] <= history[-2] else 0
        if gen == s.generations or (s.patience is not None and stale >= s.patience):
            break
        parents = [pop[i] for i in order[:n_parents]]
        mut, cross = _fill(
            [(n_mut, lambda ps=parents: sp.mutate(rng.choice(ps), rng, s.mutate_prob, rs)),
             (n_cross if len(parents) > 1 else 0,
              lambda ps=parents: sp.crossover(rng.choice(ps), rng.choice(ps), rng))],
            sc, budget_ms, set(parents), rates, s.max_fill_rounds)
        pop = parents + mut + cross
    return pop, history


def evolve(space: str | SearchSpace, latency: LatencySource, accuracy: AccuracySource,
           budget_ms: float, rng: random.Random, settings: EvolutionSettings = FAST,
           scorer: _Scorer | None = None) -> EvolutionResult:
    """The most accurate subnet found with predicted latency within ``budget_ms``.

    ``settings.restarts`` independent populations are evolved one after the other (sharing the
    prediction cache); the result is the best arch any of them reached, ``history`` the best so
    far after every generation of every population, in order.
    """
    sp = get_space(space)
    t0 = time.perf_counter()
    s = settings
    rs = _resolutions(sp, s)
    sc = scorer or _Scorer(latency, accuracy)
    n_lat0, n_acc0 = len(sc.lat), len(sc.acc)
    mins = [sp.min_arch(r) for r in rs]
    seeds = [a for a, ms in zip(mins, sc.latency_ms(mins), strict=True) if ms <= budget_ms]
    best: ArchConfig | None = None
    history: list[float] = []
    bands = _bands(rs, s.restarts) if s.stratify else [rs] * s.restarts
    finals: list[ArchConfig] = []

    def take(pop: list[ArchConfig], hist: list[float]) -> list[int]:
        """Keep a finished population's best and its history; its indices, most accurate first."""
        nonlocal best, history
        acc = sc.top1(pop)
        order = sorted(range(len(pop)), key=lambda i: -acc[i])
        if best is None or acc[order[0]] > sc.acc[best]:
            best = pop[order[0]]
        floor = history[-1] if history else -math.inf
        history += [max(h, floor) for h in hist]
        return order

    for band in bands:
        pop = _initial_population(sp, band, sc, budget_ms, rng, s,
                                  [a for a in seeds if a.r in band])
        if not pop:
            if s.stratify:
                continue  # nothing fits at these resolutions: another band may
            ms, arch = fastest_subnet(sp, latency, rng, resolutions=rs)
            raise no_subnet_error(sp.name, latency.device, budget_ms, ms, arch)
        pop, hist = _run_population(sp, band, sc, budget_ms, rng, s, pop)
        order = take(pop, hist)
        finals += [pop[i] for i in order[:max(1, s.population // len(bands))]]
    if s.final_generations and len(bands) > 1 and finals:
        pop, hist = _run_population(sp, rs, sc, budget_ms, rng,
                                    replace(s, generations=s.final_generations),
                                    list(dict.fromkeys(finals)))
        take(pop, hist)
    if best is None:
        ms, arch = fastest_subnet(sp, latency, rng, resolutions=rs)
        raise no_subnet_error(sp.name, latency.device, budget_ms, ms, arch)
    feas = [a for a in sc.acc if sc.lat[a] <= budget_ms]
    evaluated = Candidates(latency.device, feas, np.array([sc.lat[a] for a in feas]),
                           np.array([sc.acc[a] for a in feas]))
    return EvolutionResult(best, sc.lat[best], sc.acc[best], history, evaluated,
                           len(sc.lat) - n_lat0, len(sc.acc) - n_acc0, time.perf_counter() - t0)


def evolution_search(space: str | SearchSpace, latency: Sequence[LatencySource],
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

