"""How fast a lookup-table latency source scores archs: the batched table sum against the old path.

The search's ``lut:DIR`` source (``search.protocols.TableLatency``) used to sum each arch's layers
one by one through ``SearchSpace.layers`` and ``LookupTable.latency_ms``, memoised by the arch's
string key. It now calls ``LookupTable.sums_ms``: the table laid out once per resolution by
(stage, block, kernel, expand), an arch a couple of dozen dictionary lookups, with the same answers
to the last digit (checked here on every arch, and in tests/profiler/test_lut.py).

Run: ``python benchmarks/lut_source_speed.py [--n 10000] [--repeats 5]``. Uses once-for-all's Note10
tables (``../shared/data/ofa_note10_lut``, ``ofa-mbv3-w1.2``) when present beside the checkout, else a
synthetic table of every layer of the space. Each repeat draws fresh archs and times both paths on
them, old first; the figures are medians over repeats. Target (issue 20): 10,000 archs in 0.1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np

from latkit.profiler.lut import LookupTable, LutEntry
from latkit.profiler.ofa_tables import import_ofa
from latkit.search.protocols import TableLatency
from latkit.supernet.space import get_space

NOTE10 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ofa_note10_lut"


def old_predict_ms(table: LookupTable, space, archs, memo: dict[str, float]) -> np.ndarray:
    """The search's table source before the change, kept here as the baseline."""
    def one(a):
        key = str(a)
        v = memo.get(key)
        if v is None:
            v = sum(table.latency_ms(spec.key) for spec in space.layers(a))
            memo[key] = v
        return v

    return np.fromiter((one(a) for a in archs), dtype=np.float64, count=len(archs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="archs per repeat (default 10000)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sp = get_space("ofa-mbv3-w1.2")
    if NOTE10.is_dir():
        table = import_ofa(NOTE10, sp).table
        what = f"once-for-all's Note10 tables ({len(table)} entries)"
    else:
        rng = random.Random(0)
        table = LookupTable.from_entries(
            [LutEntry(s.key, s.kind, v, v, v, v, 0.0, 0.0, 1)
             for s in sp.unique_layers() for v in [rng.uniform(0.01, 2.0)]], {"space": sp.name})
        what = f"a synthetic table of every layer ({len(table)} entries)"
    rs = table.resolutions or list(sp.resolutions)
    print(f"{sp.name}, {what}, {args.n} fresh archs per repeat, {args.repeats} repeats")
    old_s, new_s = [], []
    for rep in range(args.repeats):
        rng = random.Random(100 + rep)
        archs = [sp.sample(rng, rs) for _ in range(args.n)]
        t0 = time.perf_counter()
        want = old_predict_ms(table, sp, archs, {})
        old_s.append(time.perf_counter() - t0)
        src = TableLatency(table, sp.name, "note10")
        t0 = time.perf_counter()
        got = src.predict_ms(archs)
        new_s.append(time.perf_counter() - t0)
        if not np.array_equal(got, want):
            raise SystemExit(f"repeat {rep}: the batched sum differs from the old path")
    old_m, new_m = statistics.median(old_s), statistics.median(new_s)
    print(f"old path (per-arch layer sum, memoised):   median {old_m:.3f} s "
          f"({1e6 * old_m / args.n:.1f} us/arch)")
    print(f"batched table sum (LookupTable.sums_ms):   median {new_m:.3f} s "
          f"({1e6 * new_m / args.n:.1f} us/arch)   target <= 0.1 s per 10,000")
    print(f"speed-up {old_m / new_m:.1f}x; answers identical to the last digit on every arch")


if __name__ == "__main__":
    main()
