"""Evolution: constraints, reproducibility, quality on a problem whose optimum is known, bounds."""

import random

import numpy as np
import pytest

from latkit.errors import BudgetError
from latkit.search.evolution import EvolutionSettings, evolution_search, evolve, fastest_subnet
from latkit.search.pareto import pareto_search
from latkit.supernet.space import get_space

SMALL = EvolutionSettings(population=40, generations=25)


def test_respects_budget_and_space(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    lat, acc = fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name)
    r = evolve(sp, lat, acc, 15.0, random.Random(0), SMALL)
    assert r.latency_ms <= 15.0 and sp.validate(r.best) == r.best
    assert np.all(r.evaluated.latency_ms <= 15.0)
    for a in r.evaluated.archs:
        sp.validate(a)
    assert r.history == sorted(r.history)  # elitism: the best never gets worse


def test_restricted_resolutions_are_kept(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    s = EvolutionSettings(population=20, generations=10, resolutions=(160, 176))
    r = evolve(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name), 40.0, random.Random(3), s)
    assert {a.r for a in r.evaluated.archs} <= {160, 176}


def test_seeded_runs_are_identical(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    runs = [evolve(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name), 12.0,
                   random.Random(42), SMALL) for _ in range(2)]
    assert runs[0].best == runs[1].best and runs[0].history == runs[1].history
    other = evolve(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name), 12.0,
                   random.Random(43), SMALL)
    assert other.history != runs[0].history


def test_finds_near_optimum_of_enumerable_space(fakes):
    """On CompOFA (729 subnets at 3 resolutions) the exhaustive optimum is known."""
    sp = get_space("compofa-w1.0")
    rs = (128, 160, 192)
    lat, acc = fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name)
    exact = pareto_search(sp, [lat], acc, [8.0, 14.0], resolutions=rs)
    s = EvolutionSettings(population=40, generations=30, resolutions=rs)
    for pick in exact.picks:
        r = evolve(sp, lat, acc, pick.budget_ms, random.Random(0), s)
        assert r.latency_ms <= pick.budget_ms
        assert r.top1 >= pick.top1 - 0.3, (r.top1, pick.top1)


def test_impossible_budget_is_a_clear_bounded_error(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    lat = fakes.Latency(sp.name, "cpu")
    s = EvolutionSettings(population=50, max_init_samples=2000)
    with pytest.raises(BudgetError) as e:
        evolve(sp, lat, fakes.Accuracy(sp.name), 1.0, random.Random(0), s)
    msg = str(e.value)
    assert msg.startswith("no subnet of ofa-mbv3-w1.0 meets 1 ms on cpu: the fastest predicted is ")
    assert f"({sp.min_arch(128)})" in msg and "\n" not in msg
    # bounded: the initial samples, the min subnets and the fastest-subnet scan, nothing more
    assert lat.archs_seen <= 2000 + 2 * 25 + 2000 + 10


def test_tight_budget_starts_from_the_min_subnets(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    lat = fakes.Latency(sp.name, "cpu")
    fastest, arch = fastest_subnet(sp, lat, random.Random(0), n_random=200)
    r = evolve(sp, lat, fakes.Accuracy(sp.name), fastest * 1.001, random.Random(0),
               EvolutionSettings(population=20, generations=5, max_init_samples=200))
    assert r.latency_ms <= fastest * 1.001


def test_evolution_search_multi_device(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    lat = [fakes.Latency(sp.name, "cpu"), fakes.Latency(sp.name, "gpu", scale=0.2)]
    res = evolution_search(sp, lat, fakes.Accuracy(sp.name), [10.0, 20.0], random.Random(0), SMALL)
    assert [(p.device, p.budget_ms) for p in res.picks] == [
        ("cpu", 10.0), ("cpu", 20.0), ("gpu", 10.0), ("gpu", 20.0)]
    for p in res.picks:
        f = res.frontiers[p.device]
        assert p.predicted_latency_ms <= p.budget_ms and f.archs[p.frontier_pos] == p.arch
        # the pick is at least as good as the evolution run's own best for that budget
        run = next(r for r in res.info["runs"] if r["device"] == p.device and r["budget_ms"] == p.budget_ms)
        assert p.top1 >= run["top1"]
    assert res.picks[2].top1 >= res.picks[0].top1  # a faster device affords more accuracy


def test_stratified_restarts_cover_every_resolution_band(fakes):
    from latkit.search.evolution import _bands

    rs = list(get_space("ofa-mbv3-w1.0").resolutions)
    bands = _bands(rs, 4)
    assert [r for b in bands for r in b] == rs and max(map(len, bands)) - min(map(len, bands)) <= 1
    assert _bands(rs[:2], 5) == [[rs[0]], [rs[1]]]
    sp = get_space("ofa-mbv3-w1.0")
    s = EvolutionSettings(population=20, generations=5, restarts=4, stratify=True)
    r = evolve(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name), 30.0, random.Random(0), s)
    seen = {a.r for a in r.evaluated.archs}
    assert all(seen & set(b) for b in bands)
    assert r.history == sorted(r.history) and len(r.history) == 4 * 6
    assert r.top1 == max(r.evaluated.top1[r.evaluated.latency_ms <= 30.0])


def test_final_population_joins_the_bands_best(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    s = EvolutionSettings(population=20, generations=4, restarts=4, stratify=True, final_generations=3)
    r = evolve(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name), 30.0, random.Random(0), s)
    assert len(r.history) == 4 * 5 + 4 and r.history == sorted(r.history)
    assert r.top1 == max(r.evaluated.top1[r.evaluated.latency_ms <= 30.0])
    assert r.latency_ms <= 30.0


def test_budgets_searched_together_match_their_own_constraints_and_share_work(fakes):
    from latkit.search.evolution import evolve_budgets

    sp = get_space("ofa-mbv3-w1.0")
    lat = fakes.Latency(sp.name, "cpu")
    rs = evolve_budgets(sp, lat, fakes.Accuracy(sp.name), [12.0, 20.0, 30.0], random.Random(0), SMALL)
    assert [r.latency_ms <= b for r, b in zip(rs, [12.0, 20.0, 30.0])] == [True] * 3
    assert rs[0].top1 < rs[1].top1 < rs[2].top1
    joint_calls = lat.calls
    alone = fakes.Latency(sp.name, "cpu")
    for b in (12.0, 20.0, 30.0):
        evolve(sp, alone, fakes.Accuracy(sp.name), b, random.Random(0), SMALL)
    assert joint_calls < alone.calls / 2  # one batch per round for all budgets
    again = evolve_budgets(sp, fakes.Latency(sp.name, "cpu"), fakes.Accuracy(sp.name),
                           [12.0, 20.0, 30.0], random.Random(0), SMALL)
    assert [r.best for r in again] == [r.best for r in rs]


def test_stratified_bands_out_of_reach_are_not_sampled(fakes):
    sp = get_space("ofa-mbv3-w1.0")
    lat = fakes.Latency(sp.name, "cpu")
    mins = lat.predict_ms([sp.min_arch(r) for r in sp.resolutions])
    budget = float(mins[5]) * 1.01  # only the lowest band's min subnets fit
    s = EvolutionSettings(population=20, generations=3, restarts=4, stratify=True,
                          max_init_samples=3000)
    lat.archs_seen = 0
    r = evolve(sp, lat, fakes.Accuracy(sp.name), budget, random.Random(0), s)
    assert r.latency_ms <= budget
    assert lat.archs_seen < 3000 + 2000  # not 4 x 3,000 initial samples
