"""Lookup-table campaign benchmark: wall time, per-entry spread, and repeatability of whole tables.

Default (``--device cpu``): builds the full ``compofa-w1.0`` table at all 25 resolutions (128..224
step 4) TWICE, each into a fresh store and a fresh export cache, and reports

- entries, the wall time of each build (target: <= 10 min each on the 2-core machine);
- the median per-entry CV (std / mean of the timed runs; target <= 2%), plus a robust spread
  ((p90 - p10) / 2.563 / median, the normal-equivalent sigma) that ignores rare stalls;
- agreement of the two builds: median over entries of |a - b| / mean(a, b), the ratio of the two
  tables' median entries, and the share of entries within 3%;
- a check that a family export specialised to a static size measures like a static export.

``--device pixel4 --emulate --resolutions 128,224`` builds one table through adb against the ADB
device emulator (real LiteRT inference on this host) instead.

Timing runs hold ``/tmp/latkit-bench.lock`` (flock) so that two benchmarks never overlap; the
machine's load average is printed before and after. Usage::

    python benchmarks/lut_campaign.py [--realtime|--no-realtime] [--out DIR]
    python benchmarks/lut_campaign.py --device pixel4 --emulate --resolutions 128,224
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from latkit.profiler.campaign import LAYER_PROTOCOL, CampaignSettings, DeviceSpec, run_layer_campaign
from latkit.profiler.lut import LookupTable
from latkit.profiler.progress import LogProgress
from latkit.supernet.space import get_space

LOCK = "/tmp/latkit-bench.lock"


@contextlib.contextmanager
def bench_lock():
    with open(LOCK, "a") as f:
        t0 = time.monotonic()
        fcntl.flock(f, fcntl.LOCK_EX)
        waited = time.monotonic() - t0
        if waited > 1:
            print(f"waited {waited:.0f} s for {LOCK}", file=sys.stderr)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def robust_cv(e) -> float:
    return (e.p90_ms - e.p10_ms) / 2.563 / e.median_ms


def table_stats(t: LookupTable) -> dict:
    cvs = [e.cv for e in t]
    return {"entries": len(t), "median_cv": statistics.median(cvs),
            "p90_cv": sorted(cvs)[int(0.9 * (len(cvs) - 1))],
            "median_robust_cv": statistics.median(robust_cv(e) for e in t),
            "median_runs": statistics.median(e.runs for e in t),
            "remeasured": None, "total_ms": sum(e.median_ms for e in t)}


def build(space, resolutions, spec, work: Path, settings: CampaignSettings, label: str) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    load0 = os.getloadavg()
    with bench_lock():
        t0 = time.perf_counter()
        res = run_layer_campaign(space, resolutions, [spec], work / "store.sqlite", work / "lut",
                                 settings=settings, progress=LogProgress(label, every_s=30),
                                 command=" ".join(sys.argv))
        wall = time.perf_counter() - t0
    t = LookupTable.load(work / "lut")
    out = {"wall_s": wall, "measured": res.measured, "complete": res.complete,
           "load_before": load0, "load_after": os.getloadavg(), **table_stats(t)}
    from latkit.profiler.store import MeasurementStore

    with MeasurementStore(work / "store.sqlite") as st:
        out["remeasured"] = sum(bool(r.measurement.get("remeasured")) for r in st.records("layer"))
    return out


def agreement(a: LookupTable, b: LookupTable) -> dict:
    keys = sorted(set(a.keys()) & set(b.keys()))
    rel = [abs(a.latency_ms(k) - b.latency_ms(k)) / ((a.latency_ms(k) + b.latency_ms(k)) / 2)
           for k in keys]
    med_a = statistics.median(a.latency_ms(k) for k in keys)
    med_b = statistics.median(b.latency_ms(k) for k in keys)
    return {"common": len(keys), "median_rel_diff": statistics.median(rel),
            "p90_rel_diff": sorted(rel)[int(0.9 * (len(rel) - 1))],
            "median_entry_ratio": med_b / med_a,
            "within_3pct": sum(r <= 0.03 for r in rel) / len(rel)}


def check_dynamic(space, n: int, work: Path, realtime: int | None) -> dict:
    """Static export vs family export specialised to the same size, measured alternately."""
    from latkit.devices.registry import get_device
    from latkit.profiler.artifacts import ArtifactMaker
    from latkit.profiler.campaign import realtime as rt
    from latkit.profiler.export import ExportCache

    specs = space.unique_layers()
    specs = [s for s in specs if s.kind in ("Conv", "expanded_conv", "Conv_1")]
    random.Random(0).shuffle(specs)
    fam = ArtifactMaker(ExportCache(work / "cache"), dynamic_hw=True)
    static = ArtifactMaker(ExportCache(work / "cache"), dynamic_hw=False)
    dev = get_device("cpu")
    ratios = []
    with bench_lock():
        for s in specs[:n]:
            p_fam, p_static = fam.layer(s, "onnx"), static.layer(s, "onnx")
            with rt(realtime):
                m = [dev.benchmark(p, LAYER_PROTOCOL).median_ms
                     for p in (p_static, p_fam, p_static, p_fam)]
            ratios.append((m[1] + m[3]) / (m[0] + m[2]))
    dev.close()
    return {"layers": len(ratios), "median_ratio_family_over_static": statistics.median(ratios),
            "min_ratio": min(ratios), "max_ratio": max(ratios)}


@contextlib.contextmanager
def emulated_pixel4(tmp: Path):
    from latkit.devices.emulator import EmulatorServer

    os.environ["LATKIT_ADB_KEY"] = str(tmp / "keys" / "adbkey")
    tool = tmp / "benchmark_model"
    tool.write_bytes(b"\x7fELF stand-in: the emulator runs any pushed benchmark_model\n")
    os.environ["LATKIT_BENCHMARK_MODEL"] = str(tool)
    with EmulatorServer(port=0, profile="pixel4") as emu:
        yield emu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--space", default="compofa-w1.0")
    ap.add_argument("--resolutions", default="all")
    ap.add_argument("--emulate", action="store_true", help="pixel4 via the ADB device emulator")
    ap.add_argument("--builds", type=int, default=2, help="independent builds (default 2; 1 for pixel4)")
    ap.add_argument("--realtime", dest="realtime", action="store_true", default=None)
    ap.add_argument("--no-realtime", dest="realtime", action="store_false")
    ap.add_argument("--check-dynamic", type=int, default=20, metavar="N",
                    help="layers for the family-vs-static export check (0: skip)")
    ap.add_argument("--out", default=None, help="work directory (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    space = get_space(args.space)
    rs = list(space.resolutions) if args.resolutions == "all" else \
        [int(r) for r in args.resolutions.split(",")]
    if args.realtime is None:
        args.realtime = args.device == "cpu" and os.geteuid() == 0
    prio = 10 if args.realtime else None
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="latkit-lut-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"space": space.name, "resolutions": [rs[0], rs[-1], len(rs)],
                    "device": args.device, "realtime_priority": prio,
                    "protocol": LAYER_PROTOCOL.to_dict(), "cpus": os.cpu_count()}
    settings = CampaignSettings(realtime_priority=prio)
    try:
        if args.device == "cpu":
            spec = DeviceSpec("cpu")
            builds = [build(space, rs, spec, work / f"build{i + 1}", settings, f"build {i + 1}")
                      for i in range(args.builds)]
            report["builds"] = builds
            if args.builds >= 2:
                report["agreement"] = agreement(LookupTable.load(work / "build1" / "lut"),
                                                LookupTable.load(work / "build2" / "lut"))
            if args.check_dynamic:
                report["dynamic_hw_check"] = check_dynamic(space, args.check_dynamic,
                                                           work / "dyn", prio)
        else:
            if not args.emulate:
                raise SystemExit("only --emulate is scripted for android devices")
            with emulated_pixel4(work) as emu:
                spec = DeviceSpec(args.device, {"serial": emu.serial})
                report["builds"] = [build(space, rs, spec, work / "build1", settings, "pixel4")]
                report["emulator"] = {"serial": emu.serial}
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    print(json.dumps(report, sort_keys=True, default=str))
    return 0


def print_report(r: dict) -> None:
    print(f"\n== {r['space']} on {r['device']}, resolutions {r['resolutions'][0]}.."
          f"{r['resolutions'][1]} ({r['resolutions'][2]}), realtime={r['realtime_priority']}")
    for i, b in enumerate(r["builds"], 1):
        print(f"build {i}: {b['entries']} entries in {b['wall_s']:.1f} s "
              f"({b['wall_s'] / 60:.2f} min); median CV {100 * b['median_cv']:.2f}% "
              f"(p90 {100 * b['p90_cv']:.2f}%), robust {100 * b['median_robust_cv']:.2f}%; "
              f"median runs {b['median_runs']:.0f}; remeasured {b['remeasured']}; "
              f"load {b['load_before'][0]:.2f} -> {b['load_after'][0]:.2f}")
    if "agreement" in r:
        a = r["agreement"]
        print(f"agreement: median |a-b|/mean {100 * a['median_rel_diff']:.2f}% (p90 "
              f"{100 * a['p90_rel_diff']:.2f}%), median-entry ratio {a['median_entry_ratio']:.4f}, "
              f"{100 * a['within_3pct']:.1f}% of entries within 3%")
    if "dynamic_hw_check" in r:
        d = r["dynamic_hw_check"]
        print(f"family export specialised vs static export ({d['layers']} layers): median ratio "
              f"{d['median_ratio_family_over_static']:.4f} (range {d['min_ratio']:.3f}.."
              f"{d['max_ratio']:.3f})")


if __name__ == "__main__":
    sys.exit(main())
