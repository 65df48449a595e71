"""Facts about this machine that the local devices share: CPU affinity and pinning, and the host
snapshot recorded in every local ``Measurement`` (CPU model, affinity mask, current frequencies,
temperatures and load, where readable).

Affinity is given as a list of CPU ids, an int mask, or a taskset-style hex mask (``"3"``,
``"0xf0"``); ``pinned`` applies it to every thread of the measuring process for the duration of a
block and restores the old masks afterwards. Everything here reads ``/proc`` and ``/sys``; nothing
imports a runtime.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from latkit.errors import DeviceError

__all__ = ["cpu_mask", "host_snapshot", "parse_affinity", "pinned"]


# --- affinity ----------------------------------------------------------------------------------


def parse_affinity(affinity: str | int | Iterable[int] | None) -> tuple[int, ...] | None:
    """CPU ids from a taskset-style hex mask (``"f0"``, ``"0x3"``), an int mask, or a list of ids."""
    if affinity is None:
        return None
    if isinstance(affinity, str):
        text = affinity.strip().lower()
        digits = text[2:] if text.startswith("0x") else text
        try:
            mask = int(digits, 16)
        except ValueError:
            raise DeviceError(
                f"affinity must be a hex CPU mask such as '3' or '0xf0' (or a list of CPU ids), "
                f"got {affinity!r}"
            ) from None
        cpus = tuple(i for i in range(mask.bit_length()) if mask >> i & 1)
    elif isinstance(affinity, int):
        cpus = tuple(i for i in range(affinity.bit_length()) if affinity >> i & 1)
    else:
        try:
            cpus = tuple(sorted({int(c) for c in affinity}))
        except (TypeError, ValueError):
            raise DeviceError(f"affinity must be a list of CPU ids or a hex mask, got {affinity!r}") from None
        if any(c < 0 for c in cpus):
            raise DeviceError(f"affinity CPU ids must be >= 0, got {list(cpus)}")
    if not cpus:
        raise DeviceError(f"affinity {affinity!r} selects no CPU; give a non-zero mask such as '1'")
    allowed = _allowed_cpus()
    if allowed is not None and not set(cpus) <= allowed:
        raise DeviceError(
            f"affinity {affinity!r} names CPUs {sorted(set(cpus) - allowed)} that this process may not "
            f"use (allowed: {sorted(allowed)}, mask {cpu_mask(allowed)})"
        )
    return cpus


def cpu_mask(cpus: Iterable[int]) -> str:
    """A taskset-style hex mask without ``0x``: CPUs 4, 5, 6 -> ``"70"``."""
    return format(sum(1 << c for c in set(cpus)), "x")


def _allowed_cpus() -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    return set(getter(0)) if getter else None


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Restrict every thread of this process to ``cpus`` for the block; restore the old masks after."""
    if cpus is None:
        yield
        return
    if not hasattr(os, "sched_setaffinity"):
        raise DeviceError("CPU affinity needs Linux (os.sched_setaffinity); drop --affinity")
    saved: dict[int, set[int]] = {}
    try:
        for tid in _thread_ids():
            try:
                saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:  # the thread ended meanwhile
                saved.pop(tid, None)
            except OSError as exc:
                raise DeviceError(f"cannot pin to CPUs {list(cpus)}: {exc.strerror}") from None
        yield
    finally:
        for tid, old in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, old)


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # the calling thread only


# --- the host snapshot -------------------------------------------------------------------------


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in info.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def _cpu_freqs_mhz(cpus: Iterable[int]) -> dict[str, float]:
    """Current frequency per CPU: cpufreq's ``scaling_cur_freq`` (kHz) else /proc/cpuinfo's MHz."""
    freqs: dict[str, float] = {}
    for c in cpus:
        khz = _read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq")
        if khz and khz.isdigit():
            freqs[str(c)] = int(khz) / 1000.0
    if freqs:
        return freqs
    wanted = {str(c) for c in cpus}
    current = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "processor":
            current = value.strip()
        elif name.strip() == "cpu MHz" and current in wanted:
            with contextlib.suppress(ValueError):
                freqs[current] = round(float(value), 1)
    return freqs


def _temperatures_c() -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        raw, kind = _read(zone / "temp"), _read(zone / "type") or zone.name
        if raw and raw.lstrip("-").isdigit():
            temps[kind] = int(raw) / 1000.0
    return temps


def host_snapshot(cpus: Sequence[int] | None) -> dict[str, Any]:
    """CPU model, affinity mask, current frequencies/temperatures where readable, and the load."""
    pinned_cpus = list(cpus) if cpus is not None else sorted(_allowed_cpus() or range(os.cpu_count() or 1))
    return {
        "cpu_model": _cpu_model(),
        "affinity_mask": cpu_mask(pinned_cpus),
        "affinity_cpus": pinned_cpus,
        "affinity_pinned": cpus is not None,
        "cpu_freq_mhz": _cpu_freqs_mhz(pinned_cpus),
        "temperatures_c": _temperatures_c(),
        "load_avg": _load_avg(),
        "cpu_count": os.cpu_count(),
    }


def _load_avg() -> list[float] | None:
    """1-, 5- and 15-minute load averages: above the CPU count, other processes compete for the CPUs."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None
