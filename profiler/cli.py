"""``lat profile`` (``lat-profile``), ``lat measure`` and ``lat lut``: thin layers over the campaigns.

- ``lat profile --device DEV[,DEV...] --space S [--resolutions R|all] [--store PATH] --out DIR
  [--resume] [--remeasure] [--json]``: every unique layer, measured and written as a lookup table
  (``DIR/lut.csv`` + ``DIR/meta.json``; several devices: ``DIR/<device>/``).
- ``lat measure --device DEV --space S (-n N --seed K | --archs FILE) --out FILE.csv``: whole
  subnets, the ground truth for predictors.
- ``lat lut show DIR``, ``lat lut import-ofa YAML_DIR --space S --out DIR``,
  ``lat lut export-ofa DIR --out YAML_DIR``.

A campaign records its arguments in ``DIR/campaign.json`` (``FILE.csv.campaign.json`` for
``measure``), so ``--resume --out DIR`` alone continues it. Exit status: 0 complete, 1 some jobs
failed (table partial), 2 user error, 130 interrupted (everything measured so far is kept).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

CAMPAIGN_FORMAT = "latkit-campaign"
#: arguments a campaign file records; with --resume, an explicit one must agree with it
_LAYER_KEYS = ("device", "space", "resolutions", "store", "cache", "limit", "threads", "affinity",
               "delegate", "serial", "warmup_runs", "warmup_time", "min_runs", "min_time",
               "max_time", "quick", "realtime", "dynamic_hw", "seed")
_E2E_KEYS = ("device", "space", "n", "seed", "archs", "resolutions", "store", "cache", "checkpoint",
             "threads", "affinity", "delegate", "serial", "warmup_runs", "warmup_time", "min_runs",
             "min_time", "max_time", "quick", "realtime", "batch")


def _command_line(prog: str) -> str:
    return " ".join(shlex.quote(a) for a in [prog, *sys.argv[1:]])


# ---------------------------------------------------------------------------------------------
# Shared argument handling
# ---------------------------------------------------------------------------------------------


def _add_device_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("device and protocol")
    g.add_argument("--threads", type=int, help="runtime threads for every device (device default)")
    g.add_argument("--affinity", metavar="MASK", help="CPU affinity, hex mask (e.g. 1, 0xf0)")
    g.add_argument("--delegate", choices=["cpu", "gpu", "nnapi"], help="TFLite delegate (android)")
    g.add_argument("--serial", help="adb serial or host:port (android devices only)")
    g.add_argument("--warmup-runs", type=int, help="minimum warm-up runs")
    g.add_argument("--warmup-time", type=float, metavar="S", help="minimum warm-up seconds")
    g.add_argument("--min-runs", type=int, help="minimum timed runs")
    g.add_argument("--min-time", type=float, metavar="S", help="minimum timed seconds per entry")
    g.add_argument("--max-time", type=float, metavar="S", help="maximum timed seconds per entry")
    g.add_argument("--quick", action="store_true", default=None,
                   help="a tiny protocol for smoke runs and tests (noisy figures)")
    g.add_argument("--realtime", type=int, nargs="?", const=10, metavar="PRIO",
                   help="time each benchmark in SCHED_FIFO (Linux, root): steadier figures on a "
                   "busy machine (default priority 10)")
    g.add_argument("--cache", metavar="DIR", help="export cache (default: STORE_DIR/exports)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="measurement store, SQLite (default: "
                   "store.sqlite in the output's directory); share one across campaigns")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign recorded in the output: arguments not given are "
                   "taken from it")
    p.add_argument("--remeasure", action="store_true",
                   help="measure again what the store already has (adds newer rows)")
    p.add_argument("--json", action="store_true", help="end by printing one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _protocol(args: argparse.Namespace, base: Any) -> Any:
    import dataclasses

    from latkit.profiler.campaign import QUICK_PROTOCOL

    if args.quick:
        base = QUICK_PROTOCOL
    fields = {"warmup_runs": args.warmup_runs, "warmup_s": args.warmup_time,
              "min_runs": args.min_runs, "min_time_s": args.min_time, "max_time_s": args.max_time}
    fields = {k: v for k, v in fields.items() if v is not None}
    if "min_runs" in fields and fields["min_runs"] > base.max_runs:
        fields["max_runs"] = fields["min_runs"]
    return dataclasses.replace(base, **fields)


def _device_specs(args: argparse.Namespace, settings: Any, kind: str) -> list[Any]:
    """DeviceSpecs from --device and the device options; an unknown device fails here, early."""
    from latkit.devices.registry import LOCAL_DEVICES
    from latkit.profiler.campaign import DeviceSpec, device_specs, job_settings

    specs = []
    for d in device_specs(args.device):
        opts = {"threads": args.threads, "affinity": args.affinity, "delegate": args.delegate}
        if d.name not in LOCAL_DEVICES:
            opts["serial"] = args.serial
        spec = DeviceSpec(d.name, {k: v for k, v in opts.items() if v is not None})
        job_settings(spec, settings, kind)  # raises DeviceError for an unknown name
        specs.append(spec)
    return specs


def _load_campaign(path: Path, args: argparse.Namespace, keys: tuple[str, ...], kind: str) -> None:
    """--resume: arguments not given on the command line are taken from the campaign file."""
    from latkit.errors import StoreError

    if not path.is_file():
        raise StoreError(f"nothing to resume: {path} does not exist (start the campaign without "
                         "--resume first)")
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc.msg}); start the campaign afresh")
    if not isinstance(rec, dict) or rec.get("format") != CAMPAIGN_FORMAT or rec.get("kind") != kind:
        raise StoreError(f"{path} is not a latkit {kind} campaign file; start the campaign afresh")
    saved = rec.get("args", {})
    for k in keys:
        if getattr(args, k, None) is None:
            setattr(args, k, saved.get(k))
    if rec.get("remeasure"):
        args.remeasure = True
    args.measured_after_id = rec.get("measured_after_id")


def _save_campaign(path: Path, args: argparse.Namespace, keys: tuple[str, ...], kind: str,
                   command: str) -> None:
    rec = {"format": CAMPAIGN_FORMAT, "version": 1, "kind": kind, "command": command,
           "args": {k: getattr(args, k, None) for k in keys},
           "remeasure": bool(args.remeasure), "measured_after_id": args.measured_after_id}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _run_interruptible(fn: Any) -> Any:
    """Run ``fn`` with SIGTERM turned into KeyboardInterrupt (so it stops as cleanly as Ctrl-C)."""
    import os
    import signal
    import threading

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


def _finish(res: Any, args: argparse.Namespace, what: str, resume_cmd: str) -> int:
    if args.json:
        out = {k: getattr(res, k) for k in ("entries", "measured", "skipped", "failed", "seconds",
                                             "complete", "interrupted", "outputs", "errors")}
        out["seconds"] = round(out["seconds"], 3)
        print(json.dumps(out, sort_keys=True))
    else:
        where = ", ".join(f"{d}: {p}" for d, p in res.outputs.items())
        print(f"{what}: {res.entries} entries ({res.measured} measured, {res.skipped} already in "
              f"the store, {res.failed} failed) in {res.seconds:.1f} s -> {where}")
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
    from latkit.errors import LatkitError
    from latkit.profiler.campaign import LAYER_PROTOCOL, CampaignSettings, run_layer_campaign
    from latkit.profiler.progress import make_progress
    from latkit.profiler.store import MeasurementStore, default_store_path

    out = Path(args.out)
    camp = out / "campaign.json"
    args.measured_after_id = None
    if args.resume:
        _load_campaign(camp, args, _LAYER_KEYS, "layer")
    if args.dynamic_hw is None:
        args.dynamic_hw = True
    for name in ("device", "space"):
        if not getattr(args, name):
            raise LatkitError(f"--{name} is required (or --resume with an existing --out)")
    if isinstance(args.resolutions, list):
        args.resolutions = ",".join(map(str, args.resolutions))
    rs = None if args.resolutions in (None, "all") else _parse_resolutions(args.resolutions)
    command = _command_line("lat-profile")
    settings = CampaignSettings(protocol=_protocol(args, LAYER_PROTOCOL),
                                dynamic_hw=bool(args.dynamic_hw), seed=args.seed or 0,
                                realtime_priority=args.realtime)
    specs = _device_specs(args, settings, "layer")
    store_path = Path(args.store) if args.store else default_store_path(out)
    store = MeasurementStore(store_path)
    try:
        if args.remeasure and not args.resume:
            args.measured_after_id = store.max_id()
        _save_campaign(camp, args, _LAYER_KEYS, "layer", command)
        progress = make_progress("lat-profile", quiet=args.quiet)
        try:
            res = _run_interruptible(lambda: run_layer_campaign(
                args.space, rs, specs, store, out, remeasure=args.remeasure,
                measured_after_id=args.measured_after_id, progress=progress, settings=settings,
                limit=args.limit, cache_dir=args.cache, command=command))
        finally:
            progress.close()
    finally:
        store.close()
    return _finish(res, args, "lookup table", f"lat-profile --resume --out {shlex.quote(str(out))}")


def _parse_resolutions(text: str) -> list[int]:
    from latkit.errors import ArchError

    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ArchError(f"--resolutions takes comma-separated integers or 'all', got {text!r}")


def register_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="measure every layer of a space on devices and write lookup tables",
        description="Enumerate the unique layers a search space can contain at the given "
        "resolutions, export and measure each on every device (devices run concurrently, one "
        "benchmark at a time each), store every measurement at once, and write DIR/lut.csv + "
        "DIR/meta.json (DIR/<device>/ for several devices). A killed campaign resumes where it "
        "stopped: measurements already in the store are skipped.")
    p.add_argument("--device", help="device name(s), comma-separated (see `lat device list`)")
    p.add_argument("--space", help="search space (see `lat space list`)")
    p.add_argument("--resolutions", help="comma-separated resolutions, or 'all' (default all)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory of the table")
    p.add_argument("--limit", type=int, help="only the first N layers (smoke runs, tests)")
    p.add_argument("--no-dynamic-hw", dest="dynamic_hw", action="store_false", default=None,
                   help="export ONNX layers once per resolution instead of once per shape family")
    p.add_argument("--seed", type=int, help="weight seed of the exported layers (default 0)")
    _add_run_args(p)
    _add_device_args(p)
    p.set_defaults(func=_cmd_profile)


# ---------------------------------------------------------------------------------------------
# lat measure
# ---------------------------------------------------------------------------------------------


def _cmd_measure(args: argparse.Namespace) -> int:
    from latkit.errors import LatkitError
    from latkit.profiler.campaign import (NETWORK_PROTOCOL, CampaignSettings, run_e2e_campaign,
                                          sample_archs)
    from latkit.profiler.progress import make_progress
    from latkit.profiler.store import MeasurementStore
    from latkit.supernet.space import get_space

    out = Path(args.out)
    camp = out.with_name(out.name + ".campaign.json")
    args.measured_after_id = None
    if args.resume:
        _load_campaign(camp, args, _E2E_KEYS, "network")
    for name in ("device", "space"):
        if not getattr(args, name):
            raise LatkitError(f"--{name} is required (or --resume with an existing --out)")
    if (args.n is None) == (args.archs is None):
        raise LatkitError("give either -n N (random subnets, with --seed) or --archs FILE")
    space = get_space(args.space)
    if args.archs:
        from latkit.supernet.arch_files import read_archs

        archs = read_archs(args.archs, space)
        if not archs:
            raise LatkitError(f"{args.archs} holds no archs")
    else:
        rs = None if args.resolutions in (None, "all") else _parse_resolutions(args.resolutions)
        archs = sample_archs(space, args.n, args.seed or 0, rs)
    supernet, weights_id = None, None
    if args.checkpoint:
        from latkit.devices.base import file_sha256
        from latkit.supernet.model import load_supernet

        supernet, _ = load_supernet(args.checkpoint, space=space.name)
        weights_id = file_sha256(Path(args.checkpoint))
    command = _command_line("lat-measure")
    settings = CampaignSettings(protocol=_protocol(args, NETWORK_PROTOCOL),
                                batch=args.batch or 1, weights_id=weights_id,
                                realtime_priority=args.realtime)
    specs = _device_specs(args, settings, "network")
    store_path = Path(args.store) if args.store else out.parent / "store.sqlite"
    store = MeasurementStore(store_path)
    try:
        if args.remeasure and not args.resume:
            args.measured_after_id = store.max_id()
        _save_campaign(camp, args, _E2E_KEYS, "network", command)
        progress = make_progress("lat-measure", quiet=args.quiet)
        try:
            res = _run_interruptible(lambda: run_e2e_campaign(
                space, archs, specs, store, out, remeasure=args.remeasure,
                measured_after_id=args.measured_after_id, progress=progress, settings=settings,
                supernet=supernet, cache_dir=args.cache, command=command))
        finally:
            progress.close()
    finally:
        store.close()
    return _finish(res, args, "measurements", f"lat-measure --resume --out {shlex.quote(str(out))}")


def register_measure(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure", help="measure whole subnets end to end (ground truth for predictors)",
        description="Export whole subnets and measure them on a device; write FILE.csv with "
        "arch,latency_ms,space,device,p10_ms,p90_ms,mean_ms,std_ms,cv,runs (input order). Uses "
        "the same resumable store as lat profile.")
    p.add_argument("--device", help="device name(s), comma-separated")
    p.add_argument("--space", help="search space")
    p.add_argument("-n", type=int, help="number of random subnets (with --seed)")
    p.add_argument("--seed", type=int, help="sampling seed for -n (default 0)")
    p.add_argument("--archs", metavar="FILE", help="one arch per line (key or JSON dict), or a "
                   "CSV with an arch column")
    p.add_argument("--resolutions", help="resolutions to sample from with -n (default all)")
    p.add_argument("--checkpoint", help="supernet checkpoint for trained weights (default: "
                   "seeded random weights; latency does not depend on them)")
    p.add_argument("--batch", type=int, help="input batch size (default 1)")
    p.add_argument("--out", required=True, metavar="FILE.csv")
    _add_run_args(p)
    _add_device_args(p)
    p.set_defaults(func=_cmd_measure)


# ---------------------------------------------------------------------------------------------
# lat lut
# ---------------------------------------------------------------------------------------------


def _cmd_lut_show(args: argparse.Namespace) -> int:
    from latkit.profiler.lut import LookupTable

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
    print(f"  kinds        " + ", ".join(f"{k} {n}" for k, n in sorted(s["kinds"].items())))
    if s["median_cv"] is not None:
        print(f"  median cv    {100 * s['median_cv']:.2f}%")
    print(f"  created      {s['created']}")
    print(f"  slowest {len(s['slowest'])} layers:")
    for e in s["slowest"]:
        print(f"    {e['median_ms']:9.4f} ms  cv {100 * e['cv']:5.1f}%  {e['key']}")
    return 0


def _cmd_import_ofa(args: argparse.Namespace) -> int:
    from latkit.profiler.ofa_tables import import_ofa

    imp = import_ofa(args.dir, args.space, device=args.device, skip_foreign=args.skip_foreign,
                     command=_command_line("lat-lut"))
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
    from latkit.profiler.lut import LookupTable
    from latkit.profiler.ofa_tables import export_ofa

    table = LookupTable.load(args.dir)
    rs = None if args.resolutions in (None, "all") else _parse_resolutions(args.resolutions)
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
    s.add_argument("--top", type=int, default=10, help="how many slowest layers (default 10)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_lut_show)
    i = lsub.add_parser("import-ofa", help="import once-for-all {r}_lookup_table.yaml files",
                        description="Import a folder of once-for-all per-resolution YAML tables "
                        "({count, mean, std} ms per layer key) as a latkit lookup table.")
    i.add_argument("dir", metavar="YAML_DIR")
    i.add_argument("--space", required=True)
    i.add_argument("--out", required=True, metavar="DIR")
    i.add_argument("--device", help="device name to record (default: the folder name)")
    i.add_argument("--skip-foreign", action="store_true",
                   help="drop keys that are not layers of --space instead of failing")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_import_ofa)
    e = lsub.add_parser("export-ofa", help="write once-for-all {r}_lookup_table.yaml files",
                        description="Write a lookup table as once-for-all YAML tables, one per "
                        "resolution; a layer goes into every resolution whose subnets use it.")
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--out", required=True, metavar="YAML_DIR")
    e.add_argument("--space", help="default: the table's space")
    e.add_argument("--resolutions", help="default: the table's resolutions")
    e.add_argument("--statistic", choices=["mean", "median"], default="mean",
                   help="what goes into the 'mean' field (default mean, as once-for-all)")
    e.add_argument("--allow-missing", action="store_true",
                   help="write what the table has even if a resolution lacks layers")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_export_ofa)
