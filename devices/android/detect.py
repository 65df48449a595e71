"""``lat device add``: read a phone over adb, install benchmark_model, write its profile.

``detect(device)`` reads what the phone says about itself: ``getprop`` (``ro.product.model``,
``ro.soc.model`` on Android 12+ or else ``ro.board.platform``, ``ro.product.cpu.abi``,
``ro.build.version.sdk``), the CPU topology (per-CPU ``cpufreq/cpuinfo_max_freq`` and
``related_cpus``: CPUs of one cpufreq policy with one maximum frequency form a cluster; the core type
of each CPU from ``CPU implementer``/``CPU part`` in ``/proc/cpuinfo``, named through
``profile.CPU_PARTS``) and its thermal zones (``thermal_zone*/type``; the CPU ones are kept).

Default CPU mask and thread count (``default_mask``): **one thread, pinned to the fastest cluster of
at least two CPUs**. The mask spans the whole cluster, so the one thread runs on any of its identical
cores (pinning one CPU would collide with whatever the OS put there). A lone prime core (a fastest
cluster of one CPU, as cpu7 of a Pixel 4 or a Galaxy S22) is passed over for the next cluster: it is
the core the scheduler hands the foreground app and, alone at the highest voltage, the first to
throttle, so its timings drift the most over a long campaign. One thread because a latency table is
per layer and once-for-all's tables are single-threaded; ``--threads``/``--affinity`` change a run,
and the profile can be edited. On a Pixel 4 this rule gives ``70`` (cpu4-6), the hand-written
profile's choice.

``install_benchmark_model`` either pushes the given host build (first checked to be an ELF for the
phone's ABI) to ``remote_dir/benchmark_model`` or takes one already on the phone in the usual places
(``agent.USUAL_BENCHMARK_MODEL_PATHS``, then ``PATH``), then runs it with ``--help`` and checks that
it answers as TFLite's benchmark tool (its usage names ``--graph``). It records the version the tool
prints (``unknown`` when it prints none, as most builds do) and the sha256 on the phone
(``sha256sum``; for a pushed build it must equal the host file's).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import yaml

from latkit.devices.android.agent import USUAL_BENCHMARK_MODEL_PATHS, AndroidDevice
from latkit.devices.android.profile import AndroidProfile, core_name
from latkit.devices.android.text import excerpt
from latkit.devices.paths import user_profiles_dir
from latkit.errors import DeviceError
from latkit.fileio import sha256_file, write_text
from latkit.provenance import now_iso

__all__ = ["CPU_ZONE", "build_profile", "check_elf", "default_mask", "detect", "generic_profile",
           "install_benchmark_model", "write_profile"]

CPU_SYS = "/sys/devices/system/cpu"
THERMAL_TYPES = "/sys/class/thermal/thermal_zone*/type"
#: a thermal zone type that names a CPU sensor: cpu-1-0-usr (Qualcomm), BIG/MID/LITTLE (Tensor),
#: cpu0-thmzone (Unisoc), cpuss-0, cluster0...
CPU_ZONE = re.compile(r"cpu|^(big|mid|little)$|cluster", re.IGNORECASE)
#: ELF class and machine of each Android ABI
ABI_ELF = {"arm64-v8a": (2, 183, "AArch64"), "armeabi-v7a": (1, 40, "ARM"), "x86_64": (2, 62, "x86-64"),
           "x86": (1, 3, "x86")}
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PROPS = {"model": "ro.product.model", "manufacturer": "ro.product.manufacturer",
         "soc_model": "ro.soc.model", "board": "ro.board.platform", "abi": "ro.product.cpu.abi",
         "sdk": "ro.build.version.sdk", "release": "ro.build.version.release"}

_GENERIC = {
    "name": "phone", "model": "unknown", "soc": "unknown", "taskset_mask": "1", "threads": 1,
    "delegate": "cpu", "delegates": ["cpu", "gpu", "nnapi"], "remote_dir": "/data/local/tmp/latkit",
    "benchmark_model": {"local_path": None, "remote_path": "/data/local/tmp/latkit/benchmark_model"},
    "connection": {"serial": None, "auth_timeout_s": 30},
    "thermal": {"zones": ["/sys/class/thermal/thermal_zone*/temp"], "limit_c": 40, "cooldown_max_s": 300,
                "poll_s": 5, "on_hot": "wait_then_fail"},
    "frequencies": "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq",
    "protocol": {"warmup_runs": 10, "num_runs": 50, "min_secs": 1, "max_secs": 150},
    "retries": 3,
    "timeouts": {"connect_s": 10, "command_s": 30, "push_s": 300, "benchmark_extra_s": 120},
}


def generic_profile(name: str, serial: str | None = None, auth_timeout_s: float = 30) -> dict[str, Any]:
    """The settings every added phone starts from (those of ``data/devices/pixel4.yaml``)."""
    data = yaml.safe_load(yaml.safe_dump(_GENERIC))  # a deep copy
    data["name"] = name
    data["connection"] = {"serial": serial, "auth_timeout_s": auth_timeout_s}
    return data


def check_name(name: str, local_names: Any = ()) -> str:
    if not NAME.fullmatch(name) or name in local_names:
        raise DeviceError(f"device name {name!r} must be lower-case letters, digits, '.', '_' or '-' "
                          f"(at most 64) and not one of the local devices ({', '.join(local_names)})")
    return name


# --- reading the phone ---------------------------------------------------------------------------
def _parse_cpuinfo(text: str) -> dict[int, tuple[int, int]]:
    """``/proc/cpuinfo`` -> cpu -> (implementer, part)."""
    out: dict[int, tuple[int, int]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        try:
            cpu = int(fields["processor"])
            out[cpu] = (int(fields["cpu implementer"], 16), int(fields["cpu part"], 16))
        except (KeyError, ValueError):
            continue
    return out


def _cpu_list(text: str | None) -> tuple[int, ...]:
    """``0 1 2 3`` or ``0-3`` -> (0, 1, 2, 3); () if unreadable."""
    out: list[int] = []
    for part in re.split(r"[\s,]+", (text or "").strip()):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            out.extend(range(lo, hi + 1))
    return tuple(sorted(set(out)))


def clusters_of(max_khz: dict[int, int], related: dict[int, tuple[int, ...]],
                parts: dict[int, tuple[int, int]]) -> list[dict[str, Any]]:
    """CPUs of one cpufreq policy (``related_cpus``, where readable) and one maximum frequency form a
    cluster; each gets its core name from ``/proc/cpuinfo``. Sorted by first CPU."""
    groups: dict[tuple[tuple[int, ...], int], list[int]] = {}
    for cpu in sorted(max_khz):
        groups.setdefault((related.get(cpu, ()), max_khz[cpu]), []).append(cpu)
    cores = []
    for (_, khz), cpus in sorted(groups.items(), key=lambda kv: kv[1][0]):
        names = sorted({core_name(*parts[c]) if c in parts else "unknown" for c in cpus})
        cores.append({"cpus": cpus, "core": "/".join(names), "max_ghz": round(khz / 1e6, 2),
                      "max_khz": khz})
    return cores


def default_mask(cores: list[dict[str, Any]]) -> tuple[str, int, list[int]]:
    """(hex taskset mask, threads, CPUs): see the module docstring for the rule and why."""
    ranked = sorted(cores, key=lambda c: (-c["max_khz"], c["cpus"][0]))
    chosen = ranked[0]
    if len(chosen["cpus"]) == 1 and len(ranked) > 1:
        chosen = ranked[1]
    cpus = list(chosen["cpus"])
    return format(sum(1 << c for c in cpus), "x"), 1, cpus


def detect(device: AndroidDevice) -> dict[str, Any]:
    """What the phone says about itself (see the module docstring); one line on a failure."""
    def run() -> dict[str, Any]:
        out = device._sh_ok(*[["getprop", p] for p in PROPS.values()], what="getprop")
        lines = out.splitlines() + [""] * len(PROPS)
        props = {k: lines[i].strip() for i, k in enumerate(PROPS)}
        max_paths = device._expand([f"{CPU_SYS}/cpu*/cpufreq/cpuinfo_max_freq"])
        cpu_of = {p: int(m.group(1)) for p in max_paths if (m := re.search(r"/cpu(\d+)/cpufreq/", p))}
        rel_paths = {p: posixpath.join(posixpath.dirname(p), "related_cpus") for p in cpu_of}
        values = device._read_files([*cpu_of, *rel_paths.values()])
        max_khz = {cpu: int(values[p]) for p, cpu in cpu_of.items() if (values[p] or "").isdigit()}
        related = {cpu: _cpu_list(values[rel_paths[p]]) for p, cpu in cpu_of.items()}
        cpuinfo = device._read_files(["/proc/cpuinfo"])["/proc/cpuinfo"] or ""
        type_paths = device._expand([THERMAL_TYPES])
        types = device._read_files(type_paths)
        zones = {posixpath.dirname(p): (types[p] or "") for p in type_paths}
        return {"props": props, "max_khz": max_khz, "related": related, "cpuinfo": cpuinfo,
                "zones": zones}

    raw = device._attempt("reading the phone", run)
    props = raw["props"]
    if not raw["max_khz"]:
        raise DeviceError(f"{device.serial}: no readable {CPU_SYS}/cpu*/cpufreq/cpuinfo_max_freq; "
                          f"cannot tell the phone's clusters")
    parts = _parse_cpuinfo(raw["cpuinfo"])
    cores = clusters_of(raw["max_khz"], raw["related"], parts)
    mask, threads, cpus = default_mask(cores)
    cpu_zones = {d: t for d, t in sorted(raw["zones"].items()) if t and CPU_ZONE.search(t)}
    return {
        "model": props["model"] or "unknown", "manufacturer": props["manufacturer"],
        "soc": props["soc_model"] or props["board"] or "unknown",
        "soc_property": "ro.soc.model" if props["soc_model"] else "ro.board.platform",
        "board": props["board"], "abi": props["abi"] or "unknown", "sdk": props["sdk"],
        "release": props["release"], "cores": cores, "taskset_mask": mask, "threads": threads,
        "mask_cpus": cpus,
        "cpus": {f"cpu{c}": {"max_khz": raw["max_khz"][c],
                             "related_cpus": list(raw["related"].get(c, ())),
                             "midr": (f"0x{parts[c][0]:02x}:0x{parts[c][1]:03x}" if c in parts else None)}
                 for c in sorted(raw["max_khz"])},
        "thermal_zones": {t: d for d, t in sorted(raw["zones"].items())},
        "cpu_thermal_zones": sorted(set(cpu_zones.values()), key=list(cpu_zones.values()).index),
    }


# --- benchmark_model -----------------------------------------------------------------------------
def check_elf(path: Path, abi: str) -> None:
    """``path`` must be an ELF executable for ``abi`` (class and machine of its header)."""
    want = ABI_ELF.get(abi)
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as exc:
        raise DeviceError(f"benchmark_model {path} is not readable: {exc.strerror}") from None
    if want is None:
        return  # an ABI this table does not know: the run on the phone decides
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise DeviceError(f"benchmark_model {path} is not an ELF executable (the phone is {abi}: use "
                          f"an android_{'aarch64' if abi == 'arm64-v8a' else abi} build of TFLite's "
                          f"benchmark_model)")
    machine = int.from_bytes(head[18:20], "little")
    if head[4] != want[0] or machine != want[1]:
        names = {v[1]: v[2] for v in ABI_ELF.values()}
        built = names.get(machine, f"ELF machine {machine}")
        raise DeviceError(f"benchmark_model {path} is built for {built}"
                          f"{' (32-bit)' if head[4] == 1 else ''}, but the phone is {abi} ({want[2]}): "
                          f"use a build for the phone's ABI")


def install_benchmark_model(device: AndroidDevice, local: Path | None, abi: str) -> dict[str, Any]:
    """Push ``local`` (checked) or find the phone's own; run it; its path, sha256 and version."""
    if local is not None:
        local = Path(local).expanduser()
        if not local.is_file():
            raise DeviceError(f"benchmark_model {local} does not exist")
        check_elf(local, abi)
        remote = posixpath.join(device.profile.remote_dir, "benchmark_model")
        want = sha256_file(local)

        def push() -> None:
            device._sh_ok(["mkdir", "-p", device.profile.remote_dir], what="mkdir")
            if device._remote_sha256(remote) != want:
                device._push(local, remote, 0o755)
            device._sh_ok(["chmod", "755", remote], what=f"chmod 755 {remote}")

        device._attempt(f"pushing {local.name}", push)
        installed = "pushed"
    else:
        remote = device._attempt("looking for benchmark_model", device.find_benchmark_model)
        if remote is None:
            raise DeviceError(f"{device.serial}: no benchmark_model on the phone (looked at "
                              f"{', '.join(USUAL_BENCHMARK_MODEL_PATHS)} and PATH); pass "
                              f"--benchmark-model PATH (an android_aarch64 build of TFLite's "
                              f"benchmark_model)")
        want, installed = None, "found"
    out, rc = device._attempt("running benchmark_model", lambda: device._sh([remote, "--help"]))
    if rc in (126, 127, 132, 134, 139) or "--graph" not in out:
        raise DeviceError(f"benchmark_model at {remote} does not run on this phone (exit {rc}): "
                          f"{excerpt(out.strip(), 160) or 'no output'}; is it a build for {abi}?")
    sha = device._attempt("hashing benchmark_model", lambda: device._remote_sha256(remote))
    if sha is None:
        raise DeviceError(f"{device.serial}: sha256sum {remote} failed on the phone")
    if want is not None and sha != want:
        raise DeviceError(f"benchmark_model on the phone ({sha[:12]}) differs from {local} ({want[:12]}) "
                          f"after the push")
    m = re.search(r"(?:TensorFlow Lite|TFLite|LiteRT)[^\n]*?version[:\s]+v?([0-9][\w.\-]*)", out, re.I)
    return {"remote_path": remote, "sha256": sha, "version": m.group(1) if m else "unknown",
            "installed": installed, "checked_with": f"{remote} --help (exit {rc})",
            "local_path": str(local) if local is not None else None}


# --- the profile ---------------------------------------------------------------------------------
def build_profile(name: str, serial: str, info: dict[str, Any], tool: dict[str, Any],
                  auth_timeout_s: float = 30) -> dict[str, Any]:
    """The profile mapping (schema of ``data/devices/*.yaml``) of a detected phone."""
    data = generic_profile(name, serial, auth_timeout_s)
    data["description"] = f"{info['model']} ({info['soc']}), added by `lat device add` from {serial}"
    data.update(model=info["model"], soc=info["soc"], abi=info["abi"], cores=info["cores"],
                taskset_mask=info["taskset_mask"], threads=info["threads"])
    data["benchmark_model"] = {"local_path": None, "remote_path": tool["remote_path"]}
    if info["cpu_thermal_zones"]:
        data["thermal"]["zone_types"] = info["cpu_thermal_zones"]
    order = ["name", "description", "model", "soc", "abi", "cores", "taskset_mask", "threads"]
    data = {**{k: data[k] for k in order}, **{k: v for k, v in data.items() if k not in order}}
    data["detected"] = {
        "at": now_iso(), "serial": serial,
        **{k: info[k] for k in ("manufacturer", "soc_property", "board", "sdk", "release")},
        "mask_rule": "one thread on the fastest cluster of >= 2 CPUs (a lone prime core is passed over)",
        "mask_cpus": info["mask_cpus"], "cpus": info["cpus"], "thermal_zones": info["thermal_zones"],
        "benchmark_model": {k: tool[k] for k in ("sha256", "version", "installed", "checked_with",
                                                 "local_path")},
    }
    return data


def write_profile(data: dict[str, Any], path: Path | None = None) -> Path:
    """Validate ``data`` with the one loader's rules, then write it (``fileio.write_text``)."""
    path = Path(path) if path is not None else user_profiles_dir() / f"{data['name']}.yaml"
    AndroidProfile.from_mapping(data, str(path))
    text = ("# Written by `lat device add`; schema: the docstring of latkit/devices/android/profile.py.\n"
            "# Edit freely: `lat device show` reads it back through the same loader.\n"
            + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, text)
