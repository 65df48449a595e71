"""``lat bench`` (measure one artifact on one device) and ``lat device`` (``list``; ``check`` from
``latkit.devices.android.cli`` when the android package is present; ``emulate``, which serves the
ADB device emulator of ``latkit.devices.emulator``).

Thin: parse arguments, call the registry and the device, print. No runtime is imported at module
level, and neither is the emulator (its server, shell and LiteRT-backed ``benchmark_model`` load only
for ``lat device emulate``).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

from latkit import cli_args
from latkit.devices import levels
from latkit.devices.base import DEFAULT_PASSES, combine_passes
from latkit.devices.host import DEFAULT_RT_PRIORITY, default_affinity, realtime
from latkit.devices.precision import check_precision
from latkit.devices.registry import LOCAL_DEVICES, describe_device, get_device, list_devices
from latkit.errors import DeviceError


def _bench_options(args: argparse.Namespace) -> dict[str, Any]:
    """Device options from the flags the user gave (unset flags are left to the device's defaults)."""
    options = {"batch": args.batch, "graph_opt_level": args.graph_opt_level}
    return {**cli_args.device_options(args), **cli_args.protocol_overrides(args),
            **{k: v for k, v in options.items() if v is not None}}


def _affinity(env: dict[str, Any]) -> str:
    if not env.get("affinity_mask"):
        return ""
    pinned = "" if env.get("affinity_pinned", True) else " (not pinned)"
    return f"affinity 0x{env['affinity_mask']}{pinned}"


def format_measurement(m: Any) -> str:
    """A short human-readable table of a ``Measurement``."""
    env = m.env
    runtime = f"{env.get('runtime', '?')} {env.get('runtime_version', '')}".strip()
    where = env.get("execution_provider") or env.get("delegate") or ""
    threads = env.get("threads")
    head = ", ".join(str(x) for x in (runtime, where, f"{threads} thread(s)" if threads else "",
                                      _affinity(env))
                     if x)
    sha = str(env.get("artifact_sha256", ""))[:12]
    rows = [
        ("device", f"{env.get('device', '?')} ({head})"),
        ("artifact", f"{Path(str(env.get('artifact', '?'))).name} (sha256 {sha}...)"
                     + (f", {env['precision']}" if env.get("precision") else "")),
        ("median", f"{m.median_ms:.4f} ms"),
        ("p10 / p90", f"{m.p10_ms:.4f} / {m.p90_ms:.4f} ms"),
        ("mean ± std", f"{m.mean_ms:.4f} ± {m.std_ms:.4f} ms (cv {m.cv * 100:.1f}%)"),
        *([("passes", f"{m.extra['passes']}: " + ", ".join(f"{v:.4f}" for v in m.extra["pass_medians_ms"])
                      + f" ms (spread {m.extra['pass_spread'] * 100:.1f}%; median reported)")]
          if m.extra.get("passes", 1) > 1 else []),
        *([("reference", f"ratio {m.extra['paired']['ratio']:.4f} to the reference model "
                         f"({m.extra['paired']['ref_ms']:.4f} ms here, level "
                         f"{m.extra['level']['level_ms']:.4f} ms over "
                         f"{m.extra['level']['readings']} readings); as measured "
                         + ", ".join(f"{v:.4f}" for v in m.extra.get("raw_pass_medians_ms", []))
                         + " ms")]
          if isinstance(m.extra.get("level"), dict) and "paired" in m.extra else []),
        ("runs", f"{m.runs} timed, {m.warmup_runs} warm-up"
                 + (f"; re-measured (first-round cv {m.first_round_cv * 100:.1f}%)" if m.remeasured else "")),
    ]
    sched = env.get("scheduling")
    if sched:
        rows.append(("scheduling", f"{sched.get('policy')}" + (f" priority {sched['priority']}"
                                                              if sched.get("priority") else
                                                              f" ({sched.get('reason')})")))
    load = env.get("load_avg")
    if load:
        busy = load[0] > (env.get("cpu_count") or 1)
        rows.append(("load", f"{load[0]:.2f} (1 min) on {env.get('cpu_count')} CPUs"
                             + ("; other processes compete for the CPUs, expect noise" if busy else "")))
    return "\n".join(f"{k:<11} {v}" for k, v in rows)


def _cmd_bench(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DeviceError(f"artifact {path} {what}; export one with `lat export`")
    if args.precision is not None:  # the device records what the file holds either way
        check_precision(path, args.precision)
    passes = DEFAULT_PASSES if args.passes is None else args.passes
    if passes < 1:
        raise DeviceError(f"--passes must be at least 1, got {passes}")
    options = _bench_options(args)
    local = args.device in LOCAL_DEVICES
    if local and options.get("affinity") is None:  # pinned where it can be (recorded in env)
        cpus = default_affinity(options.get("threads"))
        if cpus is not None:
            options["affinity"] = list(cpus)
    priority = args.realtime if args.realtime else (DEFAULT_RT_PRIORITY if local else None)
    device = get_device(args.device, **options)
    try:
        ms = []
        paired = args.reference and bool(getattr(device, "pairs_with_reference", False))
        for _ in range(passes):
            with realtime(priority, required=bool(args.realtime)) as sched:
                m = device.benchmark(path, reference=True) if paired else device.benchmark(path)
            m.env["scheduling"] = sched
            ms.append(m)
    finally:
        device.close()
    level = levels.level_of(ms[0]) if paired else None
    m = combine_passes(ms, level["level_ms"] if level else None)
    if level:
        m.extra["level"] = level
    print(m.to_json() if args.json else format_measurement(m))
    return 0


def _cmd_device_list(args: argparse.Namespace) -> int:
    rows = list_devices()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{width}}  {'KIND':<8} {'SOURCE':<8} {'FORMATS':<8} DESCRIPTION")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kind']:<8} {r['source']:<8} {','.join(r['formats']):<8} "
              f"{r['description']}")
    return 0


def format_show(d: dict[str, Any]) -> str:
    """``lat device show``: where the profile came from, its clusters, then the profile as YAML."""
    import yaml  # noqa: PLC0415 -- yaml loads only for this command (lat --help stays cheap)

    lines = [f"{d.get('name')}: {d['kind']} device, {d['source']}"
             + (f" profile {d['file']}" if d.get("file") else "")]
    for c in d.get("cores") or ():
        cpus = c.get("cpus", [])
        lines.append(f"  cluster cpu{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"  cluster cpu{cpus[0]}")
        lines[-1] += f": {len(cpus)} x {c.get('core')} at {c.get('max_ghz')} GHz"
    if d.get("taskset_mask"):
        lines.append(f"  taskset mask {d['taskset_mask']}, {d.get('threads')} thread(s)")
    body = {k: v for k, v in d.items() if k not in ("kind", "source", "file")}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=None,
                                                     width=100).rstrip()


def _cmd_device_show(args: argparse.Namespace) -> int:
    d = describe_device(args.name)
    print(json.dumps(d, indent=2) if args.json else format_show(d))
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure one exported model (.onnx/.tflite) on one device",
        description="Measure FILE on DEVICE under the shared protocol (warm-up, then time until both "
        "a minimum run count and a minimum time are reached), in --passes passes (default "
        f"{DEFAULT_PASSES}), and print the median of the passes with their spread and the "
        "environment. A local device is pinned to one CPU and measured in SCHED_FIFO where "
        "permitted (recorded either way). On this host's CPU devices (cpu, cpu-tflite) every "
        "sample is paired with a run of latkit's reference model right after it, and the figure "
        "is the pairs' median ratio times the device's reference level (the median of every "
        "reading of the reference on this host, kept in $LATKIT_HOME/levels): a level shift of "
        "the machine moves both and leaves the ratio, so runs minutes or days apart agree. "
        "--no-reference measures the model alone.",
    )
    p.add_argument("file", metavar="FILE",
                   help="exported model: .onnx (cpu, cuda) or .tflite (cpu-tflite, android)")
    cli_args.add_device(p, default="cpu")
    cli_args.add_device_options(p, options=("threads", "affinity", "serial", "delegate", "lock_timeout"))
    cli_args.add_batch(p, help="input batch size (the model must allow it)")
    cli_args.add_precision(p, help="the precision FILE must hold (read from the file; a model of "
                           "another precision is refused); recorded as env precision either way")
    p.add_argument("--graph-opt-level", choices=["disable", "basic", "extended", "layout", "all"],
                   help="onnxruntime graph optimisation level (default all)")
    cli_args.add_protocol_options(p, options=("warmup_runs", "min_runs", "min_time", "passes",
                                              "realtime"),
                                  defaults={"warmup_runs": 10, "min_runs": 20, "min_time": 0.2,
                                            "passes": DEFAULT_PASSES})
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="time the model alone, without the paired reference model (the figure is "
                        "then as measured, with the machine's level shifts in it)")
    cli_args.add_json(p, help="print the Measurement as one JSON object")
    p.set_defaults(func=_cmd_bench)


def register_device(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device", help="list devices; check or emulate android devices",
                       description="Devices latkit can measure on.")
    device_subparsers = p.add_subparsers(dest="device_command", metavar="SUBCOMMAND",
                                         parser_class=type(p))
    lst = device_subparsers.add_parser("list", help="list known devices (local and android profiles)")
    cli_args.add_json(lst, help="print the list as JSON")
    lst.set_defaults(func=_cmd_device_list)
    show = device_subparsers.add_parser(
        "show", help="show one device: its whole profile and the file it came from",
        description="Print a device's profile (for an android phone: model, SoC, clusters in `cores`, "
        "mask, thermal zones, benchmark_model) and whether it is built in or the user's "
        "($LATKIT_HOME/devices/NAME.yaml, which wins over a built-in of the same name).")
    show.add_argument("name", metavar="NAME", help="device name (see `lat device list`)")
    cli_args.add_json(show, help="print the profile as one JSON object")
    show.set_defaults(func=_cmd_device_show)

    def _no_subcommand(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_no_subcommand)
    try:  # `check` and `emulate` come with the android package (optional); the emulator reads its profiles
        android_cli = importlib.import_module("latkit.devices.android.cli")
    except ModuleNotFoundError:
        pass
    else:
        android_cli.register(device_subparsers)
        register_emulate(device_subparsers)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from latkit.devices.emulator.server import serve_forever_cli  # noqa: PLC0415 -- loaded only for this command

    return serve_forever_cli(args)


def register_emulate(device_subparsers: argparse._SubParsersAction) -> None:
    """``lat device emulate``: serve the ADB device emulator in the foreground."""
    emu = device_subparsers.add_parser(
        "emulate", help="serve the ADB device emulator (a phone made of real host inference)",
        description="Serve an emulated Android phone over the ADB protocol: it runs pushed .tflite "
        "files with LiteRT on this CPU and prints benchmark_model's real output.",
    )
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu.add_argument("--port", type=cli_args.integer(0, 65535, "a TCP port"), default=0,
                     help="TCP port (default 0: pick a free one and print it; avoid 5555-5585)")
    emu.add_argument("--phone", "--profile", dest="profile", default="pixel4", metavar="NAME",
                     help="the phone to play: pixel4, pixel7, galaxy-s22, budget-a55 (any android "
                     "profile of `lat device list`) or a YAML path (default pixel4)")
    emu.add_argument("--faults", default="", metavar="SPEC", help="fault injection spec")
    emu.add_argument("--root", metavar="DIR", help="directory holding the phone's files "
                     "(default: a temporary one)")
    emu.add_argument("--no-auth", action="store_true", help="accept connections without RSA auth")
    emu.add_argument("--bare", action="store_true",
                     help="a bare phone: no benchmark_model on it (by default it is at "
                     "/data/local/tmp/benchmark_model, as on a developer's phone)")
    emu.set_defaults(func=_cmd_emulate)
