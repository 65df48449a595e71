"""``lat profile`` (``lat-profile``), ``lat measure`` and ``lat lut``: thin layers over the campaigns.

- ``lat profile --device DEV[,DEV...] --space S [--resolutions R|all] [--store PATH] --out DIR
  [--resume] [--remeasure] [--json]``: every unique layer, measured and written as a lookup table
  (``DIR/lut.csv`` + ``DIR/meta.json``; several devices: ``DIR/<device>/``).
- ``lat measure --device DEV --space S (-n N --seed K | --archs FILE) --out FILE.csv``: whole
  subnets, the ground truth for predictors.
- ``lat lut show DIR``, ``lat lut import-ofa YAML_DIR --space S --out DIR``,
  ``lat lut export-ofa DIR --out YAML_DIR``.

A campaign records its arguments in ``DIR/campaign.json`` (``FILE.csv.campaign.json`` for
``measure``), so ``--resume --out DIR`` alone continues it; reading, merging and running that record
is library code (``profiler/campaign_file.py``): this module only maps the namespace onto it. What
a command records as its command line is ``args.command_line`` (set by ``latkit.cli.main``: the
command exactly as typed). Exit status: 0 complete, 1 some jobs
failed (table partial), 2 user error, 130 interrupted (everything measured so far is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from typing import Any

from latkit import cli_args
from latkit.devices.base import DEFAULT_PASSES
from latkit.profiler.campaign_file import KEYS, LAYER, NETWORK, measure, profile
from latkit.profiler.jobs import CampaignResult
from latkit.profiler.lut import LookupTable
from latkit.profiler.ofa_tables import export_ofa, import_ofa
from latkit.profiler.progress import make_progress
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space

# ---------------------------------------------------------------------------------------------
# Shared argument handling
# ---------------------------------------------------------------------------------------------


def _add_device_args(p: argparse.ArgumentParser) -> None:
    g = cli_args.add_device_and_protocol(p, defaults={"passes": DEFAULT_PASSES})
    g.add_argument("--cache", metavar="DIR", help="export cache (default: STORE_DIR/exports)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="measurement store, SQLite (default: "
                   "store.sqlite in the output's directory); share one across campaigns")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign recorded in the output: arguments not given are "
                   "taken from it, and those given must agree with it")
    p.add_argument("--remeasure", action="store_true",
                   help="measure again what the store already has (adds newer rows)")
    cli_args.add_json(p)
    cli_args.add_quiet(p)


def _run_interruptible(fn: Any) -> Any:
    """Run ``fn`` with SIGTERM turned into KeyboardInterrupt (so it stops as cleanly as Ctrl-C)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TFLite exporter chatter would break the bar

    if threading.current_thread() is not threading.main_thread():
        return fn()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(args: argparse.Namespace, kind: str, label: str) -> CampaignResult:
    """The campaign the command line asks for: a new one, or (--resume) the recorded one."""
    given = {k: getattr(args, k, None) for k in KEYS[kind]}
    progress = make_progress(label, quiet=args.quiet)

    def run() -> CampaignResult:
        call = profile if kind == LAYER else measure
        return call(args.out, resume=args.resume, remeasure=args.remeasure, progress=progress,
                    command=args.command_line, **given)

    try:
        return _run_interruptible(run)
    finally:
        progress.close()


def _finish(res: Any, args: argparse.Namespace, what: str, resume_cmd: str) -> int:
    if args.json:
        out = {k: getattr(res, k) for k in ("entries", "measured", "skipped", "failed", "seconds",
                                             "complete", "interrupted", "outputs", "errors")}
        out["seconds"] = round(out["seconds"], 3)
        print(json.dumps(out, sort_keys=True))
    else:
        where = ", ".join(f"{d}: {p}" for d, p in res.outputs.items())
        print(f"{what}: {res.entries} entries ({res.measured} passes measured, {res.skipped} "
              f"already in the store, {res.failed} failed) in {res.seconds:.1f} s -> {where}")
    if res.interrupted:
        print(f"interrupted: everything measured so far is stored and the partial result is "
              f"written; resume with: {resume_cmd}", file=sys.stderr)
        return 130
    if res.errors and res.measured + res.skipped == 0:
        print(f"error: {res.errors[0]}", file=sys.stderr)
        return 2
    if not res.complete:
        for e in res.errors[:5]:
            print(f"error: {e}", file=sys.stderr)
        print(f"incomplete: some entries failed; fix the cause and run: {resume_cmd}",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# lat profile
# ---------------------------------------------------------------------------------------------


def _cmd_profile(args: argparse.Namespace) -> int:
    res = _run(args, LAYER, "lat-profile")
    return _finish(res, args, "lookup table",
                   f"lat-profile --resume --out {shlex.quote(str(args.out))}")


def register_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="measure every layer of a space on devices and write lookup tables",
        description="Enumerate the unique layers a search space can contain at the given "
        "resolutions, export and measure each on every device (devices run concurrently, one "
        "benchmark at a time each), store every measurement at once, and write DIR/lut.csv + "
        "DIR/meta.json (DIR/<device>/ for several devices). A killed campaign resumes where it "
        "stopped: measurements already in the store are skipped.")
    cli_args.add_device(p, several=True)
    cli_args.add_space(p)
    cli_args.add_resolutions(p)
    cli_args.add_out(p, help="output directory of the table")
    p.add_argument("--limit", type=cli_args.POSITIVE, help="only the first N layers (smoke runs, tests)")
    p.add_argument("--no-dynamic-hw", dest="dynamic_hw", action="store_false", default=None,
                   help="export ONNX layers once per resolution instead of once per shape family")
    cli_args.add_seed(p, what="weight seed of the exported layers (default 0)")
    cli_args.add_precision(p, calib=True, help="precision the layers are exported and measured in "
                           "(fp16 weights; int8: full-integer, each layer quantized as inside an "
                           "int8 subnet); one table per precision")
    _add_run_args(p)
    _add_device_args(p)
    p.set_defaults(func=_cmd_profile)


# ---------------------------------------------------------------------------------------------
# lat measure
# ---------------------------------------------------------------------------------------------


def _cmd_measure(args: argparse.Namespace) -> int:
    res = _run(args, NETWORK, "lat-measure")
    return _finish(res, args, "measurements",
                   f"lat-measure --resume --out {shlex.quote(str(args.out))}")


def register_measure(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure", help="measure whole subnets end to end (ground truth for predictors)",
        description="Export whole subnets and measure them on a device; write FILE.csv with "
        "arch,latency_ms,space,device,p10_ms,p90_ms,mean_ms,std_ms,cv,runs,passes,pass_ms,ref_drift,"
        "precision "
        "(input order; latency_ms is the median of the passes, pass_ms their medians). Uses the "
        "same resumable store and default protocol as lat profile.")
    cli_args.add_device(p, several=True)
    cli_args.add_space(p)
    p.add_argument("-n", type=cli_args.POSITIVE, help="number of random subnets (with --seed)")
    cli_args.add_seed(p, what="sampling seed for -n (default 0)")
    p.add_argument("--archs", metavar="FILE", help="one arch per line (key or JSON dict), or a "
                   "CSV with an arch column")
    cli_args.add_resolutions(p, help="resolutions to sample from with -n: a list and/or ranges "
                             "such as 128,160 or 128-224:8, or 'all' (default all)")
    p.add_argument("--checkpoint", help="supernet checkpoint for trained weights (default: "
                   "seeded random weights; latency does not depend on them)")
    cli_args.add_batch(p, help="input batch size (default 1)")
    cli_args.add_precision(p, calib=True, help="precision the subnets are exported and measured in "
                           "(recorded in the CSV's precision column)")
    cli_args.add_out(p, metavar="FILE.csv", help="the measurements' CSV")
    _add_run_args(p)
    _add_device_args(p)
    p.set_defaults(func=_cmd_measure)


# ---------------------------------------------------------------------------------------------
# lat lut
# ---------------------------------------------------------------------------------------------


def _cmd_lut_show(args: argparse.Namespace) -> int:
    s = LookupTable.load(args.dir).summary(top=args.top)
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    rs = s["resolutions"]
    res = f"{rs[0]}..{rs[-1]} ({len(rs)})" if len(rs) > 3 else ",".join(map(str, rs)) or "?"
    print(f"lookup table {s['dir']}")
    print(f"  entries      {s['entries']}" + ("  (PARTIAL)" if s["partial"] else ""))
    print(f"  space        {s['space']}")
    print(f"  device       {s['device']}")
    print(f"  resolutions  {res}")
    print(f"  source       {s['source']} ({s['statistic']})")
    print("  kinds        " + ", ".join(f"{k} {n}" for k, n in sorted(s["kinds"].items())))
    if s["median_cv"] is not None:
        print(f"  median cv    {100 * s['median_cv']:.2f}%")
    print(f"  created      {s['created']}")
    print(f"  slowest {len(s['slowest'])} layers:")
    for e in s["slowest"]:
        print(f"    {e['median_ms']:9.4f} ms  cv {100 * e['cv']:5.1f}%  {e['key']}")
    return 0


def _cmd_import_ofa(args: argparse.Namespace) -> int:
    imp = import_ofa(args.dir, args.space, device=args.device, skip_foreign=args.skip_foreign,
                     allow_missing=args.allow_missing, command=args.command_line)
    out = imp.table.save(args.out)
    info = {"out": str(out), "entries": len(imp.table), "files": len(imp.files),
            "resolutions": sorted(imp.files), "pooled_keys": imp.pooled_keys,
            "foreign_dropped": len(imp.foreign_keys)}
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        print(f"imported {len(imp.files)} once-for-all tables ({info['entries']} distinct layers, "
              f"{imp.pooled_keys} measured in several files pooled"
              + (f", {len(imp.foreign_keys)} foreign keys dropped" if imp.foreign_keys else "")
              + f") -> {out}")
    return 0


def _cmd_export_ofa(args: argparse.Namespace) -> int:
    table = LookupTable.load(args.dir)
    space = args.space or table.space
    rs = parse_resolutions(args.resolutions, get_space(space) if space else None)
    written = export_ofa(table, args.out, space=args.space, resolutions=rs,
                         statistic=args.statistic, allow_missing=args.allow_missing)
    if args.json:
        print(json.dumps({"out": str(args.out), "files": {r: str(p) for r, p in written.items()}}))
    else:
        print(f"wrote {len(written)} once-for-all tables ({args.statistic}) to {args.out}")
    return 0


def register_lut(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lut", help="inspect lookup tables; import/export once-for-all tables",
                       description="Lookup tables: DIR/lut.csv + DIR/meta.json (lat profile).")
    lsub = p.add_subparsers(dest="lut_command", metavar="ACTION", required=True,
                            parser_class=type(p))
    s = lsub.add_parser("show", help="entries, resolutions, device and the slowest layers")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--top", type=cli_args.NON_NEGATIVE, default=10,
                   help="how many slowest layers (default 10)")
    cli_args.add_json(s)
    s.set_defaults(func=_cmd_lut_show)
    i = lsub.add_parser("import-ofa", help="import once-for-all {r}_lookup_table.yaml files",
                        description="Import a folder of once-for-all per-resolution YAML tables "
                        "({count, mean, std} ms per layer key) as a latkit lookup table.")
    i.add_argument("dir", metavar="YAML_DIR")
    cli_args.add_space(i, required=True)
    cli_args.add_out(i, help="output directory of the table")
    i.add_argument("--device", help="device name to record (default: the folder name)")
    i.add_argument("--skip-foreign", action="store_true",
                   help="drop keys that are not layers of --space instead of failing")
    i.add_argument("--allow-missing", action="store_true",
                   help="import a file that lacks layers of its resolution (a partial table)")
    cli_args.add_json(i)
    i.set_defaults(func=_cmd_import_ofa)
    e = lsub.add_parser("export-ofa", help="write once-for-all {r}_lookup_table.yaml files",
                        description="Write a lookup table as once-for-all YAML tables, one per "
                        "resolution; a layer goes into every resolution whose subnets use it.")
    e.add_argument("dir", metavar="DIR")
    cli_args.add_out(e, metavar="YAML_DIR", help="output directory of the YAML tables")
    cli_args.add_space(e, help="search space (default: the table's)")
    cli_args.add_resolutions(e, help="a list and/or ranges such as 128,160 or 128-224:8 (default, "
                             "or 'all': the table's resolutions)")
    e.add_argument("--statistic", choices=["mean", "median"], default="mean",
                   help="what goes into the 'mean' field (default mean, as once-for-all)")
    e.add_argument("--allow-missing", action="store_true",
                   help="write what the table has even if a resolution lacks layers")
    cli_args.add_json(e)
    e.set_defaults(func=_cmd_export_ofa)


def _cmd_store_merge(args: argparse.Namespace) -> int:
    from latkit.profiler.store import merge_stores  # noqa: PLC0415 -- sqlite store loads only for this command

    report = merge_stores(args.stores, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for src, r in report["sources"].items():
        print(f"{src}: {r['rows']} rows, {r['added']} added")
    print(f"wrote {args.out}: {report['added']} rows added, {report['duplicates']} duplicates skipped")
    for c in report["conflicts"]:
        where = "; ".join(f"{h} in {', '.join(w)}" for h, w in c["settings"].items())
        print(f"conflicting settings: {c['kind']} {c['space']} on {c['device']}: {where} "
              f"(kept apart: a table reads one settings hash)")
    return 0


def _cmd_store_export(args: argparse.Namespace) -> int:
    from latkit.profiler.store import MeasurementStore  # noqa: PLC0415 -- sqlite: only this command
    from latkit.tables import write_table  # noqa: PLC0415 -- pandas: only this command

    with MeasurementStore(args.store, create=False) as st:
        where = {k: v for k in ("device", "space") if (v := getattr(args, k)) is not None}
        frame = st.frame(args.kind, latest=args.latest, **where)
    write_table(frame, args.out)
    if args.json:
        print(json.dumps({"out": str(args.out), "rows": len(frame), "columns": len(frame.columns)}))
    else:
        print(f"wrote {args.out}: {len(frame)} measurements, {len(frame.columns)} columns")
    return 0


def register_store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="measurement stores: merge stores made on several hosts, export",
                       description="The SQLite measurement stores lat profile/measure write.")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True,
                            parser_class=type(p))
    m = ssub.add_parser("merge", help="join stores without duplicates, reporting conflicting settings",
                        description="Copy every measurement of the STOREs into OUT once (a row "
                        "present in several is copied once); measurements of one device under "
                        "different settings are kept apart and reported.")
    m.add_argument("stores", nargs="+", metavar="STORE")
    m.add_argument("-o", "--out", required=True, metavar="OUT", help="merged store (created if missing)")
    cli_args.add_json(m)
    m.set_defaults(func=_cmd_store_merge)
    e = ssub.add_parser("export", help="the store as one table (CSV or Parquet), a row per measurement",
                        description="Write every measurement of STORE as a table: kind, key, arch, "
                        "space, device, precision, the statistics, time, and every environment "
                        "field (env_*) and setting (setting_*) as columns; the same table as "
                        "latkit.Store(STORE).frame() in Python.")
    e.add_argument("store", metavar="STORE")
    e.add_argument("-o", "--out", required=True, metavar="FILE.csv|FILE.parquet")
    e.add_argument("--kind", choices=("layer", "network"), help="only layer or network rows")
    e.add_argument("--device", help="only this device's rows")
    e.add_argument("--space", help="only this space's rows")
    e.add_argument("--latest", action="store_true",
                   help="only the newest row per measurement identity (what tables read)")
    cli_args.add_json(e)
    e.set_defaults(func=_cmd_store_export)
