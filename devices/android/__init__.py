"""latkit.devices.android: phones over adb, measured with TFLite's ``benchmark_model``.

* ``agent.py``: ``AndroidDevice``, the ``Device`` for one phone (push, cool down, run, parse, retry);
* ``adb.py``: the adb link (host key, shell with exit status, push), on the ``adb-shell`` client;
* ``parse.py`` (+ ``parse_stats.py``, ``parse_ops.py``): strict parsers of ``benchmark_model``'s output;
* ``profile.py``: the profile schema and its one strict loader (``data/devices/<name>.yaml``);
* ``cli.py``: ``lat device check``.

Importing this package loads no adb client: ``adb_shell`` (the ``android`` extra) is imported when a
device first connects. The ADB device emulator (``latkit.devices.emulator``) is a separate package
that reads profiles through ``profile.py``; nothing here imports it.
"""

import importlib
from typing import Any

#: public name -> the module of this package that defines it (imported on first use, PEP 562, so
#: that reading a profile, as ``lat --help`` and the emulator do, does not load the agent)
_EXPORTS = {
    "AndroidDevice": "agent",
    "measurement_from_result": "agent",
    "BenchmarkCrashError": "parse",
    "BenchmarkFlagError": "parse",
    "BenchmarkResult": "parse",
    "parse_benchmark_output": "parse",
    "AndroidProfile": "profile",
    "load_profile": "profile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
