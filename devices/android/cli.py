"""``lat device check`` and ``lat device add``: the Android subcommands of ``lat device``.

``add NAME --serial S [--benchmark-model PATH]`` reads the phone (``detect.py``), installs
benchmark_model and writes ``$LATKIT_HOME/devices/NAME.yaml``; from then on every ``--device NAME``
knows the phone.

``check`` connects to a phone (or the emulator), prints its model, ABI, SDK, CPU frequencies,
temperatures and whether ``benchmark_model`` is installed. Thin (STYLE 12): adb-shell is loaded only
when the command connects. (``lat device emulate`` belongs to the emulator, not to the agent: see
``devices/cli.py``.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from latkit import cli_args
from latkit.devices.android import detect
from latkit.devices.android.agent import AndroidDevice
from latkit.devices.android.profile import AndroidProfile
from latkit.devices.paths import profile_files, user_profiles_dir
from latkit.devices.registry import LOCAL_DEVICES
from latkit.errors import DeviceError


def _cmd_check(args: argparse.Namespace) -> int:
    device = AndroidDevice.from_profile(args.device, serial=args.serial, key_path=args.key)
    try:
        info = device.check()
    finally:
        device.close()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(format_check(info))
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    name = detect.check_name(args.name, tuple(LOCAL_DEVICES))
    dest = user_profiles_dir() / f"{name}.yaml"
    if dest.exists() and not args.force:
        raise DeviceError(f"a user profile {dest} already exists; pass --force to replace it")
    base = detect.generic_profile(name, args.serial, args.auth_timeout)
    device = AndroidDevice(AndroidProfile.from_mapping(base, "<lat device add>"), serial=args.serial,
                           key_path=args.key)
    try:
        info = detect.detect(device)
        tool = detect.install_benchmark_model(device, args.benchmark_model, info["abi"])
    finally:
        device.close()
    data = detect.build_profile(name, args.serial, info, tool, args.auth_timeout)
    was = profile_files().get(name)
    path = detect.write_profile(data, dest)
    if args.json:
        print(json.dumps({"file": str(path), **data}, indent=2))
        return 0
    print(f"added {name}: {info['model']} ({info['soc']}, {info['abi']}, SDK {info['sdk']}) -> {path}")
    for c in info["cores"]:
        cpus = c["cpus"]
        span = f"cpu{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"cpu{cpus[0]}"
        print(f"  cluster {span:<9} {len(cpus)} x {c['core']:<12} {c['max_ghz']:.2f} GHz")
    print(f"  default  taskset {info['taskset_mask']} (cpu{info['mask_cpus'][0]}-{info['mask_cpus'][-1]}), "
          f"{info['threads']} thread: the fastest cluster of >= 2 CPUs")
    print(f"  thermal  {', '.join(info['cpu_thermal_zones']) or 'no CPU zone found: all zones'}")
    print(f"  benchmark_model {tool['installed']} at {tool['remote_path']} (sha256 {tool['sha256'][:16]}..., "
          f"version {tool['version']})")
    if was is not None and was[1] == "builtin":
        print(f"  note: this user profile now wins over the built-in {name} ({was[0]})")
    return 0


def format_check(info: dict[str, Any]) -> str:
    temps = info["temperatures_c"]
    freqs = info["frequencies_khz"]
    hottest = f"max {max(temps.values()):.1f} C (limit {info['thermal_limit_c']:g} C)" if temps \
        else "not readable"
    rows = [
        ("device", f"{info['device']} at {info['serial']}"),
        ("model", f"{info['model']} ({info['abi']}, Android {info['release']}, SDK {info['sdk']})"),
        ("cpu freq", ", ".join(f"{k} {v / 1e6:.2f} GHz" for k, v in freqs.items()) or "not readable"),
        ("temperature", hottest),
        ("benchmark", f"{info['benchmark_model']} " + ("present" if info["benchmark_model_present"]
                                                      else "MISSING (pushed on first use)")),
    ]
    return "\n".join(f"{k:<12}{v}" for k, v in rows)


def register(device_subparsers: argparse._SubParsersAction) -> None:
    """Add ``check`` to the ``lat device`` subcommands."""
    check = device_subparsers.add_parser(
        "check", help="connect to an android device and show its state",
        description="Connect over adb, then print the phone's model, ABI, SDK, CPU frequencies, "
        "temperatures and whether benchmark_model is installed.",
    )
    check.add_argument("--device", default="pixel4", help="android profile name or YAML path "
                       "(default pixel4)")
    cli_args.add_device_options(check, options=("serial",))
    check.add_argument("--key", metavar="PATH", help="adb key file (default $LATKIT_ADB_KEY or "
                       "~/.latkit/adbkey; created on first use)")
    cli_args.add_json(check, help="print the result as JSON")
    check.set_defaults(func=_cmd_check)

    add = device_subparsers.add_parser(
        "add", help="detect a phone over adb, install benchmark_model, write its profile",
        description="Connect to the phone at SERIAL; read its model, SoC, ABI and SDK (getprop), its "
        "CPU clusters (per-CPU cpuinfo_max_freq and related_cpus, core types from /proc/cpuinfo) and "
        "CPU thermal zones; choose a default CPU mask and thread count (one thread on the fastest "
        "cluster of at least two CPUs: a lone prime core is passed over); install benchmark_model "
        "(the given build, or one already on the phone) and check it runs; write "
        "$LATKIT_HOME/devices/NAME.yaml (default ~/.config/latkit).")
    add.add_argument("name", metavar="NAME", help="the device name to give the phone (e.g. my-pixel)")
    add.add_argument("--serial", required=True, help="adb serial: host:port (adb over TCP) or a USB serial")
    add.add_argument("--benchmark-model", type=Path, metavar="PATH",
                     help="host build of TFLite's benchmark_model to push (default: use the one "
                     "already on the phone)")
    add.add_argument("--key", metavar="PATH", help="adb key file (default $LATKIT_ADB_KEY or "
                     "~/.latkit/adbkey; created on first use)")
    add.add_argument("--auth-timeout", type=cli_args.POSITIVE_SECONDS, default=30.0, metavar="S",
                     help="seconds to accept the phone's 'Allow USB debugging?' prompt (default 30)")
    add.add_argument("--force", action="store_true", help="replace an existing user profile NAME")
    cli_args.add_json(add, help="print the written profile as JSON")
    add.set_defaults(func=_cmd_add)
