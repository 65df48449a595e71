"""Evolutionary search for spaces too large to enumerate (once-for-all: ~2e19 subnets per resolution).

once-for-all's ``EvolutionFinder``, made batched, bounded and reproducible:

1. the initial population is sampled uniformly from the space and kept only where the predicted
   latency is within the budget. Sampling is done in batches (one latency call per batch) and
   bounded by ``max_init_samples``; the min subnet of each resolution is offered too, so a tight
   but possible budget still starts. If nothing fits, the search stops with a ``BudgetError``
   naming the fastest latency the space reaches (min subnets at every resolution and a few
   thousand random samples);
2. each generation keeps the most accurate ``parents_ratio`` of the population, then refills it
   with mutations of random parents (every gene resampled with probability ``mutate_prob``) and
   crossovers of two random parents. Children are proposed in batches and only the feasible ones
   (predicted latency within the budget) that are not yet in the population are kept; mutations
   and crossovers are scored together (one latency call per round, the batch sized by the
   feasibility rate seen so far); proposal rounds are bounded, and a shortfall leaves the
   population smaller for that generation;
3. the population is an integer gene array (``latkit.search.genes``): a batch of children is a few
   numpy operations, drawn from exactly the distributions of the space's own ``sample``,
   ``mutate`` and ``crossover``, valid by construction. Every latency and accuracy value is
   computed once per arch (a cache keyed by the arch's canonical genes, per device) and only new
   archs are turned into ``ArchConfig``s and predicted;
4. several budgets of one device are searched together (``evolve_budgets``): they share the
   initial samples of each resolution band and the cache, and their populations advance in
   lockstep, so that one latency call serves a proposal round of all of them and one accuracy
   call a generation of all of them.

Randomness comes only from the ``random.Random`` passed in (it seeds one numpy generator): a seed
reproduces a run exactly.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from latkit.errors import BudgetError, LatkitError
from latkit.search.genes import Genes, GeneSpace, KeyedArchs
from latkit.search.pareto import (
    Budgets,
    Candidates,
    Frontier,
    Infeasible,
    SearchResult,
    all_budgets,
    device_budgets,
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
    """Batched latency and accuracy calls, cached by arch (the canonical gene key, ``keys``).

    One per device, shared by every budget and population of a search: an arch is decoded and
    predicted once, whichever population proposes it again.
    """

    latency: LatencySource
    accuracy: AccuracySource
    genes: GeneSpace
    arch: dict[bytes, ArchConfig] = field(default_factory=dict)
    lat: dict[bytes, float] = field(default_factory=dict)
    acc: dict[bytes, float] = field(default_factory=dict)

    def latency_ms(self, g: Genes, keys: Sequence[bytes]) -> np.ndarray:
        lat = self.lat
        new = {k: i for i, k in enumerate(keys) if k not in lat}  # a repeated key: any of its rows
        if new:
            rows = list(new.values())
            by_genes = getattr(self.latency, "predict_genes_ms", None)
            if by_genes is not None:  # a table: sums straight from the genes, no ArchConfig
                values = _as_floats(by_genes(g.take(rows)), len(rows))
            else:
                archs = self.genes.decode(g, rows)
                values = _as_floats(self.latency.predict_ms(archs), len(archs))
                self.arch.update(zip(new, archs, strict=True))
            lat.update(zip(new, values, strict=True))
        return np.fromiter(map(lat.__getitem__, keys), dtype=np.float64, count=len(keys))

    def top1(self, g: Genes, keys: Sequence[bytes]) -> np.ndarray:
        """Accuracy of the rows of ``g`` (whose keys are ``keys``)."""
        acc = self.acc
        new = {k: i for i, k in enumerate(keys) if k not in acc}
        if new:
            by_genes = getattr(self.accuracy, "top1_genes", None)
            if by_genes is not None:  # a source that reads genes: no ArchConfig
                values = _as_floats(by_genes(g.take(list(new.values()))), len(new))
            else:
                missing = [i for k, i in new.items() if k not in self.arch]
                if missing:
                    self.arch.update(zip((keys[i] for i in missing), self.genes.decode(g, missing),
                                         strict=True))
                values = _as_floats(self.accuracy.top1([self.arch[k] for k in new]), len(new))
            acc.update(zip(new, values, strict=True))
        return np.fromiter(map(acc.__getitem__, keys), dtype=np.float64, count=len(keys))


def _as_floats(values: Any, n: int) -> list[float]:
    out = np.asarray(values, dtype=np.float64).reshape(-1).tolist()
    if len(out) != n:
        raise LatkitError(f"a prediction source returned {len(out)} values for {n} subnets")
    return out


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


def _batch_size(short: int, rate: float) -> int:
    """Proposals for ``short`` more feasible new archs at a yield of ``rate``."""
    return math.ceil(short / max(rate, 0.05) * 1.25) + 2 if short > 0 else 0


@dataclass
class _Pop:
    """One population: its budget, the resolutions it mutates within, genes, keys and accuracy."""

    budget_ms: float
    rs: list[int]
    genes: Genes
    keys: list[bytes]
    acc: np.ndarray
    history: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=lambda: [0.5, 0.5])
    generations: int = 0
    stale: int = 0
    done: bool = False

    def order(self) -> np.ndarray:
        return np.argsort(-self.acc, kind="stable")  # most accurate first, ties in order


def _initial(sc: _Scorer, rng: np.random.Generator, s: EvolutionSettings, band: list[int],
             budgets: Sequence[float], seeds: Genes) -> list[tuple[Genes, list[bytes]]]:
    """Per budget, up to max(population, init_pool) feasible random archs at ``band``.

    One pool of samples serves every budget (a sample fits all budgets above its latency): each
    round draws as many as the neediest budget wants, scores them in one latency call, and every
    budget takes the feasible ones it lacks. At most ``max_init_samples`` samples per band. The
    min subnets (``seeds``) that fit are added; above ``population`` the most accurate are kept
    (``_trim``). With ``stratify``, a budget that none of the band's min subnets meets gets no
    samples there (the band's other subnets are slower; the final population over every
    resolution can still reach it), instead of thousands of samples that all miss.
    """
    want = max(s.population, s.init_pool)
    seed_keys = sc.genes.keys(seeds)
    seed_lat = sc.latency_ms(seeds, seed_keys)
    hopeless = [s.stratify and not bool(np.any(seed_lat <= b)) for b in budgets]
    got: list[list[tuple[Genes, int]]] = [[] for _ in budgets]
    seen: list[set[bytes]] = [set() for _ in budgets]
    rates = [0.5] * len(budgets)
    left = max(s.max_init_samples, want)
    for _ in range(max(1, math.ceil(s.max_init_samples / s.population))):
        size = min(left, max((_batch_size(want - len(o), r) if not h else 0)
                             for o, r, h in zip(got, rates, hopeless, strict=True)))
        if size <= 0:
            break
        g = sc.genes.sample(rng, size, band)
        left -= size
        keys = sc.genes.keys(g)
        lat = sc.latency_ms(g, keys)
        for j, b in enumerate(budgets):
            if len(got[j]) >= want or hopeless[j]:
                continue
            new = 0
            for i in np.flatnonzero(lat <= b).tolist():
                if keys[i] not in seen[j]:
                    seen[j].add(keys[i])
                    new += 1
                    if len(got[j]) < want:
                        got[j].append((g, i))
            rates[j] = 0.5 * rates[j] + 0.5 * new / size
    out = []
    for j, b in enumerate(budgets):
        rows = [(g, i) for g, i in got[j]]
        rows += [(seeds, i) for i in range(len(seeds))
                 if seed_lat[i] <= b and seed_keys[i] not in seen[j]]
        g = _stack(sc.genes, rows)
        out.append((g, sc.genes.keys(g)))
    return out


def _stack(gs: GeneSpace, rows: Sequence[tuple[Genes, int]]) -> Genes:
    """Rows picked, in order, from one or more gene batches, as one batch."""
    offsets: dict[int, int] = {}
    parts: list[Genes] = []
    idx = []
    n = 0
    for g, i in rows:
        off = offsets.get(id(g))
        if off is None:
            off = offsets[id(g)] = n
            parts.append(g)
            n += len(g)
        idx.append(off + i)
    return Genes.concat(parts).take(idx) if parts else gs.empty()


def _generation(pops: Sequence[_Pop], sc: _Scorer, rng: np.random.Generator,
                s: EvolutionSettings) -> None:
    """One generation of every population that is not done, scored together.

    Each keeps its ``parents_ratio`` most accurate and refills with mutations of random parents and
    crossovers of two random parents, proposed in batches sized by each kind's yield of feasible
    new archs (``rates``, carried over generations): every population's proposals of a round go to
    one latency call, and all the new children of the generation to one accuracy call.
    """
    n_parents = max(1, round(s.population * s.parents_ratio))
    n_mut = round(s.population * s.mutation_ratio)
    n_cross = s.population - n_parents - n_mut
    gs = sc.genes
    live, parents, taken, outs, wants = [], [], [], [], []
    for p in pops:
        if p.done:
            continue
        par = p.order()[:n_parents]
        live.append(p)
        parents.append(par)
        taken.append({p.keys[i] for i in par.tolist()})
        outs.append(([], []))
        wants.append((n_mut, n_cross if len(par) > 1 else 0))
    keys_of: dict[int, list[bytes]] = {}  # the keys of each round's proposals (by batch id)
    rounds: list[Genes] = []  # kept alive while their ids key keys_of
    for _ in range(s.max_fill_rounds):
        batches = []
        for j, p in enumerate(live):
            pg, npar = p.genes.take(parents[j]), len(parents[j])
            for kind in (0, 1):
                size = _batch_size(wants[j][kind] - len(outs[j][kind]), p.rates[kind])
                if not size:
                    continue
                if kind == 0:
                    g = gs.mutate(rng, pg.take(rng.integers(npar, size=size)), s.mutate_prob, p.rs)
                else:
                    g = gs.crossover(rng, pg.take(rng.integers(npar, size=size)),
                                     pg.take(rng.integers(npar, size=size)))
                batches.append((j, kind, g))
        if not batches:
            break
        flat = Genes.concat([g for _, _, g in batches])
        keys = gs.keys(flat)
        keys_of[id(flat)] = keys
        rounds.append(flat)
        lat = sc.latency_ms(flat, keys)
        at = 0
        for j, kind, g in batches:
            n, p, out, seen = len(g), live[j], outs[j][kind], taken[j]
            ok = np.flatnonzero(lat[at:at + n] <= p.budget_ms).tolist()
            new = 0
            for i in ok:
                key = keys[at + i]
                if key not in seen:
                    seen.add(key)
                    new += 1
                    if len(out) < wants[j][kind]:
                        out.append((flat, at + i))
            p.rates[kind] = 0.5 * p.rates[kind] + 0.5 * new / n
            at += n
    for j, p in enumerate(live):
        par = parents[j].tolist()
        kids = outs[j][0] + outs[j][1]
        p.keys = [p.keys[i] for i in par] + [keys_of[id(g)][i] for g, i in kids]
        p.genes = _stack(gs, [(p.genes, i) for i in par] + kids)
    _score(live, sc)


def _score(pops: Sequence[_Pop], sc: _Scorer) -> None:
    """Every population's accuracy, in one call."""
    if not pops:
        return
    g = pops[0].genes if len(pops) == 1 else Genes.concat([p.genes for p in pops])
    acc = sc.top1(g, [k for p in pops for k in p.keys])
    at = 0
    for p in pops:
        p.acc = acc[at:at + len(p.keys)]
        at += len(p.keys)


def _step_histories(pops: Sequence[_Pop], s: EvolutionSettings) -> None:
    """Record each live population's best and stop it at its last generation or on patience."""
    for p in pops:
        if p.done:
            continue
        p.history.append(float(p.acc[p.order()[0]]))
        h = p.history
        p.stale = p.stale + 1 if len(h) > 1 and h[-1] <= h[-2] else 0
        if len(h) - 1 >= p.generations or (s.patience is not None and p.stale >= s.patience):
            p.done = True


def _evolve_all(pops: list[_Pop], sc: _Scorer, rng: np.random.Generator,
                s: EvolutionSettings) -> None:
    """once-for-all's loop, on all populations in lockstep (one batch per step for all)."""
    _score(pops, sc)
    _step_histories(pops, s)
    while not all(p.done for p in pops):
        _generation(pops, sc, rng, s)
        _step_histories(pops, s)


def _trim(pop: _Pop, n: int) -> None:
    if len(pop.keys) > n:
        keep = pop.order()[:n]
        pop.genes, pop.acc = pop.genes.take(keep), pop.acc[keep]
        pop.keys = [pop.keys[i] for i in keep.tolist()]


def evolve_budgets(space: str | SearchSpace, latency: LatencySource, accuracy: AccuracySource,
                   budgets_ms: Sequence[float], rng: random.Random,
                   settings: EvolutionSettings = FAST, scorer: _Scorer | None = None
                   ) -> list[EvolutionResult]:
    """The most accurate subnet found within each budget of ``budgets_ms``, searched together.

    Every (budget, resolution band) has its own population, but they share one pool of initial
    samples per band, one prediction cache, and are evolved in lockstep, so that each proposal
    round of all of them is one latency call and each generation one accuracy call. Per budget:
    ``settings.restarts`` populations (one per band of the resolutions when ``stratify``), then,
    with ``final_generations``, one population of every band's best over all resolutions; the
    result is the best arch any of them reached, ``history`` the best so far after every
    generation of every population, band after band. A seed reproduces a run exactly (for the
    same list of budgets).
    """
    sp = get_space(space)
    t0 = time.perf_counter()
    s = settings
    rs = _resolutions(sp, s)
    budgets = [float(b) for b in budgets_ms]
    nrng = np.random.default_rng(rng.getrandbits(64))
    sc = scorer or _Scorer(latency, accuracy, GeneSpace(sp))
    n_lat0, n_acc0 = len(sc.lat), len(sc.acc)
    bands = _bands(rs, s.restarts) if s.stratify else [rs] * s.restarts

    def fail(b: float) -> BudgetError:
        ms, arch = fastest_subnet(sp, latency, random.Random(int(nrng.integers(2**62))),
                                  resolutions=rs)
        return no_subnet_error(sp.name, latency.device, b, ms, arch)

    per_band: list[list[_Pop | None]] = []
    for band in bands:
        seeds = sc.genes.encode([sp.min_arch(r) for r in band])
        starts = _initial(sc, nrng, s, band, budgets, seeds)
        row: list[_Pop | None] = []
        for b, (g, _) in zip(budgets, starts, strict=True):
            if len(g) == 0:
                if not s.stratify:
                    raise fail(b)
                row.append(None)  # nothing fits at these resolutions: another band may
                continue
            row.append(_Pop(b, band, g, sc.genes.keys(g), np.zeros(len(g)), generations=s.generations))
        per_band.append(row)
    live = [p for row in per_band for p in row if p is not None]
    _score(live, sc)
    for p in live:
        _trim(p, s.population)
    _evolve_all(live, sc, nrng, s)

    results = []
    finals: list[_Pop | None] = []
    for j, b in enumerate(budgets):
        pops = [row[j] for row in per_band if row[j] is not None]
        if not pops:
            raise fail(b)
        if s.final_generations and len(bands) > 1:
            rows, seen = [], set()
            for p in pops:
                for i in p.order()[:max(1, s.population // len(bands))].tolist():
                    if p.keys[i] not in seen:
                        seen.add(p.keys[i])
                        rows.append((p.genes, i))
            g = _stack(sc.genes, rows)
            finals.append(_Pop(b, rs, g, sc.genes.keys(g), np.zeros(len(g)),
                               generations=s.final_generations))
        else:
            finals.append(None)
    last = [p for p in finals if p is not None]
    if last:
        _evolve_all(last, sc, nrng, s)
    seconds = time.perf_counter() - t0
    for j, b in enumerate(budgets):
        pops = [row[j] for row in per_band if row[j] is not None]
        fin = finals[j]
        if fin is not None:
            pops.append(fin)
        best_key, best_acc, history = None, -math.inf, []
        for p in pops:
            i = int(p.order()[0])
            if best_key is None or p.acc[i] > best_acc:
                best_key, best_acc = p.keys[i], float(p.acc[i])
            floor = history[-1] if history else -math.inf
            history += [max(h, floor) for h in p.history]
        assert best_key is not None
        feas = [k for k in sc.acc if sc.lat[k] <= b]
        evaluated = Candidates(latency.device, KeyedArchs(sc.genes, feas, sc.arch),
                               np.array([sc.lat[k] for k in feas]),
                               np.array([sc.acc[k] for k in feas]))
        results.append(EvolutionResult(evaluated.archs[feas.index(best_key)], sc.lat[best_key],
                                       best_acc, history,
                                       evaluated, len(sc.lat) - n_lat0, len(sc.acc) - n_acc0,
                                       seconds))
    return results


def evolve(space: str | SearchSpace, latency: LatencySource, accuracy: AccuracySource,
           budget_ms: float, rng: random.Random, settings: EvolutionSettings = FAST,
           scorer: _Scorer | None = None) -> EvolutionResult:
    """The most accurate subnet found with predicted latency within ``budget_ms``
    (``evolve_budgets`` for one budget)."""
    return evolve_budgets(space, latency, accuracy, [budget_ms], rng, settings, scorer)[0]


def evolution_search(space: str | SearchSpace, latency: Sequence[LatencySource],
                     accuracy: AccuracySource, budgets_ms: Budgets, rng: random.Random,
                     settings: EvolutionSettings = FAST,
                     log: Callable[[str], None] | None = None, strict: bool = True) -> SearchResult:
    """``evolve`` for every (device, budget); a frontier per device over everything scored.

    ``budgets_ms``: one list for every device or a mapping device -> its list. With
    ``strict=False`` a budget below the device's fastest subnet (``fastest_subnet``, seeded by the
    device name) goes to ``result.infeasible`` instead of raising, and the rest are searched.

    Each device keeps one cache across its budgets, and its frontier is built from every arch
    whose latency and accuracy were both computed, so a verification that rejects a pick can walk
    down to the next most accurate subnet predicted to be faster.
    """
    sp = get_space(space)
    t0 = time.perf_counter()
    devices = [src.device for src in latency]
    per_device = device_budgets(budgets_ms, devices)
    infeasible: list[Infeasible] = []
    cands, frontiers, picks, runs = {}, {}, [], []
    for src in latency:
        budgets_ms = per_device[src.device]
        if not strict:
            ms, arch = fastest_subnet(sp, src, random.Random(f"latkit-fastest-{src.device}"),
                                      n_random=200, resolutions=_resolutions(sp, settings))
            infeasible += [Infeasible(src.device, b, ms, arch) for b in budgets_ms if b < ms]
            budgets_ms = [b for b in budgets_ms if b >= ms]
            if not budgets_ms:
                cands[src.device] = Candidates(src.device, [], np.zeros(0), np.zeros(0))
                frontiers[src.device] = Frontier(src.device, (), np.zeros(0), np.zeros(0))
                continue
        sc = _Scorer(src, accuracy, GeneSpace(sp))
        for b, r in zip(budgets_ms, evolve_budgets(sp, src, accuracy, budgets_ms,
                                                   random.Random(rng.getrandbits(64)), settings, sc),
                        strict=True):
            runs.append({"device": src.device, "budget_ms": float(b), "best": str(r.best),
                         "top1": r.top1, "latency_ms": r.latency_ms, "seconds": r.seconds,
                         "budgets_together": len(budgets_ms),
                         "generations": len(r.history) - 1, "latency_calls": r.latency_calls,
                         "accuracy_calls": r.accuracy_calls})
            if log:
                log(f"{src.device} {b:g} ms: {r.best} top1 {r.top1:.2f} at {r.latency_ms:.2f} ms")
        if log:
            log(f"{src.device}: {len(budgets_ms)} budget(s) searched together in "
                f"{runs[-1]['seconds']:.2f} s")
        keys = list(sc.acc)
        c = Candidates(src.device, KeyedArchs(sc.genes, keys, sc.arch),
                       np.array([sc.lat[k] for k in keys]),
                       np.array([sc.acc[k] for k in keys]))
        cands[src.device] = c
        frontiers[src.device] = make_frontier(src.device, c, pareto_indices(c.latency_ms, c.top1)[0])
        picks += picks_for(sp.name, frontiers[src.device], budgets_ms)
    return SearchResult(sp.name, "evolution", devices, all_budgets(per_device), cands,
                        frontiers, picks, time.perf_counter() - t0,
                        info={"settings": _settings_dict(settings), "runs": runs},
                        infeasible=infeasible, budgets_by_device=per_device)


def _settings_dict(s: EvolutionSettings) -> dict[str, Any]:
    d = asdict(s)
    d["resolutions"] = list(s.resolutions) if s.resolutions else None
    return d

