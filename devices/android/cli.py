"""``lat device check``: the Android subcommand of ``lat device``.

``check`` connects to a phone (or the emulator), prints its model, ABI, SDK, CPU frequencies,
temperatures and whether ``benchmark_model`` is installed. Thin (STYLE 12): adb-shell is loaded only
when the command connects. (``lat device emulate`` belongs to the emulator, not to the agent: see
``devices/cli.py``.)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from latkit import cli_args
from latkit.devices.android.agent import AndroidDevice


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
