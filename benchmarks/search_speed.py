"""Search speed and quality: the two figures of the search issue, on real fitted predictors.

1. **Exhaustive CompOFA frontier**: every ``compofa-w1.0`` subnet at every resolution (243 x 25 =
   6,075) scored by an accuracy predictor and by three fitted latency predictors (three devices),
   frontiers and best-per-budget for all three. Wall time of ``pareto_search`` (enumeration and
   every predictor call included; loading the predictor files excluded), first (cold) call and the
   median of repeated calls. Target: at most 2 s.
2. **Evolution on ofa-mbv3-w1.0**: for three budgets spread over the predicted latency range, the
   fast default (``FAST``) against the best of 10 long runs (population 100, 500 generations,
   ``LONG``), seeds 0..9. Reports the time per budget of the fast runs and the gap in predicted
   top-1 between the best long run and each fast run. Targets: at most 5 s per budget, gap at most
   0.5 (percentage points of predicted top-1).

Inputs (all real; nothing synthetic):

- latency predictors: ``--latency-compofa DEV=PRED.json,...`` and ``--latency-ofa cpu=PRED.json``, or,
  by default, fitted here (``lat fit``'s library, xgb) on the end-to-end CPU measurements that
  ``benchmarks/predictor_fidelity.py`` wrote under ``--fidelity-dir``: ``cpu_round1.csv`` (cpu,
  onnxruntime), ``cpu-noopt.csv`` (cpu without graph optimisation) and ``cpu-tflite.csv``
  (LiteRT/XNNPACK);
- accuracy: ``--accuracy-compofa`` and ``--accuracy-ofa``, each an accuracy predictor JSON
  (``lat train fit-accuracy``) or an ``arch,top1`` CSV from ``lat train eval`` (an xgb top-1
  predictor is fitted on it here).

Run it under the bench lock::

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/search_speed.py \\
        --accuracy-compofa out/demo/acc.csv --accuracy-ofa out/bench/acc_ofa.csv

Writes ``report.json`` and ``evolution.png`` to ``--out`` (default ``out/bench/search_speed``).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

COMPOFA = "compofa-w1.0"
OFA = "ofa-mbv3-w1.0"
FIDELITY_FILES = {  # device label -> (csv file, device column value)
    "cpu": ("cpu_round1.csv", "cpu"),
    "cpu-noopt": ("cpu-noopt.csv", "cpu-noopt"),
    "cpu-tflite": ("cpu-tflite.csv", "cpu-tflite"),
}


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def read_measurements(path: Path, space: str) -> tuple[list, list[float]]:
    from latkit.supernet.space import get_space

    sp = get_space(space)
    archs, ys = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("space", space) == space:
                archs.append(sp.parse(row["arch"]))
                ys.append(float(row["latency_ms"]))
    return archs, ys


def fit_latency(space: str, device: str, fidelity_dir: Path, out_dir: Path) -> Path:
    """An xgb latency predictor fitted on every measurement of ``space`` in the device's CSV."""
    import numpy as np

    from latkit.predictors.io import save_predictor
    from latkit.predictors.models import make_predictor

    name, _ = FIDELITY_FILES[device]
    archs, y = read_measurements(fidelity_dir / name, space)
    if len(archs) < 20:
        raise SystemExit(f"{fidelity_dir / name} has {len(archs)} {space} measurements; run "
                         "benchmarks/predictor_fidelity.py first")
    pred = make_predictor("xgb", space).fit(archs, np.array(y))
    pred.meta_["device"] = device
    pred.meta_["source"] = str(fidelity_dir / name)
    return save_predictor(pred, out_dir / f"latency_{space}_{device}.json")


def accuracy_predictor_path(spec: str, space: str, out_dir: Path) -> Path:
    """A top-1 predictor file: given as JSON, or fitted (xgb) on an ``arch,top1`` CSV."""
    p = Path(spec)
    if p.suffix == ".json":
        return p

    from latkit.predictors.io import save_predictor
    from latkit.predictors.models import make_predictor
    from latkit.search.protocols import AccuracyTable

    table = AccuracyTable.load(p, space)
    archs = table.candidates()
    pred = make_predictor("xgb", space, target="top1").fit(archs, table.top1(archs))
    pred.meta_["source"] = str(p)
    return save_predictor(pred, out_dir / f"accuracy_{space}.json")


# ------------------------------------------------------------------------------------------------
# 1. Exhaustive frontier
# ------------------------------------------------------------------------------------------------


def bench_frontier(latency: Sequence[tuple[str, Path]], accuracy: Path, repeats: int,
                   log: Callable[[str], None]) -> dict[str, Any]:
    from latkit.search.pareto import pareto_search
    from latkit.search.protocols import accuracy_source, latency_source
    from latkit.supernet.space import get_space

    sp = get_space(COMPOFA)
    times, result = [], None
    for i in range(repeats + 1):
        # fresh sources each round: no prediction is reused from the round before
        lat = [latency_source(d, str(p), sp) for d, p in latency]
        acc = accuracy_source(str(accuracy), sp)
        budgets = [8.0, 12.0, 16.0]
        t0 = time.perf_counter()
        result = pareto_search(sp, lat, acc, _budgets(lat, sp, budgets))
        times.append(time.perf_counter() - t0)
        log(f"  frontier round {i}: {times[-1]:.3f} s ({result.search_seconds:.3f} s inside)")
    assert result is not None
    return {
        "candidates": result.info["candidates"],
        "devices": result.devices,
        "predictors": {d: str(p) for d, p in latency},
        "accuracy": str(accuracy),
        "cold_seconds": times[0],
        "warm_median_seconds": statistics.median(times[1:]) if repeats else None,
        "warm_max_seconds": max(times[1:]) if repeats else None,
        "frontier_sizes": {d: len(f) for d, f in result.frontiers.items()},
        "picks": [{"device": p.device, "budget_ms": p.budget_ms, "arch": str(p.arch),
                   "predicted_latency_ms": p.predicted_latency_ms, "top1": p.top1}
                  for p in result.picks],
    }


def _budgets(lat: Sequence[Any], sp: Any, fallback: list[float]) -> list[float]:
    """Budgets inside every device's range: 30/60/90% between its min and max subnet at 224."""
    lo = max(float(s.predict_ms([sp.min_arch(224)])[0]) for s in lat)
    hi = min(float(s.predict_ms([sp.max_arch(224)])[0]) for s in lat)
    if hi <= lo:
        return fallback
    return [round(lo + q * (hi - lo), 2) for q in (0.3, 0.6, 0.9)]


# ------------------------------------------------------------------------------------------------
# 2. Evolution
# ------------------------------------------------------------------------------------------------


def bench_evolution(latency: Path, accuracy: Path, n_long: int, n_fast: int, long_generations: int,
                    log: Callable[[str], None]) -> dict[str, Any]:
    from dataclasses import replace

    import numpy as np

    from latkit.search.evolution import FAST, LONG, evolve
    from latkit.search.protocols import accuracy_source, latency_source
    from latkit.supernet.space import get_space

    sp = get_space(OFA)
    lat = latency_source("cpu", str(latency), sp)
    acc = accuracy_source(str(accuracy), sp)
    rng = random.Random(123)
    sample = [sp.sample(rng) for _ in range(2000)]
    ms = lat.predict_ms(sample)
    budgets = [round(float(np.percentile(ms, q)), 2) for q in (15, 50, 85)]
    long = replace(LONG, generations=long_generations)
    out: dict[str, Any] = {"budgets_ms": budgets, "fast": _settings(FAST), "long": _settings(long),
                           "predictors": {"latency": str(latency), "accuracy": str(accuracy)},
                           "per_budget": []}
    for b in budgets:
        longs = []
        for seed in range(n_long):
            t0 = time.perf_counter()
            r = evolve(sp, latency_source("cpu", str(latency), sp), acc, b, random.Random(seed), long)
            longs.append({"seed": seed, "top1": r.top1, "latency_ms": r.latency_ms,
                          "arch": str(r.best), "seconds": time.perf_counter() - t0,
                          "history": r.history})
            log(f"  {b} ms long run {seed}: {r.top1:.3f} at {r.latency_ms:.2f} ms "
                f"({longs[-1]['seconds']:.1f} s)")
        best_long = max(x["top1"] for x in longs)
        fasts = []
        for seed in range(n_fast):
            src = latency_source("cpu", str(latency), sp)  # fresh: no cached predictions
            t0 = time.perf_counter()
            r = evolve(sp, src, acc, b, random.Random(1000 + seed), FAST)
            sec = time.perf_counter() - t0
            fasts.append({"seed": 1000 + seed, "top1": r.top1, "latency_ms": r.latency_ms,
                          "arch": str(r.best), "seconds": sec, "gap": best_long - r.top1,
                          "history": r.history})
            log(f"  {b} ms fast run {seed}: {r.top1:.3f} (gap {best_long - r.top1:.3f}) in {sec:.2f} s")
        out["per_budget"].append({
            "budget_ms": b, "best_long_top1": best_long,
            "long_seconds_mean": statistics.mean(x["seconds"] for x in longs),
            "fast_seconds_mean": statistics.mean(x["seconds"] for x in fasts),
            "fast_seconds_max": max(x["seconds"] for x in fasts),
            "gap_mean": statistics.mean(x["gap"] for x in fasts),
            "gap_max": max(x["gap"] for x in fasts),
            "long_runs": longs, "fast_runs": fasts,
        })
    return out


def _settings(s: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(s)


def plot_evolution(evo: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(evo["per_budget"])
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4), squeeze=False)
    for ax, pb in zip(axes[0], evo["per_budget"]):
        for r in pb["long_runs"]:
            ax.plot(r["history"], c="0.6", lw=0.8)
        for r in pb["fast_runs"]:
            ax.plot(r["history"], c="tab:blue", lw=1)
        ax.axhline(pb["best_long_top1"], c="black", ls="--", lw=1, label="best of long runs")
        ax.axhline(pb["best_long_top1"] - 0.5, c="tab:red", ls=":", lw=1, label="0.5 below")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_title(f"{pb['budget_ms']} ms on cpu: gap max {pb['gap_max']:.2f}, "
                     f"{pb['fast_seconds_mean']:.1f} s/run")
        ax.set_xlabel("generation")
        ax.set_ylabel("best predicted top-1 (%)")
        lo = min(min(r["history"][min(5, len(r['history']) - 1):]) for r in pb["fast_runs"])
        ax.set_ylim(lo - 0.2, pb["best_long_top1"] + 0.2)
        ax.plot([], [], c="0.6", label="long runs (500 gen)")
        ax.plot([], [], c="tab:blue", label="fast default")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fidelity-dir", default="out/bench/predictor_fidelity")
    ap.add_argument("--latency-compofa", help="DEV=PRED.json,... (three devices)")
    ap.add_argument("--latency-ofa", help="PRED.json for ofa-mbv3-w1.0 on cpu")
    ap.add_argument("--accuracy-compofa", required=True, help="accuracy predictor JSON or arch,top1 CSV")
    ap.add_argument("--accuracy-ofa", help="accuracy predictor JSON or arch,top1 CSV (ofa-mbv3-w1.0)")
    ap.add_argument("--out", default="out/bench/search_speed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--long-runs", type=int, default=10)
    ap.add_argument("--long-generations", type=int, default=500)
    ap.add_argument("--fast-runs", type=int, default=10)
    ap.add_argument("--skip-evolution", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fid = Path(args.fidelity_dir)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"command": " ".join(sys.argv), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.latency_compofa:
        from latkit.search.protocols import parse_latency_specs

        lat_c = [(d, Path(p)) for d, p in parse_latency_specs(args.latency_compofa)]
    else:
        lat_c = [(d, fit_latency(COMPOFA, d, fid, out)) for d in FIDELITY_FILES]
    acc_c = accuracy_predictor_path(args.accuracy_compofa, COMPOFA, out)
    log(f"1. exhaustive frontier: {COMPOFA}, 243 x 25 resolutions x {len(lat_c)} devices")
    report["frontier"] = bench_frontier(lat_c, acc_c, args.repeats, log)
    f = report["frontier"]
    print(f"frontier: {f['candidates']} candidates x {len(f['devices'])} devices: cold "
          f"{f['cold_seconds']:.3f} s, warm median {f['warm_median_seconds']:.3f} s (target <= 2 s)")
    if not args.skip_evolution:
        if not args.accuracy_ofa:
            raise SystemExit("--accuracy-ofa is needed for the evolution benchmark")
        lat_o = Path(args.latency_ofa) if args.latency_ofa else fit_latency(OFA, "cpu", fid, out)
        acc_o = accuracy_predictor_path(args.accuracy_ofa, OFA, out)
        log(f"2. evolution on {OFA}: {args.long_runs} long runs vs {args.fast_runs} fast runs per budget")
        report["evolution"] = bench_evolution(lat_o, acc_o, args.long_runs, args.fast_runs,
                                              args.long_generations, log)
        plot_evolution(report["evolution"], out / "evolution.png")
        for pb in report["evolution"]["per_budget"]:
            print(f"evolution {pb['budget_ms']} ms: fast {pb['fast_seconds_mean']:.2f} s/run "
                  f"(max {pb['fast_seconds_max']:.2f}), gap to best of {args.long_runs} long runs "
                  f"mean {pb['gap_mean']:.3f}, max {pb['gap_max']:.3f} (long run "
                  f"{pb['long_seconds_mean']:.1f} s)")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
