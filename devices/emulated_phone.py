"""The emulated phone behind the ADB emulator: profile, filesystem, properties, thermal model.

Nothing here runs host commands. The filesystem is a host directory (``root``) that stands for the
phone's ``/``; only ``/data/local/tmp`` and ``/sdcard`` are writable (as for Android's shell user);
``/sys`` (thermal zones, cpufreq) and ``/proc`` are virtual read-only files computed on each read.
Emulated paths are normalised before they touch the host, so no path can leave ``root``.

Thermal model: every zone reads ``ambient + excess * factor`` millidegrees. Benchmark work adds
``heat_c_per_busy_s`` degrees of excess per busy second (capped at ``max_excess_c``); idle time
lets the excess decay exponentially with time constant ``cool_tau_s``. The ``temp=``/
``temp-decay=`` faults (see ``FaultSpec`` in ``adb_emulator.py``) force a starting temperature that
either stays (no decay given) or falls linearly by ``temp-decay`` degrees per idle second. Above
``throttle_mc`` the big cores' ``scaling_cur_freq`` is reduced (only the reported frequency: the
emulator never slows inference down artificially).

Profile: ``PhoneProfile.load("pixel4")`` reads ``latkit/data/devices/pixel4.yaml`` when present
(fields ``name``, ``model``, ``soc``, ``abi``, ``sdk``, ``thermal_zones``, ``cpu_max_khz``, and an
optional ``emulator:`` mapping with this module's knobs), falling back to built-in Pixel 4 values.
"""

from __future__ import annotations

import dataclasses
import math
import os
import posixpath
import re
import shutil
import stat as stat_mod
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from latkit.devices.adb_protocol import FileStat
from latkit.errors import DeviceError

PIXEL4_CPU_MAX_KHZ = (1785600,) * 4 + (2419200,) * 3 + (2841600,)
PIXEL4_ZONES = tuple(
    [(f"cpu-0-{i}-usr", 1.0) for i in range(4)]
    + [(f"cpu-1-{i}-usr", 1.0) for i in range(4)]
    + [("gpuss-0-usr", 0.8), ("skin-therm", 0.5), ("battery", 0.3)]
)
WRITABLE_PREFIXES = ("/data/local/tmp", "/sdcard")
REAL_DIRS = ("/data/local/tmp", "/sdcard", "/system/bin", "/vendor/bin")
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

    def replace(self, **changes: Any) -> "PhoneProfile":
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, name_or_path: "str | Path | PhoneProfile") -> "PhoneProfile":
        """A profile by name (``pixel4``, looked up in ``latkit/data/devices``) or YAML path."""
        if isinstance(name_or_path, PhoneProfile):
            return name_or_path
        path = Path(str(name_or_path))
        if not path.is_file():
            path = Path(__file__).resolve().parent.parent / "data" / "devices" / f"{name_or_path}.yaml"
        if path.is_file():
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise DeviceError(f"device profile {path} must be a YAML mapping")
            return cls.from_mapping(data, default_name=path.stem)
        if str(name_or_path) == "pixel4":
            return cls()
        raise DeviceError(
            f"unknown emulator profile {name_or_path!r}: expected 'pixel4' or a YAML file path"
        )

    @classmethod
    def from_mapping(cls, data: dict[str, Any], default_name: str = "pixel4") -> "PhoneProfile":
        """Read the fields this emulator needs from a device YAML; everything is optional."""
        kw: dict[str, Any] = {"name": str(data.get("name", default_name))}
        for key in ("model", "soc", "abi", "manufacturer", "board", "product", "release"):
            if data.get(key) is not None:
                kw[key] = str(data[key])
        if data.get("sdk") is not None:
            kw["sdk"] = int(data["sdk"])
        if kw.get("soc") and re.search(r"\b(SM\d{4})\b", kw["soc"]):
            kw["soc"] = re.search(r"\b(SM\d{4})\b", kw["soc"]).group(1)  # ro.soc.model style
        freqs = data.get("cpu_max_khz") or data.get("cpu_freqs_khz") or _cores_khz(data.get("cores"))
        if isinstance(freqs, (list, tuple)) and freqs:
            kw["cpu_max_khz"] = tuple(int(f) for f in freqs)
        zones = data.get("thermal_zones")
        thermal = data.get("thermal")
        if isinstance(zones, list) and zones:
            kw["thermal_zones"] = tuple(_zone(z) for z in zones)
        elif isinstance(thermal, dict) and isinstance(thermal.get("zone_types"), list) and thermal["zone_types"]:
            types = [str(t) for t in thermal["zone_types"]]  # the agent's CPU sensors, then the rest
            extras = tuple(z for z in PIXEL4_ZONES if not z[0].startswith("cpu") and z[0] not in types)
            kw["thermal_zones"] = tuple((t, 1.0) for t in types) + extras
        emu = data.get("emulator") or {}
        if not isinstance(emu, dict):
            raise DeviceError("the 'emulator' section of a device profile must be a mapping")
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in emu.items():
            if key not in names:
                raise DeviceError(f"unknown emulator knob {key!r}; known: {sorted(names)}")
            kw[key] = value
        return cls(**kw)


def _cores_khz(cores: Any) -> tuple[int, ...] | None:
    """``cores: [{cpus: [0, 1], max_ghz: 1.78}, ...]`` -> per-CPU kHz; within 1% of the Pixel 4
    table it is that table (the YAML rounds 1.7856 GHz to 1.78)."""
    if not isinstance(cores, list) or not cores:
        return None
    khz: dict[int, int] = {}
    for c in cores:
        if not isinstance(c, dict) or "cpus" not in c or "max_ghz" not in c:
            raise DeviceError(f"a 'cores' entry needs cpus and max_ghz, got {c!r}")
        for cpu in c["cpus"]:
            khz[int(cpu)] = int(round(float(c["max_ghz"]) * 1e6))
    table = tuple(khz[i] for i in sorted(khz))
    if len(table) == len(PIXEL4_CPU_MAX_KHZ) and all(
        abs(a - b) <= 0.01 * b for a, b in zip(table, PIXEL4_CPU_MAX_KHZ)
    ):
        return PIXEL4_CPU_MAX_KHZ
    return table


def _zone(entry: Any) -> tuple[str, float]:
    if isinstance(entry, str):
        return entry, (1.0 if entry.startswith("cpu") else 0.5)
    if isinstance(entry, dict) and "type" in entry:
        return str(entry["type"]), float(entry.get("factor", 1.0 if str(entry["type"]).startswith("cpu") else 0.5))
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


class FsError(Exception):
    """A filesystem error with the strerror text a toybox tool would print."""


class PhoneFS:
    """The emulated filesystem: host directory ``root`` for ``/`` plus virtual read-only files."""

    def __init__(self, root: Path, virtual: dict[str, Callable[[], bytes]]) -> None:
        self.root = Path(os.path.realpath(root))
        self.virtual = virtual
        self.virtual_dirs = {"/"}
        for p in list(virtual) + list(REAL_DIRS):
            while p != "/":
                p = posixpath.dirname(p)
                self.virtual_dirs.add(p)
        for d in REAL_DIRS:
            self.host(d).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def norm(path: str, cwd: str = "/") -> str:
        joined = posixpath.normpath(posixpath.join(cwd, path))
        return "/" + joined.lstrip("/")

    def host(self, path: str) -> Path:
        p = self.norm(path)
        target = self.root / p.lstrip("/") if p != "/" else self.root
        real = os.path.realpath(target)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise FsError("Permission denied")
        return target

    @staticmethod
    def writable(path: str) -> bool:
        return any(path == w or path.startswith(w + "/") for w in WRITABLE_PREFIXES)

    def exists(self, path: str) -> bool:
        return path in self.virtual or path in self.virtual_dirs or self.host(path).exists()

    def isdir(self, path: str) -> bool:
        return path in self.virtual_dirs or (path not in self.virtual and self.host(path).is_dir())

    def isfile(self, path: str) -> bool:
        return path in self.virtual or (path not in self.virtual_dirs and self.host(path).is_file())

    def listdir(self, path: str) -> list[str]:
        if not self.isdir(path):
            raise FsError("Not a directory" if self.exists(path) else "No such file or directory")
        names = set()
        prefix = path.rstrip("/") + "/"
        for p in list(self.virtual) + list(self.virtual_dirs):
            if p.startswith(prefix) and p != path:
                names.add(p[len(prefix):].split("/", 1)[0])
        h = self.host(path)
        if h.is_dir():
            names.update(os.listdir(h))
        return sorted(names)

    def read(self, path: str) -> bytes:
        if path in self.virtual:
            return self.virtual[path]()
        if self.isdir(path):
            raise FsError("Is a directory")
        h = self.host(path)
        if not h.is_file():
            raise FsError("No such file or directory")
        return h.read_bytes()

    def stat(self, path: str) -> FileStat:
        if path in self.virtual:
            return FileStat(stat_mod.S_IFREG | 0o644, 4096, int(time.time()), uid=0, gid=0)
        h = self.host(path)
        if h.exists():
            st = h.stat()
            kind = stat_mod.S_IFDIR if h.is_dir() else stat_mod.S_IFREG
            return FileStat(kind | (st.st_mode & 0o777), st.st_size if kind == stat_mod.S_IFREG else 4096,
                            int(st.st_mtime), ino=st.st_ino, nlink=st.st_nlink)
        if path in self.virtual_dirs:
            return FileStat(stat_mod.S_IFDIR | 0o755, 4096, 0, uid=0, gid=0)
        raise FsError("No such file or directory")

    def _check_write(self, path: str) -> Path:
        if not self.writable(path):
            denied = any(path == d or path.startswith(d + "/") for d in ("/sys", "/proc", "/data"))
            raise FsError("Permission denied" if denied else "Read-only file system")
        return self.host(path)

    def write(self, path: str, data: bytes, append: bool = False, mode: int | None = None) -> None:
        if path == "/dev/null":
            return
        h = self._check_write(path)
        if h.is_dir():
            raise FsError("Is a directory")
        if not h.parent.is_dir():
            raise FsError("No such file or directory")
        with open(h, "ab" if append else "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(h, (mode & 0o777) | 0o600)

    def open_for_push(self, path: str, mode: int):
        """A host file object for a sync SEND, creating parent directories like adbd does."""
        h = self._check_write(path)
        if h.is_dir():
            raise FsError("Is a directory")
        h.parent.mkdir(parents=True, exist_ok=True)
        f = open(h, "wb")
        os.chmod(h, (mode & 0o777) | 0o600)
        return f

    def mkdir(self, path: str, parents: bool = False) -> None:
        h = self._check_write(path) if not self.isdir(path) else self.host(path)
        if self.isdir(path):
            if not parents:
                raise FsError("File exists")
            return
        if self.exists(path):
            raise FsError("File exists")
        if not parents and not h.parent.is_dir():
            raise FsError("No such file or directory")
        h.mkdir(parents=parents, exist_ok=parents)

    def remove(self, path: str, recursive: bool = False) -> None:
        h = self._check_write(path)
        if h.is_dir():
            if not recursive:
                raise FsError("Is a directory")
            shutil.rmtree(h)
        elif h.exists():
            h.unlink()
        else:
            raise FsError("No such file or directory")

    def chmod(self, path: str, mode: int) -> None:
        h = self._check_write(path)
        if not h.exists():
            raise FsError("No such file or directory")
        os.chmod(h, (mode & 0o777) | 0o600)

    def set_mtime(self, path: str, mtime: int) -> None:
        os.utime(self.host(path), (mtime, mtime))

    def is_executable(self, path: str) -> bool:
        return self.isfile(path) and path not in self.virtual and bool(self.stat(path).mode & 0o111)


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
            "ro.soc.model": p.soc,
            "ro.build.version.sdk": str(p.sdk),
            "ro.build.version.release": p.release,
            "ro.build.type": "user",
            "ro.debuggable": "0",
            "ro.serialno": self.serial,
            "sys.boot_completed": "1",
            "ro.kernel.qemu": "0",
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
        for c, max_khz in enumerate(self.profile.cpu_max_khz):
            base = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
            files[base + "/scaling_cur_freq"] = lambda c=c: f"{self.cpu_cur_khz(c)}\n".encode()
            files[base + "/scaling_max_freq"] = lambda m=max_khz: f"{m}\n".encode()
            files[base + "/cpuinfo_max_freq"] = lambda m=max_khz: f"{m}\n".encode()
            files[base + "/cpuinfo_min_freq"] = lambda: b"300000\n"
            files[base + "/scaling_governor"] = lambda: b"schedutil\n"
        files["/sys/devices/system/cpu/online"] = lambda: f"0-{n - 1}\n".encode()
        files["/sys/devices/system/cpu/possible"] = lambda: f"0-{n - 1}\n".encode()
        files["/proc/cpuinfo"] = lambda: self._cpuinfo().encode()
        return files

    def _cpuinfo(self) -> str:
        lines = []
        for c, max_khz in enumerate(self.profile.cpu_max_khz):
            part = "0x805" if max_khz == min(self.profile.cpu_max_khz) else "0x804"
            lines += [f"processor\t: {c}", "BogoMIPS\t: 38.40",
                      "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
                      "CPU implementer\t: 0x51", "CPU architecture: 8", f"CPU part\t: {part}", ""]
        lines.append(f"Hardware\t: Qualcomm Technologies, Inc {self.profile.board.upper()}")
        return "\n".join(lines) + "\n"
