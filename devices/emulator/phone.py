"""The emulated phone behind the ADB emulator: profile, properties, thermal model, counters.

Nothing here runs host commands; the filesystem is ``filesystem.PhoneFS``.

Thermal model: every zone reads ``ambient + excess * factor`` millidegrees. Benchmark work adds
``heat_c_per_busy_s`` degrees of excess per busy second (capped at ``max_excess_c``); idle time
lets the excess decay exponentially with time constant ``cool_tau_s``. The ``temp=``/
``temp-decay=`` faults (see ``faults.FaultSpec``) force a starting temperature that either stays (no
decay given) or falls linearly by ``temp-decay`` degrees per idle second. Above ``throttle_mc`` the
big cores' ``scaling_cur_freq`` is reduced (only the reported frequency: the emulator never slows
inference down artificially).

Profile: ``PhoneProfile.load("pixel4")`` reads ``latkit/data/devices/pixel4.yaml`` (or a YAML path)
through the android package's one strict loader (``devices/android/profile.py``) and takes what the
phone claims to be from it: ``model``, ``soc`` (its ``SM####`` part, as ``ro.soc.model`` reports it),
``abi``, the per-CPU maximum frequencies from ``cores`` and the CPU thermal zones from
``thermal.zone_types``. The profile's ``emulator:`` section holds this module's knobs: any field of
``PhoneProfile`` (``format``, ``preinstalled``, ``has_gpu``, ``sdk``, ``release``, ``thermal_zones``
as names or ``{type, factor}`` mappings, ``cpu_max_khz``...). ``PhoneProfile()`` is a built-in Pixel 4.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latkit.devices.android.profile import (
    AndroidProfile,
    ProfileNotFoundError,
    core_midr,
    load_profile,
)
from latkit.devices.emulator.filesystem import PhoneFS
from latkit.errors import DeviceError

__all__ = ["EmulatedPhone", "EmulatorCounters", "PhoneProfile", "ThermalModel"]

PIXEL4_CPU_MAX_KHZ = (1785600,) * 4 + (2419200,) * 3 + (2841600,)
#: what a Pixel 4's /proc/cpuinfo says per CPU (Qualcomm's Kryo 485 Silver / Gold part numbers)
PIXEL4_CPU_PARTS = ("0x51:0x805",) * 4 + ("0x51:0x804",) * 4
PIXEL4_ZONES = tuple(
    [(f"cpu-0-{i}-usr", 1.0) for i in range(4)]
    + [(f"cpu-1-{i}-usr", 1.0) for i in range(4)]
    + [("gpuss-0-usr", 0.8), ("skin-therm", 0.5), ("battery", 0.3)]
)
BENCH_FORMATS = ("modern", "legacy", "nostats")


@dataclass(frozen=True)
class PhoneProfile:
    """What the emulated phone claims to be, plus the emulator's own knobs."""

    name: str = "pixel4"
    model: str = "Pixel 4"
    product: str = "flame"
    manufacturer: str = "Google"
    soc: str = "SM8150"
    board: str = "msmnile"
    abi: str = "arm64-v8a"
    sdk: int = 33
    release: str = "13"
    cpu_max_khz: tuple[int, ...] = PIXEL4_CPU_MAX_KHZ
    #: per CPU, "implementer:part" as /proc/cpuinfo reports it (MIDR fields, hex)
    cpu_parts: tuple[str, ...] = PIXEL4_CPU_PARTS
    thermal_zones: tuple[tuple[str, float], ...] = PIXEL4_ZONES
    # emulator knobs
    ambient_mc: int = 35000
    heat_c_per_busy_s: float = 0.2
    cool_tau_s: float = 30.0
    max_excess_c: float = 25.0
    throttle_mc: int = 45000
    format: str = "modern"  # benchmark_model output: modern | legacy | nostats
    preinstalled: bool = False  # benchmark_model also on PATH, no push needed
    has_gpu: bool = False  # --use_gpu/--use_nnapi fail loudly unless set (no fake numbers)

    def __post_init__(self) -> None:
        if self.format not in BENCH_FORMATS:
            raise DeviceError(
                f"emulator profile format must be one of {BENCH_FORMATS}, got {self.format!r}"
            )
        if not self.cpu_max_khz or not self.thermal_zones:
            raise DeviceError("emulator profile needs at least one CPU and one thermal zone")
        if self.cpu_parts == PIXEL4_CPU_PARTS and len(self.cpu_max_khz) != len(PIXEL4_CPU_PARTS):
            # only frequencies given: Qualcomm's Kryo parts, little (slowest) CPUs Silver, others Gold
            little = min(self.cpu_max_khz)
            object.__setattr__(self, "cpu_parts", tuple(
                "0x51:0x805" if khz == little else "0x51:0x804" for khz in self.cpu_max_khz))
        if len(self.cpu_parts) != len(self.cpu_max_khz) or not all(
                re.fullmatch(r"0x[0-9a-f]{2}:0x[0-9a-f]{3}", p) for p in self.cpu_parts):
            raise DeviceError(f"emulator profile {self.name}: cpu_parts needs one 'implementer:part' "
                              f"(e.g. 0x41:0xd05) per CPU ({len(self.cpu_max_khz)}), got {self.cpu_parts!r}")

    def replace(self, **changes: Any) -> PhoneProfile:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, name_or_path: str | Path | PhoneProfile) -> PhoneProfile:
        """A profile by name (``pixel4``, looked up in ``latkit/data/devices``) or YAML path."""
        if isinstance(name_or_path, PhoneProfile):
            return name_or_path
        try:
            profile = load_profile(name_or_path)
        except ProfileNotFoundError as exc:
            raise DeviceError(f"unknown emulator profile {str(name_or_path)!r}: {exc}") from None
        return cls.from_android(profile)

    @classmethod
    def from_android(cls, profile: AndroidProfile) -> PhoneProfile:
        """What a (validated) agent profile says about the phone, then its ``emulator:`` knobs."""
        kw: dict[str, Any] = {"name": profile.name, "model": profile.model, "soc": profile.soc}
        if profile.abi is not None:
            kw["abi"] = profile.abi
        soc_model = re.search(r"\b(SM\d{4})\b", profile.soc)
        if soc_model:
            kw["soc"] = soc_model.group(1)  # ro.soc.model style
        freqs = _cores_khz(profile.cores)
        if freqs:
            kw["cpu_max_khz"] = freqs
            kw["cpu_parts"] = _cores_parts(profile.cores)
        types = list(profile.thermal.zone_types)
        if types:  # the agent's CPU sensors, then the rest of a Pixel 4's zones
            extras = tuple(z for z in PIXEL4_ZONES if not z[0].startswith("cpu") and z[0] not in types)
            kw["thermal_zones"] = tuple((t, 1.0) for t in types) + extras
        kw.update(_knobs(profile.emulator))
        return cls(**kw)


def _knobs(section: dict[str, Any]) -> dict[str, Any]:
    """The ``emulator:`` section as ``PhoneProfile`` fields; an unknown knob is an error."""
    names = {f.name for f in dataclasses.fields(PhoneProfile)}
    knobs: dict[str, Any] = {}
    for key, value in section.items():
        if key not in names:
            raise DeviceError(f"unknown emulator knob {key!r}; known: {sorted(names)}")
        knobs[key] = value
    if "thermal_zones" in knobs:
        zones = knobs["thermal_zones"]
        if not isinstance(zones, list):
            raise DeviceError(f"emulator knob thermal_zones must be a list, got {zones!r}")
        knobs["thermal_zones"] = tuple(_zone(z) for z in zones)
    if "cpu_max_khz" in knobs:
        knobs["cpu_max_khz"] = tuple(int(f) for f in knobs["cpu_max_khz"])
    if "cpu_parts" in knobs:
        knobs["cpu_parts"] = tuple(str(p).lower() for p in knobs["cpu_parts"])
    return knobs


def _cores_khz(cores: Any) -> tuple[int, ...] | None:
    """``cores: [{cpus: [0, 1], max_ghz: 1.78}, ...]`` -> per-CPU kHz; within 1% of the Pixel 4
    table it is that table (the YAML rounds 1.7856 GHz to 1.78)."""
    if not isinstance(cores, (list, tuple)) or not cores:
        return None
    khz: dict[int, int] = {}
    for c in cores:
        if not isinstance(c, dict) or "cpus" not in c or "max_ghz" not in c:
            raise DeviceError(f"a 'cores' entry needs cpus and max_ghz, got {c!r}")
        for cpu in c["cpus"]:
            khz[int(cpu)] = int(c["max_khz"]) if "max_khz" in c else int(round(float(c["max_ghz"]) * 1e6))
    table = tuple(khz[i] for i in sorted(khz))
    if len(table) == len(PIXEL4_CPU_MAX_KHZ) and all(
        abs(a - b) <= 0.01 * b for a, b in zip(table, PIXEL4_CPU_MAX_KHZ)
    ):
        return PIXEL4_CPU_MAX_KHZ
    return table


def _cores_parts(cores: Any) -> tuple[str, ...]:
    """``cores: [{cpus: [0, 1], core: Cortex-A55}, ...]`` -> per-CPU ``implementer:part``."""
    parts: dict[int, str] = {}
    for c in cores:
        midr = core_midr(str(c.get("core")))
        if midr is None:
            raise DeviceError(f"the emulator knows no MIDR part for core {c.get('core')!r}; name a "
                              f"known core or give the emulator knob cpu_parts")
        for cpu in c["cpus"]:
            parts[int(cpu)] = f"0x{midr[0]:02x}:0x{midr[1]:03x}"
    return tuple(parts[i] for i in sorted(parts))


def _zone(entry: Any) -> tuple[str, float]:
    if isinstance(entry, str):
        return entry, (1.0 if entry.startswith("cpu") else 0.5)
    if isinstance(entry, dict) and "type" in entry:
        default = 1.0 if str(entry["type"]).startswith("cpu") else 0.5
        return str(entry["type"]), float(entry.get("factor", default))
    raise DeviceError(f"thermal zone entry must be a name or {{type: ...}}, got {entry!r}")


@dataclass
class EmulatorCounters:
    """Counters tests read (``server.counters``); updated under ``lock``."""

    connections_accepted: int = 0
    auth_tokens_sent: int = 0
    auth_signatures_ok: int = 0
    auth_keys_accepted: int = 0
    streams_opened: int = 0
    commands_run: int = 0
    benchmarks_started: int = 0
    benchmarks_completed: int = 0
    files_pushed: int = 0
    files_pulled: int = 0
    drops: int = 0
    hangs: int = 0
    crashes: int = 0
    taskset_masks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, by: int = 1) -> int:
        with self.lock:
            value = getattr(self, name) + by
            setattr(self, name, value)
            return value

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "lock"}


class ThermalModel:
    """Excess temperature over ambient, in millidegrees; see the module docstring."""

    def __init__(
        self,
        profile: PhoneProfile,
        forced_mc: int | None = None,
        decay_c_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ambient_mc = profile.ambient_mc
        self.heat_mc_per_s = profile.heat_c_per_busy_s * 1000.0
        self.tau_s = profile.cool_tau_s
        self.max_excess_mc = profile.max_excess_c * 1000.0
        self.decay_mc_per_s = None if decay_c_per_s is None else decay_c_per_s * 1000.0
        start = 0.0 if forced_mc is None else float(forced_mc - self.ambient_mc)
        self.floor_mc = start if (forced_mc is not None and decay_c_per_s is None) else 0.0
        self.excess_mc = start
        self._clock = clock
        self._t = clock()
        self._busy = 0
        self._lock = threading.Lock()

    def _advance(self) -> None:
        now = self._clock()
        dt, self._t = now - self._t, now
        if self._busy or dt <= 0 or self.excess_mc <= self.floor_mc:
            return
        if self.decay_mc_per_s is not None:
            self.excess_mc = max(self.floor_mc, self.excess_mc - self.decay_mc_per_s * dt)
        else:
            above = (self.excess_mc - self.floor_mc) * math.exp(-dt / self.tau_s)
            self.excess_mc = self.floor_mc + above

    def begin_work(self) -> None:
        with self._lock:
            self._advance()
            self._busy += 1

    def end_work(self, busy_s: float) -> None:
        with self._lock:
            self._advance()
            self._busy = max(0, self._busy - 1)
            self.excess_mc = min(self.max_excess_mc, self.excess_mc + self.heat_mc_per_s * busy_s)

    def zone_mc(self, factor: float) -> int:
        with self._lock:
            self._advance()
            return int(round(self.ambient_mc + self.excess_mc * factor))


class EmulatedPhone:
    """One phone: profile, filesystem, properties, thermal state and counters."""

    def __init__(
        self,
        profile: PhoneProfile,
        root: Path,
        serial: str,
        counters: EmulatorCounters,
        thermal: ThermalModel,
    ) -> None:
        self.profile = profile
        self.serial = serial
        self.counters = counters
        self.thermal = thermal
        self.bench_lock = threading.Lock()  # one benchmark at a time, as on a real phone's cores
        self.props = self._props()
        self.fs = PhoneFS(root, self._virtual_files())

    def _props(self) -> dict[str, str]:
        p = self.profile
        return {
            "ro.product.model": p.model,
            "ro.product.name": p.product,
            "ro.product.device": p.product,
            "ro.product.brand": p.manufacturer.lower(),
            "ro.product.manufacturer": p.manufacturer,
            "ro.product.cpu.abi": p.abi,
            "ro.product.cpu.abilist": p.abi,
            "ro.board.platform": p.board,
            "ro.hardware": p.product,
            "ro.build.version.sdk": str(p.sdk),
            "ro.build.version.release": p.release,
            "ro.build.type": "user",
            "ro.debuggable": "0",
            "ro.serialno": self.serial,
            "sys.boot_completed": "1",
            "ro.kernel.qemu": "0",
            # ro.soc.model exists from Android 12 (SDK 31); older phones name the SoC in ro.board.platform
            **({"ro.soc.model": p.soc} if p.soc and p.sdk >= 31 else {}),
        }

    def cpu_cur_khz(self, cpu: int) -> int:
        max_khz = self.profile.cpu_max_khz[cpu]
        if max_khz == min(self.profile.cpu_max_khz):  # the little cluster is not throttled here
            return max_khz
        temp = max(self.thermal.zone_mc(f) for _, f in self.profile.thermal_zones)
        over = temp - self.profile.throttle_mc
        if over <= 0:
            return max_khz
        return int(max_khz * max(0.5, 1.0 - over / 20000.0)) // 100 * 100

    def _virtual_files(self) -> dict[str, Callable[[], bytes]]:
        files: dict[str, Callable[[], bytes]] = {"/dev/null": lambda: b""}
        for i, (ztype, factor) in enumerate(self.profile.thermal_zones):
            base = f"/sys/class/thermal/thermal_zone{i}"
            files[base + "/type"] = lambda t=ztype: f"{t}\n".encode()
            files[base + "/temp"] = lambda f=factor: f"{self.thermal.zone_mc(f)}\n".encode()
        n = len(self.profile.cpu_max_khz)
        policies = self.policies()
        for c, max_khz in enumerate(self.profile.cpu_max_khz):
            base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
            related = " ".join(str(x) for x in next(p for p in policies if c in p))
            files[base + "/related_cpus"] = lambda r=related: f"{r}\n".encode()
            files[base + "/affected_cpus"] = lambda r=related: f"{r}\n".encode()
            files[base + "/scaling_cur_freq"] = lambda c=c: f"{self.cpu_cur_khz(c)}\n".encode()
            files[base + "/scaling_max_freq"] = lambda m=max_khz: f"{m}\n".encode()
            files[base + "/cpuinfo_max_freq"] = lambda m=max_khz: f"{m}\n".encode()
            files[base + "/cpuinfo_min_freq"] = lambda: b"300000\n"
            files[base + "/scaling_governor"] = lambda: b"schedutil\n"
        files["/sys/devices/system/cpu/online"] = lambda: f"0-{n - 1}\n".encode()
        files["/sys/devices/system/cpu/possible"] = lambda: f"0-{n - 1}\n".encode()
        files["/proc/cpuinfo"] = lambda: self._cpuinfo().encode()
        return files

    def policies(self) -> list[tuple[int, ...]]:
        """The cpufreq policies: runs of consecutive CPUs with the same maximum frequency."""
        out: list[list[int]] = []
        for c, khz in enumerate(self.profile.cpu_max_khz):
            if out and self.profile.cpu_max_khz[out[-1][-1]] == khz:
                out[-1].append(c)
            else:
                out.append([c])
        return [tuple(p) for p in out]

    def _cpuinfo(self) -> str:
        lines = []
        for c, midr in enumerate(self.profile.cpu_parts):
            implementer, part = midr.split(":")
            lines += [f"processor\t: {c}", "BogoMIPS\t: 38.40",
                      "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                      "asimdrdm lrcpc dcpop asimddp",
                      f"CPU implementer\t: {implementer}", "CPU architecture: 8", "CPU variant\t: 0x1",
                      f"CPU part\t: {part}", "CPU revision\t: 0", ""]
        if self.profile.cpu_parts[0].startswith("0x51"):
            lines.append(f"Hardware\t: Qualcomm Technologies, Inc {self.profile.board.upper()}")
        return "\n".join(lines) + "\n"
