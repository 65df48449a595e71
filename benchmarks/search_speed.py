"""Search speed and quality: the figures of the search issues, on real fitted predictors.

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
3. **once-for-all's own search against latkit on its Note10 tables** (``ofa-mbv3-w1.2``, the
   tutorial's resolutions 160, 176, 192, 208, 224; the tables imported with ``lat lut import-ofa``):

   - equal settings, one budget of 30 ms, population 100, 500 generations: once-for-all's
     ``EvolutionFinder`` (``ofa.nas.search_algorithm``; efficiency predictor = its tutorial's
     latency model reading the same yaml files) against latkit's ``evolve`` with ``LONG`` (one
     population) and a ``lut:`` table source. Target: latkit at most a tenth of its time;
   - latkit's fast default against the best of the long runs, per budget (20, 30, 40 ms), with each
     source kind: the table; an xgb predictor (``lat fit``'s library) fitted on 300 table sums (no
     end-to-end Note10 measurements exist, so the table is its ground truth); a few-shot predictor
     transferring that xgb predictor to the table from 20 sums. Also all three budgets searched
     together (one ``evolve_budgets`` run). Targets: at most 1 s per budget with a table, within
     0.5 points of the best long run;
   - 10,000 archs predicted by the table source (median of 5). Target: at most 0.1 s.

   Accuracy, the same on both sides (once-for-all's tutorial downloads a pretrained predictor,
   which latkit may not): once-for-all's ``AccuracyPredictor`` MLP with seeded weights, fitted
   (deterministically, a few seconds) to a smooth proxy of top-1, 76 + 3.6 ln(MACs / 200M); latkit
   calls the same torch module through an accuracy source (``benchmarks/ofa_side.py``). Its
   "points" are not real ImageNet accuracy. Both sides run torch on one thread. The run checks that
   the two sides compute the same accuracy (max difference printed) and nearly the same latency
   (latkit's import pools a layer measured in several yaml files: about 0.2% at most).

Inputs of parts 1 and 2 (all real; nothing synthetic; they run only with ``--accuracy-compofa``):

- latency predictors: ``--latency-compofa DEV=PRED.json,...`` and ``--latency-ofa cpu=PRED.json``, or,
  by default, fitted here (``lat fit``'s library, xgb) on the end-to-end CPU measurements that
  ``benchmarks/predictor_fidelity.py`` wrote under ``--fidelity-dir``: ``cpu_round1.csv`` (cpu,
  onnxruntime), ``cpu-noopt.csv`` (cpu without graph optimisation) and ``cpu-tflite.csv``
  (LiteRT/XNNPACK);
- accuracy: ``--accuracy-compofa`` and ``--accuracy-ofa``, each an accuracy predictor JSON
  (``lat train fit-accuracy``) or an ``arch,top1`` CSV from ``lat train eval`` (an xgb top-1
  predictor is fitted on it here).

Part 3 needs only once-for-all's package (the ``ref`` extra) and ``../shared/data/ofa_note10_lut``
(or ``--note10 DIR``). Run it alone on a quiet machine, under the bench lock (about 6-8 minutes on
2 cores; ``--quick`` is one short run of each, for development)::

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/search_speed.py --out out/bench/search_speed

Parts 1 and 2 as well::

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/search_speed.py \\
        --accuracy-compofa out/demo/acc.csv --accuracy-ofa out/bench/acc_ofa.csv

Writes ``report.json`` (and ``evolution.png`` for part 2) to ``--out`` (default
``out/bench/search_speed``).
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
# 3. once-for-all's EvolutionFinder against latkit on the Note10 tables
# ------------------------------------------------------------------------------------------------

NOTE10_SPACE = "ofa-mbv3-w1.2"
NOTE10_RESOLUTIONS = (160, 176, 192, 208, 224)  # the tutorial's (its accuracy encoder's) resolutions
NOTE10_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ofa_note10_lut"


def _note10_sources(table_dir: Path, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Factories of fresh latency sources of each kind: table, xgb, few-shot (see the docstring)."""
    import numpy as np

    from latkit.predictors.io import save_predictor
    from latkit.predictors.models import make_predictor
    from latkit.predictors.transfer import FewShotPredictor
    from latkit.search.protocols import PredictorLatency, latency_source
    from latkit.supernet.space import get_space

    sp = get_space(NOTE10_SPACE)
    table = latency_source("note10", f"lut:{table_dir}", sp)
    rng = random.Random(11)
    archs = [sp.sample(rng, list(NOTE10_RESOLUTIONS)) for _ in range(300)]
    y = table.predict_ms(archs)
    xgb = make_predictor("xgb", sp).fit(archs, y)
    xgb.meta_["device"] = "note10"
    xgb_path = save_predictor(xgb, work / "note10_xgb.json")
    few = FewShotPredictor(sp, sources=[xgb]).fit(archs[:20], y[:20])
    log(f"  xgb fitted on 300 table sums; few-shot ({few.candidate_}) on 20 from the xgb predictor")
    test = [sp.sample(rng, list(NOTE10_RESOLUTIONS)) for _ in range(1000)]
    yt = table.predict_ms(test)
    mape = {k: float(np.mean(np.abs(p.predict(test) / yt - 1)) * 100) for k, p in
            (("xgb", xgb), ("few-shot", few))}
    return {
        "table": lambda: latency_source("note10", f"lut:{table_dir}", sp),
        "xgb": lambda: latency_source("note10", str(xgb_path), sp),
        "few-shot": lambda: PredictorLatency(few, sp.name, "note10", source="few-shot"),
        "mape_vs_table_percent": mape,
    }


def bench_note10(table_yaml: Path, out: Path, quick: bool, repeats: int, budgets: list[float],
                 log: Callable[[str], None]) -> dict[str, Any]:
    from dataclasses import replace

    import ofa_side
    import torch

    from latkit.cli import main as lat_main
    from latkit.search.evolution import FAST, LONG, evolve, evolve_budgets
    from latkit.supernet.space import get_space

    torch.set_num_threads(1)  # both sides: small batches, where threads only add overhead
    sp = get_space(NOTE10_SPACE)
    rs = NOTE10_RESOLUTIONS
    gens = 100 if quick else 500
    n_long, n_fast = (1, 1) if quick else (repeats, repeats)
    table_dir = out / "note10_lut"
    if lat_main(["lut", "import-ofa", str(table_yaml), "--space", sp.name, "--out", str(table_dir),
                 "--device", "note10"]) != 0:
        raise SystemExit("lat lut import-ofa failed")
    t0 = time.perf_counter()
    model = ofa_side.seeded_mlp(rs, sp)
    log(f"  seeded MLP fitted to the accuracy proxy in {time.perf_counter() - t0:.1f} s "
        f"(RMSE {model.fit_rmse:.3f})")
    ofa_lat = ofa_side.Note10Latency(table_yaml, rs)
    sources = _note10_sources(table_dir, out, log)
    acc = ofa_side.MlpAccuracy(model, sp)
    checks = {"accuracy_max_abs_diff": ofa_side.check_same_function(model, sp, rs),
              "latency_max_rel_diff": ofa_side.check_same_latency(ofa_lat, sources["table"](), sp, rs)}
    log(f"  same functions: accuracy max |diff| {checks['accuracy_max_abs_diff']:.2g}, latency "
        f"max relative diff {checks['latency_max_rel_diff']:.2g}")

    # table source speed: 10,000 archs
    src = sources["table"]()
    tsec = []
    for rep in range(5):
        rng = random.Random(200 + rep)
        archs = [sp.sample(rng) for _ in range(10_000)]
        t0 = time.perf_counter()
        src.predict_ms(archs)
        tsec.append(time.perf_counter() - t0)
    table_10k = statistics.median(tsec)

    # equal population and generations, one budget
    equal_budget = 30.0
    long = replace(LONG, generations=gens, resolutions=rs)
    ofa_runs, lk_runs = [], []
    for seed in range(n_long):
        sec, top1, arch = ofa_side.run_ofa(ofa_lat, model, equal_budget, 100, gens, seed)
        ofa_runs.append({"seed": seed, "seconds": sec, "top1": top1, "arch": arch})
        log(f"  once-for-all EvolutionFinder seed {seed}: {sec:.1f} s, top1 {top1:.3f}")
        s = sources["table"]()
        t0 = time.perf_counter()
        r = evolve(sp, s, acc, equal_budget, random.Random(seed), long)
        lk_runs.append({"seed": seed, "seconds": time.perf_counter() - t0, "top1": r.top1,
                        "latency_ms": r.latency_ms, "arch": str(r.best)})
        log(f"  latkit evolve (population 100, {gens} generations) seed {seed}: "
            f"{lk_runs[-1]['seconds']:.2f} s, top1 {r.top1:.3f}")
    equal = {"budget_ms": equal_budget, "population": 100, "generations": gens,
             "ofa_median_seconds": statistics.median(x["seconds"] for x in ofa_runs),
             "latkit_median_seconds": statistics.median(x["seconds"] for x in lk_runs),
             "ofa_runs": ofa_runs, "latkit_runs": lk_runs}
    equal["ratio"] = equal["latkit_median_seconds"] / equal["ofa_median_seconds"]

    # fast default against the best of long runs, per source kind and budget
    fast = replace(FAST, resolutions=rs)
    kinds = {}
    for kind in ("table", "xgb", "few-shot"):
        make = sources[kind]
        per = []
        for b in budgets:
            longs = []
            for seed in range(n_long):
                r = evolve(sp, make(), acc, b, random.Random(seed), long)
                longs.append(r.top1)
            best = max(longs)
            fasts = []
            for seed in range(n_fast):
                t0 = time.perf_counter()
                r = evolve(sp, make(), acc, b, random.Random(1000 + seed), fast)
                fasts.append({"seconds": time.perf_counter() - t0, "top1": r.top1, "gap": best - r.top1})
            per.append({"budget_ms": b, "best_long_top1": best, "long_top1": longs,
                        "fast_median_seconds": statistics.median(x["seconds"] for x in fasts),
                        "gap_max": max(x["gap"] for x in fasts), "fast_runs": fasts})
            log(f"  {kind} {b:g} ms: fast {per[-1]['fast_median_seconds']:.2f} s, gap "
                f"{per[-1]['gap_max']:.3f} to the best of {n_long} long run(s) ({best:.3f})")
        together = []
        for seed in range(n_fast):
            t0 = time.perf_counter()
            rr = evolve_budgets(sp, make(), acc, budgets, random.Random(1000 + seed), fast)
            together.append({"seconds": time.perf_counter() - t0,
                             "gaps": [p["best_long_top1"] - r.top1 for p, r in zip(per, rr, strict=True)]})
        kinds[kind] = {"per_budget": per,
                       "together_median_seconds": statistics.median(x["seconds"] for x in together),
                       "together_gap_max": max(g for x in together for g in x["gaps"]),
                       "together_runs": together}
    return {"space": sp.name, "resolutions": list(rs), "quick": quick, "checks": checks,
            "table_10k_median_seconds": table_10k, "equal_settings": equal, "kinds": kinds,
            "budgets_ms": budgets, "accuracy": ofa_side.__doc__.split("\n\n")[0],
            "mape_vs_table_percent": sources["mape_vs_table_percent"]}


def print_note10(n: dict[str, Any]) -> None:
    e = n["equal_settings"]
    print(f"Note10 tables ({n['space']}, resolutions {n['resolutions']}); accuracy on both sides: "
          "once-for-all's AccuracyPredictor MLP, seeded weights fitted to a MACs proxy (not real "
          "accuracy; see benchmarks/ofa_side.py)")
    print(f"  same functions: accuracy max |diff| {n['checks']['accuracy_max_abs_diff']:.2g} "
          f"points; latency max relative diff {n['checks']['latency_max_rel_diff']:.2g} (latkit's "
          "import pools a layer's repeated measurements across the yaml files)")
    print(f"  table source: 10,000 archs in {n['table_10k_median_seconds']:.3f} s (median of 5; "
          "target <= 0.1 s)")
    print(f"  equal settings (population {e['population']}, {e['generations']} generations, "
          f"{e['budget_ms']:g} ms): once-for-all EvolutionFinder {e['ofa_median_seconds']:.1f} s, "
          f"latkit {e['latkit_median_seconds']:.2f} s (medians of {len(e['ofa_runs'])}): ratio "
          f"{e['ratio']:.3f} (target <= 0.1); best top1 once-for-all "
          f"{max(r['top1'] for r in e['ofa_runs']):.3f}, latkit "
          f"{max(r['top1'] for r in e['latkit_runs']):.3f}")
    for kind, k in n["kinds"].items():
        extra = (f" (predictor MAPE vs the table {n['mape_vs_table_percent'][kind]:.2f}%)"
                 if kind in n["mape_vs_table_percent"] else "")
        print(f"  fast default, {kind} source{extra}:")
        for p in k["per_budget"]:
            print(f"    {p['budget_ms']:g} ms: {p['fast_median_seconds']:.2f} s per budget (target "
                  f"<= 1 s with a table), gap to the best long run {p['gap_max']:.3f} points "
                  "(target <= 0.5)")
        print(f"    all {len(k['per_budget'])} budgets searched together: "
              f"{k['together_median_seconds']:.2f} s "
              f"({k['together_median_seconds'] / len(k['per_budget']):.2f} s per budget), gap max "
              f"{k['together_gap_max']:.3f}")


# ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fidelity-dir", default="out/bench/predictor_fidelity")
    ap.add_argument("--latency-compofa", help="DEV=PRED.json,... (three devices)")
    ap.add_argument("--latency-ofa", help="PRED.json for ofa-mbv3-w1.0 on cpu")
    ap.add_argument("--accuracy-compofa", help="accuracy predictor JSON or arch,top1 CSV "
                    "(parts 1 and 2 run only with it)")
    ap.add_argument("--accuracy-ofa", help="accuracy predictor JSON or arch,top1 CSV (ofa-mbv3-w1.0)")
    ap.add_argument("--out", default="out/bench/search_speed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--long-runs", type=int, default=10)
    ap.add_argument("--long-generations", type=int, default=500)
    ap.add_argument("--fast-runs", type=int, default=10)
    ap.add_argument("--skip-evolution", action="store_true")
    ap.add_argument("--note10", default=str(NOTE10_DEFAULT), metavar="YAML_DIR",
                    help="once-for-all's Note10 yaml tables for part 3 (default ../shared/data/"
                    "ofa_note10_lut beside the checkout); 'none' skips part 3")
    ap.add_argument("--note10-repeats", type=int, default=3,
                    help="part 3: runs of each side and long/fast runs per budget (default 3)")
    ap.add_argument("--note10-budgets", default="20,30,40", help="part 3: budgets in ms")
    ap.add_argument("--quick", action="store_true",
                    help="part 3 only, one run of each at 100 generations (for development)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fid = Path(args.fidelity_dir)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"command": " ".join(sys.argv), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.accuracy_compofa and not args.quick:
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
    if args.note10 != "none":
        if not Path(args.note10).is_dir():
            raise SystemExit(f"{args.note10} is not a directory of once-for-all yaml tables")
        budgets = [float(b) for b in args.note10_budgets.split(",") if b.strip()]
        log(f"3. once-for-all's EvolutionFinder against latkit on the Note10 tables "
            f"({'quick' if args.quick else 'full'})")
        report["note10"] = bench_note10(Path(args.note10), out, args.quick, args.note10_repeats,
                                        budgets, log)
        print_note10(report["note10"])
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
