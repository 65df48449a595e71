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
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from latkit.errors import DeviceError

__all__ = ["DEFAULT_RT_PRIORITY", "cpu_mask", "default_affinity", "host_snapshot", "parse_affinity",
           "pinned", "realtime", "rt_rest_s"]


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


# --- realtime priority and default pinning ---------------------------------------------------------

#: the SCHED_FIFO priority the default protocol asks for (low: above every normal process, below
#: the kernel's own realtime threads)
DEFAULT_RT_PRIORITY = 10


def rt_rest_s() -> float:
    """Seconds to stay out of SCHED_FIFO after a burst so the kernel's RT throttling never bites.

    Linux lets realtime tasks run ``sched_rt_runtime_us`` out of every ``sched_rt_period_us``
    (0.95 s of 1 s by default) and then stops them until the period ends: a 50 ms stall in the
    middle of a timed run. Resting a little longer than the difference after each benchmark keeps
    every period under the limit (a single benchmark must stay shorter than the runtime).
    """
    try:
        runtime = int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
        period = int(Path("/proc/sys/kernel/sched_rt_period_us").read_text())
    except (OSError, ValueError):
        return 0.06
    if runtime < 0:
        return 0.0
    return max(0.0, (period - runtime) / 1e6) * 1.2


@contextlib.contextmanager
def realtime(priority: int | None, *, required: bool = True) -> Iterator[dict[str, Any]]:
    """Run the block in SCHED_FIFO at ``priority``: the calling thread and the runtime's own threads
    (``runtime_thread_ids``: ONNX Runtime's and XNNPACK's thread pools); no-op for None/0.

    Raising the calling thread alone leaves a two-thread runtime's pool thread at normal priority,
    where any other process on the machine delays it and so every run: on this project's 2-core VM
    under a load of 6, a subnet measured 6.6 ms (spread 30%) with the caller raised, 5.4 ms (15%)
    with the pool raised too, against 15.3 ms (68%) at normal priority.

    Yields what was applied, to record with the measurement: ``{"policy": "SCHED_FIFO",
    "priority": P, "threads": N}`` or ``{"policy": "normal", "reason": ...}``. ``required`` False
    (the default protocol's "when available") falls back to normal scheduling where it is not
    permitted; True raises ``DeviceError``. On leaving, every thread gets its old policy back, and
    the calling thread sleeps ``rt_rest_s()`` when its realtime time since the last rest nears the
    kernel's budget, so that back-to-back benchmarks never trip RT throttling in a timed run.
    """
    if not priority:
        yield {"policy": "normal", "reason": "not asked"}
        return
    if not hasattr(os, "sched_setscheduler"):
        if required:
            raise DeviceError("realtime scheduling needs Linux; drop --realtime")
        yield {"policy": "normal", "reason": "no sched_setscheduler on this platform"}
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (PermissionError, OSError) as exc:
        if required:
            raise DeviceError(f"cannot switch to realtime scheduling (SCHED_FIFO {priority}): "
                              f"{exc.strerror}; run as root or with CAP_SYS_NICE, or drop "
                              "--realtime") from None
        yield {"policy": "normal", "reason": f"SCHED_FIFO not permitted ({exc.strerror})"}
        return
    raised: dict[int, tuple[int, Any]] = {}
    for tid in runtime_thread_ids():
        try:
            old = (os.sched_getscheduler(tid), os.sched_getparam(tid))
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(int(priority)))
            raised[tid] = old
        except OSError:  # the thread ended meanwhile, or is not ours to raise: it runs as it was
            continue
    t0 = time.monotonic()
    try:
        yield {"policy": "SCHED_FIFO", "priority": int(priority), "threads": 1 + len(raised)}
    finally:
        for tid, (old_policy, old_param) in raised.items():
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, old_policy, old_param)
        os.sched_setscheduler(0, policy, param)
        _rest_if_needed(time.monotonic() - t0)


def runtime_thread_ids() -> list[int]:
    """This process's threads that Python did not start (the native pools of ONNX Runtime, LiteRT's
    XNNPACK and torch), less the calling thread: the threads a benchmark's runs execute on besides
    the caller. Other Python threads (another device's worker, a progress display) keep their
    priority. Empty where ``/proc/self/task`` cannot be read."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []
    python = {t.native_id for t in threading.enumerate()} | {threading.get_native_id()}
    return [t for t in tids if t not in python]


_rt_used = threading.local()


def _rest_if_needed(burst_s: float) -> None:
    """Sleep ``rt_rest_s()`` once the realtime time since the last rest, plus one more burst like
    this one, could exceed the kernel's RT budget of a period (``sched_rt_runtime_us``, less a
    margin): short benchmarks rest every few bursts instead of after each."""
    rest = rt_rest_s()
    if rest <= 0:
        return
    now = time.monotonic()
    idle = now - burst_s - getattr(_rt_used, "end", -float("inf"))
    # a whole period idle refilled the budget
    used = (0.0 if idle >= 1.0 else getattr(_rt_used, "s", 0.0)) + burst_s
    if used + burst_s > _rt_budget_s():
        time.sleep(rest)
        used = 0.0
    _rt_used.s, _rt_used.end = used, time.monotonic()


def _rt_budget_s() -> float:
    """Seconds of realtime running allowed per period, less a 10% margin (0.855 s by default)."""
    try:
        runtime = int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
    except (OSError, ValueError):
        runtime = 950_000
    return 0.9 * max(runtime, 0) / 1e6


def default_affinity(threads: int | None) -> tuple[int, ...] | None:
    """The CPU a one-thread measurement is pinned to when none was asked: the last CPU this
    process may use (CPU 0 takes most interrupts), or None where pinning is unavailable, more
    threads were asked, or only one CPU is allowed (nothing to choose)."""
    allowed = _allowed_cpus()
    if (threads or 1) != 1 or not allowed or len(allowed) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return (max(allowed),)
