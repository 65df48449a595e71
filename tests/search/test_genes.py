"""Gene arrays: valid archs, canonical keys, the space's own distributions, exact table sums."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from latkit.errors import LookupMiss
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.search.genes import GeneSpace
from latkit.search.protocols import TableLatency
from latkit.supernet.space import get_space

NOTE10 = Path(__file__).resolve().parents[3] / "shared" / "data" / "ofa_note10_lut"


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "compofa-w1.0"])
def test_rows_are_valid_archs_and_keys_are_canonical(name):
    sp = get_space(name)
    gs, rng = GeneSpace(sp), np.random.default_rng(0)
    rs = [128, 160, 224]
    g = gs.sample(rng, 500, rs)
    kids = gs.mutate(rng, g, 0.3, rs)
    both = gs.crossover(rng, g, kids)
    for batch in (g, kids, both):
        archs = gs.decode(batch)
        assert all(sp.validate(a) == a and a.r in rs for a in archs)
        again = gs.encode(archs)
        assert gs.decode(again) == archs and gs.keys(again) == gs.keys(batch)
        keys = gs.keys(batch)
        assert len(set(keys)) == len(set(archs))  # equal keys exactly when the archs are equal
    assert gs.keys(gs.empty()) == [] and gs.decode(g, []) == []


def _stats(archs):
    """Marginal frequencies the operators shape: resolution, depths, kernels and expands by slot."""
    c = Counter()
    for a in archs:
        c[("r", a.r)] += 1
        for s, (ks, es) in enumerate(zip(a.ks, a.e, strict=True)):
            c[("d", s, len(ks))] += 1
            for b, (k, e) in enumerate(zip(ks, es, strict=True)):
                c[("k", s, b, k)] += 1
                c[("e", s, b, e)] += 1
    return c


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "compofa-w1.0"])
def test_operators_draw_the_space_operators_distributions(name):
    """Batched sample/mutate/crossover against SearchSpace's own, on 6,000 draws each."""
    sp = get_space(name)
    gs, nrng, rng = GeneSpace(sp), np.random.default_rng(1), random.Random(1)
    n, rs = 6000, [128, 176, 224]
    parents = [sp.sample(rng, rs) for _ in range(8)]
    pa = [parents[i % 8] for i in range(n)]
    pb = [parents[(i * 3 + 1) % 8] for i in range(n)]
    ga, gb = gs.encode(pa), gs.encode(pb)
    pairs = {
        "sample": (gs.decode(gs.sample(nrng, n, rs)), [sp.sample(rng, rs) for _ in range(n)]),
        "mutate": (gs.decode(gs.mutate(nrng, ga, 0.3, rs)),
                   [sp.mutate(a, rng, 0.3, rs) for a in pa]),
        "crossover": (gs.decode(gs.crossover(nrng, ga, gb)),
                      [sp.crossover(a, b, rng) for a, b in zip(pa, pb, strict=True)]),
    }
    for what, (ours, theirs) in pairs.items():
        a, b = _stats(ours), _stats(theirs)
        for key in set(a) | set(b):
            # two independent draws of the same frequency: within 5 standard deviations
            p = (a[key] + b[key]) / (2 * n)
            tol = 5 * np.sqrt(2 * n * p * (1 - p)) + 3
            assert abs(a[key] - b[key]) <= tol, (what, key, a[key], b[key])


def _table(sp, rs, seed=3):
    rng = random.Random(seed)
    return LookupTable.from_entries(
        [LutEntry(s.key, s.kind, v, v, v, v, 0.0, 0.0, 1)
         for s in sp.unique_layers(rs) for v in [rng.uniform(0.001, 3.0)]],
        {"space": sp.name, "device": "cpu", "resolutions": rs})


def test_table_source_from_genes_equals_predict_ms_to_the_last_digit():
    sp = get_space("ofa-mbv3-w1.0")
    rs = [128, 176, 224]
    t = _table(sp, rs)
    gs = GeneSpace(sp)
    g = gs.sample(np.random.default_rng(4), 3000, rs)
    for cal in (None, {"scale": 1.37, "offset_ms": 0.61}):
        t.meta["calibration"] = cal
        src = TableLatency(t, sp.name, "cpu")
        assert np.array_equal(src.predict_genes_ms(g), src.predict_ms(gs.decode(g)))
    gap = gs.encode([sp.min_arch(160)])
    with pytest.raises(LookupMiss, match="160x160"):
        TableLatency(t, sp.name, "cpu").predict_genes_ms(gap)


@pytest.mark.skipif(not NOTE10.is_dir(), reason="once-for-all's Note10 tables are not beside the checkout")
def test_note10_tables_from_genes_equal_predict_ms():
    from latkit.profiler.ofa_tables import import_ofa

    sp = get_space("ofa-mbv3-w1.2")
    src = TableLatency(import_ofa(NOTE10, sp).table, sp.name, "note10")
    gs = GeneSpace(sp)
    g = gs.sample(np.random.default_rng(5), 3000, list(sp.resolutions))
    assert np.array_equal(src.predict_genes_ms(g), src.predict_ms(gs.decode(g)))
