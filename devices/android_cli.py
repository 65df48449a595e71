"""``lat device check`` and ``lat device emulate``: the Android subcommands of ``lat device``.

``check`` connects to a phone (or the emulator), prints its model, ABI, SDK, CPU frequencies,
temperatures and whether ``benchmark_model`` is installed. ``emulate`` serves the ADB device
emulator in the foreground. Thin (STYLE 12): no adb or runtime import at module level.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _cmd_check(args: argparse.Namespace) -> int:
    from latkit.devices.android import AndroidDevice

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


def _cmd_emulate(args: argparse.Namespace) -> int:
    from latkit.devices.adb_emulator import serve_forever_cli

    return serve_forever_cli(args)


def register(device_subparsers: argparse._SubParsersAction) -> None:
    """Add ``check`` and ``emulate`` to the ``lat device`` subcommands."""
    check = device_subparsers.add_parser(
        "check", help="connect to an android device and show its state",
        description="Connect over adb, then print the phone's model, ABI, SDK, CPU frequencies, "
        "temperatures and whether benchmark_model is installed.",
    )
    check.add_argument("--device", default="pixel4", help="android profile name or YAML path "
                       "(default pixel4)")
    check.add_argument("--serial", help="HOST:PORT (adb over TCP) or a USB serial")
    check.add_argument("--key", metavar="PATH", help="adb key file (default $LATKIT_ADB_KEY or "
                       "~/.latkit/adbkey; created on first use)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=_cmd_check)

    emu = device_subparsers.add_parser(
        "emulate", help="serve the ADB device emulator (a phone made of real host inference)",
        description="Serve an emulated Android phone over the ADB protocol: it runs pushed .tflite "
        "files with LiteRT on this CPU and prints benchmark_model's real output.",
    )
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu.add_argument("--port", type=int, default=0,
                     help="TCP port (default 0: pick a free one and print it; avoid 5555-5585)")
    emu.add_argument("--profile", default="pixel4", help="device profile (default pixel4)")
    emu.add_argument("--faults", default="", metavar="SPEC", help="fault injection spec")
    emu.add_argument("--root", metavar="DIR", help="directory holding the phone's files "
                     "(default: a temporary one)")
    emu.add_argument("--no-auth", action="store_true", help="accept connections without RSA auth")
    emu.set_defaults(func=_cmd_emulate)
