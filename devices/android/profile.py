"""Android device profiles: the YAML schema, its validation, and the one loader of profile files.

``load_profile("pixel4")`` reads ``data/devices/pixel4.yaml`` (or any YAML path) and returns a
frozen ``AndroidProfile``; an unknown key, a missing key or a wrong type raises a ``DeviceError``
naming the file and the key. The agent (``android/agent.py``) and the ADB device emulator both read
profiles through it. The ``emulator:`` section belongs to the emulator: it is checked here only to be
a mapping and is handed over as ``AndroidProfile.emulator``, for the emulator to interpret.

This module imports nothing of the agent or its adb transport (only ``android/text.py``), so the
emulator can use it without them.

Profile schema (YAML mapping, checked by ``load_profile``: an unknown key or a wrong
type is a ``DeviceError`` naming the file and the key; ``?`` marks optional keys, ``|null`` keys
that may be null)::

    name: str                      # registry name, e.g. pixel4
    description?: str
    model: str                     # "Pixel 4"
    soc: str                       # "Snapdragon 855 (SM8150)"
    abi?: str                      # arm64-v8a
    cores?: [{cpus: [int], core: str, max_ghz: number, max_khz?: int}]   # clusters (max_khz exact)
    taskset_mask: str              # hex CPU mask for taskset, e.g. "70"
    threads: int                   # --num_threads (>= 1)
    delegate: str                  # default delegate: cpu | gpu | nnapi
    delegates?: [str]              # the delegates this phone offers (subset of cpu, gpu, nnapi)
    remote_dir: str                # absolute directory on the phone, e.g. /data/local/tmp/latkit
    benchmark_model:
      local_path: str|null         # host copy to push; null -> $LATKIT_BENCHMARK_MODEL
      remote_path: str             # where it lives on the phone
    connection?:
      serial?: str|null            # host:port (adb over TCP) or a USB serial; --serial overrides
      auth_timeout_s?: number      # time to accept the phone's "Allow USB debugging?" prompt
    thermal:
      zones: [str]                 # globs of thermal-zone temp files (millidegrees C)
      zone_types?: [str]           # keep only zones whose `type` is listed (e.g. cpu-1-0-usr)
      limit_c: number              # measure only below this temperature
      cooldown_max_s: number       # wait at most this long for it
      poll_s: number               # re-read temperatures this often while waiting
      on_hot?: str                 # wait_then_fail (default) | wait_then_measure (flagged)
    frequencies?: str              # glob of scaling_cur_freq files (kHz)
    protocol:                      # benchmark_model's flags; a ProtocolSettings passed in wins
      warmup_runs: int             #   --warmup_runs
      num_runs: int                #   --num_runs (a minimum; see min_secs/max_secs)
      min_secs: number             #   --min_secs
      max_secs: number             #   --max_secs (bounds each of warm-up and timed runs)
      warmup_min_secs?: number     #   --warmup_min_secs (default 0.05)
      cv_threshold?: number        #   re-measure above this std/avg (default 0.05)
      remeasure_on_high_cv?: bool
    retries: int                   # attempts in all for one operation when the link fails (>= 1)
    timeouts?:
      connect_s?: number           # TCP connect, handshake and ordinary transfers (10)
      command_s?: number           # an ordinary shell command (30)
      push_s?: number              # one push (300)
      benchmark_extra_s?: number   # added to 2 x max_secs for one benchmark_model run (120)
    detected?: {...}               # what `lat device add` read from the phone (kept as written)
    emulator?: {...}               # knobs for the ADB device emulator; ignored here

``SCHEMA`` below is the same thing as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from latkit.devices.android.text import Glob, excerpt
from latkit.devices.base import ProtocolSettings
from latkit.devices.paths import profile_files, profiles_dir
from latkit.errors import DeviceError

__all__ = ["CPU_PARTS", "SCHEMA", "AndroidProfile", "ProfileNotFoundError", "ThermalSettings", "Timeouts",
           "core_midr", "core_name", "load_profile", "profiles_dir"]

DELEGATES = ("cpu", "gpu", "nnapi")
ON_HOT = ("wait_then_fail", "wait_then_measure")

NUM = "number"
_CORE = {"cpus": ["int"], "core": "str", "max_ghz": NUM, "max_khz?": "int"}
SCHEMA: dict[str, Any] = {
    "name": "str", "description?": "str", "model": "str", "soc": "str", "abi?": "str",
    "cores?": [_CORE], "taskset_mask": "str", "threads": "int", "delegate": "str",
    "delegates?": ["str"], "remote_dir": "str",
    "benchmark_model": {"local_path": "str|null", "remote_path": "str"},
    "connection?": {"serial?": "str|null", "auth_timeout_s?": NUM},
    "thermal": {"zones": ["str"], "zone_types?": ["str"], "limit_c": NUM, "cooldown_max_s": NUM,
                "poll_s": NUM, "on_hot?": "str"},
    "frequencies?": "str",
    "protocol": {"warmup_runs": "int", "num_runs": "int", "min_secs": NUM, "max_secs": NUM,
                 "warmup_min_secs?": NUM, "cv_threshold?": NUM, "remeasure_on_high_cv?": "bool"},
    "retries": "int",
    "timeouts?": {"connect_s?": NUM, "command_s?": NUM, "push_s?": NUM, "benchmark_extra_s?": NUM},
    "detected?": "mapping",
    "emulator?": "mapping",
}

#: ARM MIDR (implementer, part) -> core name, as ``/proc/cpuinfo`` reports them (``CPU implementer``,
#: ``CPU part``). 0x41 is ARM; 0x51 is Qualcomm, whose Kryo 4xx cores report their own part numbers.
CPU_PARTS: dict[tuple[int, int], str] = {
    (0x41, 0xd03): "Cortex-A53", (0x41, 0xd05): "Cortex-A55", (0x41, 0xd09): "Cortex-A73",
    (0x41, 0xd0a): "Cortex-A75", (0x41, 0xd0b): "Cortex-A76", (0x41, 0xd0d): "Cortex-A77",
    (0x41, 0xd41): "Cortex-A78", (0x41, 0xd44): "Cortex-X1", (0x41, 0xd46): "Cortex-A510",
    (0x41, 0xd47): "Cortex-A710", (0x41, 0xd48): "Cortex-X2", (0x41, 0xd4d): "Cortex-A715",
    (0x41, 0xd4e): "Cortex-X3",
    (0x51, 0x804): "Cortex-A76", (0x51, 0x805): "Cortex-A55",  # Kryo 485 Gold / Silver (SM8150)
}


def core_name(implementer: int, part: int) -> str:
    """The core a MIDR names (``Cortex-A55``), or ``unknown (0x41:0xd99)``."""
    return CPU_PARTS.get((implementer, part), f"unknown (0x{implementer:x}:0x{part:03x})")


def core_midr(name: str) -> tuple[int, int] | None:
    """The ARM (implementer, part) of a core name, ARM's own numbers first; None if unknown."""
    for key, value in CPU_PARTS.items():
        if value == name:
            return key
    return None


def _type_ok(value: Any, kind: str) -> bool:
    if kind.endswith("|null"):
        return value is None or _type_ok(value, kind[: -len("|null")])
    return {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        NUM: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "mapping": lambda v: isinstance(v, dict),
    }[kind](value)


def _validate(data: Any, schema: Any, where: str, source: str) -> None:
    """Check ``data`` against ``schema`` (see SCHEMA); raise naming ``source`` and the key."""
    def fail(expected: str) -> DeviceError:
        return DeviceError(f"device profile {source}: key {where!r} must be {expected}, "
                           f"got {excerpt(repr(data), 80)}")

    if isinstance(schema, dict):
        if not isinstance(data, dict):
            raise fail("a mapping")
        known = {k.rstrip("?"): k.endswith("?") for k in schema}
        for key in data:
            if key not in known:
                raise DeviceError(f"device profile {source}: unknown key "
                                  f"{(where + '.' if where else '') + str(key)!r}; known keys here: "
                                  f"{', '.join(known)}")
        for key, optional in known.items():
            if key not in data:
                if not optional:
                    raise DeviceError(f"device profile {source}: missing key "
                                      f"{(where + '.' if where else '') + key!r}")
                continue
            sub = schema[key + ("?" if optional else "")]
            _validate(data[key], sub, f"{where}.{key}" if where else key, source)
    elif isinstance(schema, list):
        if not isinstance(data, list):
            raise fail("a list")
        for i, item in enumerate(data):
            _validate(item, schema[0], f"{where}[{i}]", source)
    elif not _type_ok(data, schema):
        raise fail({"str": "a string", "int": "an integer", NUM: "a number", "bool": "true/false",
                    "mapping": "a mapping"}.get(schema.split("|")[0], schema)
                   + (" or null" if schema.endswith("|null") else ""))


@dataclass(frozen=True)
class ThermalSettings:
    zones: tuple[str, ...]
    zone_types: tuple[str, ...]
    limit_c: float
    cooldown_max_s: float
    poll_s: float
    on_hot: str = "wait_then_fail"


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 10.0
    command_s: float = 30.0
    push_s: float = 300.0
    benchmark_extra_s: float = 120.0


@dataclass(frozen=True)
class AndroidProfile:
    """A validated device profile (see the module docstring for the YAML schema)."""

    name: str
    model: str
    soc: str
    source: str
    taskset_mask: str
    threads: int
    delegate: str
    delegates: tuple[str, ...]
    remote_dir: str
    benchmark_local_path: str | None
    benchmark_remote_path: str
    thermal: ThermalSettings
    protocol: ProtocolSettings
    retries: int
    timeouts: Timeouts
    serial: str | None = None
    auth_timeout_s: float = 30.0
    frequencies: str = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"
    abi: str | None = None
    description: str = ""
    cores: tuple[dict[str, Any], ...] = ()
    #: the ``emulator:`` section as written (the ADB device emulator's knobs; the agent ignores it)
    emulator: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> AndroidProfile:
        _validate(data, SCHEMA, "", source)

        def bad(key: str, expected: str, value: Any) -> DeviceError:
            return DeviceError(f"device profile {source}: key {key!r} must be {expected}, "
                               f"got {value!r}")

        mask = data["taskset_mask"].lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]+", mask) or int(mask, 16) == 0:
            raise bad("taskset_mask", "a non-zero hex CPU mask such as '70'", data["taskset_mask"])
        delegates = tuple(data.get("delegates", DELEGATES))
        if not set(delegates) <= set(DELEGATES):
            raise bad("delegates", f"a subset of {list(DELEGATES)}", list(delegates))
        if data["delegate"] not in delegates:
            raise bad("delegate", f"one of {list(delegates)}", data["delegate"])
        for key in ("remote_dir",):
            if not data[key].startswith("/"):
                raise bad(key, "an absolute path on the phone", data[key])
        if not data["benchmark_model"]["remote_path"].startswith("/"):
            raise bad("benchmark_model.remote_path", "an absolute path on the phone",
                      data["benchmark_model"]["remote_path"])
        if data["threads"] < 1:
            raise bad("threads", "an integer >= 1", data["threads"])
        if data["retries"] < 1:
            raise bad("retries", "an integer >= 1 (attempts in all)", data["retries"])
        th = data["thermal"]
        for key in ("cooldown_max_s", "poll_s"):
            if th[key] < 0 or (key == "poll_s" and th[key] == 0):
                raise bad(f"thermal.{key}", "a positive number", th[key])
        for key, patterns in (("thermal.zones", th["zones"]),
                              ("frequencies", [data.get("frequencies", cls.frequencies)])):
            for pattern in patterns:
                if not pattern.startswith("/"):
                    raise bad(key, "absolute path globs on the phone", pattern)
                try:
                    Glob(pattern)
                except DeviceError as exc:
                    raise DeviceError(f"device profile {source}: key {key!r}: {exc}") from None
        on_hot = th.get("on_hot", "wait_then_fail")
        if on_hot not in ON_HOT:
            raise bad("thermal.on_hot", f"one of {list(ON_HOT)}", on_hot)
        pr = data["protocol"]
        try:
            protocol = ProtocolSettings(
                warmup_runs=pr["warmup_runs"], warmup_s=float(pr.get("warmup_min_secs", 0.05)),
                min_runs=pr["num_runs"], min_time_s=float(pr["min_secs"]),
                max_time_s=float(pr["max_secs"]),
                cv_threshold=float(pr.get("cv_threshold", ProtocolSettings.cv_threshold)),
                remeasure_on_high_cv=pr.get("remeasure_on_high_cv", True),
                max_runs=max(ProtocolSettings.max_runs, pr["num_runs"]),
            )
        except DeviceError as exc:
            raise DeviceError(f"device profile {source}: key 'protocol': {exc}") from None
        conn = data.get("connection", {})
        tmo = data.get("timeouts", {})
        return cls(
            name=data["name"], model=data["model"], soc=data["soc"], source=source,
            taskset_mask=mask, threads=data["threads"], delegate=data["delegate"],
            delegates=delegates, remote_dir=data["remote_dir"].rstrip("/") or "/",
            benchmark_local_path=data["benchmark_model"]["local_path"],
            benchmark_remote_path=data["benchmark_model"]["remote_path"],
            thermal=ThermalSettings(zones=tuple(th["zones"]),
                                    zone_types=tuple(th.get("zone_types") or ()),
                                    limit_c=float(th["limit_c"]),
                                    cooldown_max_s=float(th["cooldown_max_s"]),
                                    poll_s=float(th["poll_s"]), on_hot=on_hot),
            protocol=protocol, retries=data["retries"],
            timeouts=Timeouts(**{k: float(v) for k, v in tmo.items()}),
            serial=conn.get("serial"), auth_timeout_s=float(conn.get("auth_timeout_s", 30.0)),
            frequencies=data.get("frequencies", cls.frequencies), abi=data.get("abi"),
            description=data.get("description", ""),
            cores=tuple(data.get("cores", ())),
            emulator=dict(data.get("emulator") or {}),
        )


class ProfileNotFoundError(DeviceError):
    """No profile of that name ships in ``data/devices``, and it is not a YAML file."""


def load_profile(name_or_path: str | Path) -> AndroidProfile:
    """A profile by registry name (``pixel4``: the user's ``$LATKIT_HOME/devices/pixel4.yaml`` if
    there is one, else the built-in) or by YAML file path, validated."""
    path = Path(str(name_or_path)).expanduser()
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        found = profile_files().get(str(name_or_path))
        path = found[0] if found else profiles_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProfileNotFoundError(f"no Android device profile {name_or_path!r} (looked for {path}); "
                              f"see `lat device list`")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeviceError(f"device profile {path} is not readable YAML: "
                          f"{excerpt(str(exc), 160)}") from None
    return AndroidProfile.from_mapping(data, str(path))
