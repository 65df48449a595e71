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

from latkit.devices.android.agent import AndroidDevice, measurement_from_result
from latkit.devices.android.parse import (
    BenchmarkCrashError,
    BenchmarkFlagError,
    BenchmarkResult,
    parse_benchmark_output,
)
from latkit.devices.android.profile import AndroidProfile, load_profile

__all__ = [
    "AndroidDevice",
    "AndroidProfile",
    "BenchmarkCrashError",
    "BenchmarkFlagError",
    "BenchmarkResult",
    "load_profile",
    "measurement_from_result",
    "parse_benchmark_output",
]
