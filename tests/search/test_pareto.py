"""Frontier extraction and budget selection against brute force; the exhaustive search entry point."""

import numpy as np
import pytest

from latkit.errors import BudgetError
from latkit.search.pareto import best_positions, pareto_indices, pareto_search
from latkit.supernet.space import get_space


def brute_front(lat, acc):
    """Points that no other point beats: faster-or-equal and strictly more accurate, or equal
    accuracy and strictly faster; of exact duplicates keep one."""
    keep = []
    for i in range(len(lat)):
        dominated = False
        for j in range(len(lat)):
            if j == i:
                continue
            if (lat[j] <= lat[i] and acc[j] > acc[i]) or (lat[j] < lat[i] and acc[j] >= acc[i]):
                dominated = True
                break
        if not dominated:
            keep.append(i)
    # exact duplicates (same lat, same acc): only one survives
    seen, out = set(), []
    for i in sorted(keep, key=lambda i: (lat[i], -acc[i])):
        if (lat[i], acc[i]) not in seen:
            seen.add((lat[i], acc[i]))
            out.append(i)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 300
    lat = rng.integers(1, 40, n).astype(float)  # many ties on purpose
    acc = rng.integers(50, 80, n).astype(float)
    (idx,) = pareto_indices(lat, acc)
    want = brute_front(lat, acc)
    assert sorted(zip(lat[idx], acc[idx])) == sorted(zip(lat[want], acc[want]))
    assert np.all(np.diff(lat[idx]) > 0) and np.all(np.diff(acc[idx]) > 0)


def test_front_is_vectorised_over_devices():
    rng = np.random.default_rng(7)
    acc = rng.normal(70, 3, 500)
    lat = rng.gamma(3, 2, (3, 500))
    fronts = pareto_indices(lat, acc)
    for d in range(3):
        (one,) = pareto_indices(lat[d], acc)
        assert np.array_equal(fronts[d], one)


def test_best_under_budget_matches_brute_force():
    rng = np.random.default_rng(1)
    lat, acc = rng.uniform(1, 30, 400), rng.uniform(60, 80, 400)
    (idx,) = pareto_indices(lat, acc)
    budgets = [0.5, 1.0, 3.3, 10, 17.2, 29.9, 100]
    pos = best_positions(lat[idx], budgets)
    for b, p in zip(budgets, pos):
        ok = lat <= b
        if not ok.any():
            assert p == -1
        else:
            assert acc[idx][p] == acc[ok].max() and lat[idx][p] <= b


def test_pareto_search_compofa_picks_the_best(fakes):
    sp = get_space("compofa-w1.0")
    lat = [fakes.Latency(sp.name, "cpu"), fakes.Latency(sp.name, "gpu", scale=0.3)]
    acc = fakes.Accuracy(sp.name)
    budgets = [8.0, 12.0, 30.0]
    res = pareto_search(sp, lat, acc, budgets, resolutions=[128, 160, 192])
    assert res.info["candidates"] == 243 * 3 and res.search_seconds > 0
    archs = [a for r in (128, 160, 192) for a in sp.enumerate(r)]
    top1 = acc.top1(archs)
    for pick in res.picks:
        src = lat[0] if pick.device == "cpu" else lat[1]
        ms = src.predict_ms(archs)
        ok = ms <= pick.budget_ms
        assert pick.top1 == pytest.approx(top1[ok].max())
        assert pick.predicted_latency_ms <= pick.budget_ms
    assert [(p.device, p.budget_ms) for p in res.picks] == [
        (d, b) for d in ("cpu", "gpu") for b in budgets]
    f = res.frontiers["cpu"]
    assert np.all(np.diff(f.latency_ms) > 0) and np.all(np.diff(f.top1) > 0)


def test_accuracy_table_restricts_candidates(fakes):
    sp = get_space("compofa-w1.0")
    table = list(sp.enumerate(160))[:50]
    res = pareto_search(sp, [fakes.Latency(sp.name, "cpu")], fakes.Accuracy(sp.name, table), [100.0])
    assert res.info["candidates"] == 50
    assert res.picks[0].arch in table


def test_impossible_budget_names_the_fastest(fakes):
    sp = get_space("compofa-w1.0")
    src = fakes.Latency(sp.name, "cpu")
    with pytest.raises(BudgetError) as e:
        pareto_search(sp, [src], fakes.Accuracy(sp.name), [0.01], resolutions=[128, 224])
    msg = str(e.value)
    fastest = min(src.predict_ms([sp.min_arch(128)]))
    assert msg.startswith("no subnet of compofa-w1.0 meets 0.01 ms on cpu: the fastest predicted is")
    assert f"{fastest:.2f} ms ({sp.min_arch(128)})" in msg and "\n" not in msg
