"""The campaign worker pool: one thread per device, every result stored the moment it arrives.

A device runs one benchmark at a time; different devices run concurrently. A worker exports (or
reuses) a job's file, benchmarks it, and adds the ``Measurement`` to the store in its own
transaction. Ctrl-C in the calling thread sets a stop flag that workers check between benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from latkit.devices.base import DeviceUnreachableError, ProtocolSettings
from latkit.errors import DeviceError, LatkitError, StoreError
from latkit.profiler.jobs import (
    CampaignResult,
    DeviceSpec,
    ProgressEvent,
    ProgressFn,
    _Job,
)
from latkit.profiler.store import MeasurementStore, settings_fingerprint
from latkit.provenance import versions

# ---------------------------------------------------------------------------------------------
# The worker pool
# ---------------------------------------------------------------------------------------------


def _block_stop_signals() -> None:
    """Keep SIGINT/SIGTERM away from this worker thread (and the native threads it starts).

    Python runs signal handlers in the main thread only, but the kernel may deliver a signal to any
    thread that does not block it, interrupting a native call there (EINTR in an export or an
    inference) for nothing: the main thread is the one that stops the campaign.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _rt_rest_s() -> float:
    """Seconds to stay out of SCHED_FIFO after a burst so the kernel's RT throttling never bites.

    Linux lets realtime tasks run ``sched_rt_runtime_us`` out of every ``sched_rt_period_us``
    (0.95 s of 1 s by default) and then stops them until the period ends: a 50 ms stall in the
    middle of a timed run. Resting a little longer than the difference after each benchmark keeps
    every period under the limit (a single benchmark must stay shorter than the runtime).
    """
    try:
        runtime = int(open("/proc/sys/kernel/sched_rt_runtime_us").read())
        period = int(open("/proc/sys/kernel/sched_rt_period_us").read())
    except (OSError, ValueError):
        return 0.06
    if runtime < 0:
        return 0.0
    return max(0.0, (period - runtime) / 1e6) * 1.2


@contextlib.contextmanager
def realtime(priority: int | None) -> Iterator[None]:
    """Run the block in SCHED_FIFO at ``priority`` (calling thread only); no-op for None/0.

    On leaving, the thread sleeps ``_rt_rest_s()`` so that back-to-back benchmarks never trip RT
    throttling.
    """
    if not priority:
        yield
        return
    if not hasattr(os, "sched_setscheduler"):
        raise DeviceError("realtime scheduling needs Linux; drop --realtime")
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (PermissionError, OSError) as exc:
        raise DeviceError(f"cannot switch to realtime scheduling (SCHED_FIFO {priority}): "
                          f"{exc.strerror}; run as root or with CAP_SYS_NICE, or drop --realtime") from None
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)
        time.sleep(_rt_rest_s())


class _Campaign:
    """Shared state of one run: the store, the stop flag, counters, the progress callback."""

    def __init__(self, store: MeasurementStore, kind: str, space: Any, progress: ProgressFn | None,
                 run_id: str) -> None:
        self.store, self.kind, self.space, self.run_id = store, kind, space, run_id
        self.progress = progress or (lambda ev: None)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.result = CampaignResult()
        self.env: dict[str, dict[str, Any]] = {}
        self.versions = versions()
        self.crash: BaseException | None = None  # an unexpected error in a worker

    def emit(self, **kw: Any) -> None:
        with self.lock:
            ev = ProgressEvent(done=self.done, total=self.total, **kw)
        try:
            self.progress(ev)
        except Exception:  # noqa: BLE001 - a broken progress bar must not kill a campaign
            pass

    def count(self, device: str, what: str, n: int = 1) -> None:
        with self.lock:
            per = self.result.per_device.setdefault(device, {"measured": 0, "skipped": 0,
                                                             "failed": 0})
            per[what] += n
            setattr(self.result, what, getattr(self.result, what) + n)
            if what != "failed":
                self.done += n


#: a device whose link fails (``DeviceUnreachableError``) is waited for: first after BACKOFF_S[0]
#: seconds, doubling up to BACKOFF_S[1], for at most RECONNECT_MAX_S in a row; then it is given up
#: (its jobs stay undone: ``--resume`` measures them). Other devices go on meanwhile.
BACKOFF_S = (1.0, 30.0)
RECONNECT_MAX_S = 600.0


def _wait_for_device(c: _Campaign, spec: DeviceSpec, exc: Exception, since: float | None,
                     attempt: int) -> bool:
    """Sleep one backoff step after a link failure; False when the device is to be given up."""
    now = time.monotonic()
    if since is not None and now - since >= RECONNECT_MAX_S:
        msg = f"unreachable for {now - since:.0f} s (limit {RECONNECT_MAX_S:g} s); giving up on " \
              f"{spec.name}"
        c.result.errors.append(f"{spec.name}: {msg}: {exc}")
        c.emit(kind="device_error", device=spec.name, message=msg)
        return False
    wait = min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** attempt)
    with c.lock:
        per = c.result.per_device.setdefault(spec.name, {"measured": 0, "skipped": 0, "failed": 0})
        per["reconnect_waits"] = per.get("reconnect_waits", 0) + 1
    c.emit(kind="device_retry", device=spec.name, message=f"{exc}; retrying in {wait:g} s")
    return not c.stop.wait(wait)


def _worker(c: _Campaign, spec: DeviceSpec, jobs: list[_Job], settings: dict[str, Any],
            make_artifact: Callable[[_Job, str], Path], protocol: ProtocolSettings,
            max_failures: int, on_row: Callable[[str, _Job, Any], None] | None) -> None:
    fmt = settings["format"]
    rt_priority = settings.get("realtime_priority")
    device = None
    _block_stop_signals()
    try:
        try:
            with realtime(rt_priority):  # fail fast when not permitted
                pass
            device = spec.open()
            c.env[spec.name] = device.environment()
        except LatkitError as exc:
            c.result.errors.append(f"{spec.name}: {exc}")
            c.emit(kind="device_error", device=spec.name, message=str(exc))
            return
        failures = 0
        down_since: float | None = None  # when the device's link first failed, in a row
        down_attempts = 0
        queue = list(jobs)
        while queue:
            job = queue[0]
            if c.stop.is_set():
                return
            try:
                path = make_artifact(job, fmt)
                with realtime(rt_priority):
                    m = device.benchmark(path, protocol)
            except DeviceUnreachableError as exc:  # the phone went away: wait for it, then this job again
                down_since = down_since if down_since is not None else time.monotonic()
                if not _wait_for_device(c, spec, exc, down_since, down_attempts):
                    return
                down_attempts += 1
                continue
            except LatkitError as exc:
                queue.pop(0)
                failures += 1
                c.count(spec.name, "failed")
                c.result.errors.append(f"{spec.name} {job.key}: {exc}")
                c.emit(kind="failed", device=spec.name, key=job.key, message=str(exc))
                if failures >= max_failures:
                    msg = f"{failures} failures in a row; giving up on {spec.name}"
                    c.result.errors.append(f"{spec.name}: {msg}")
                    c.emit(kind="device_error", device=spec.name, message=msg)
                    return
                continue
            queue.pop(0)
            failures, down_since, down_attempts = 0, None, 0
            c.store.add(c.kind, job.key, c.space.name, spec.name, settings, m,
                        versions=c.versions, run_id=c.run_id)
            c.count(spec.name, "measured")
            if on_row is not None:
                on_row(spec.name, job, m)
            c.emit(kind="measured", device=spec.name, key=job.key, median_ms=m.median_ms, cv=m.cv)
    except StoreError as exc:
        c.result.errors.append(f"{spec.name}: {exc}")
        c.emit(kind="device_error", device=spec.name, message=str(exc))
        c.stop.set()
    except Exception as exc:  # noqa: BLE001 -- a bug: stop every worker, re-raised in the calling thread
        c.crash = c.crash or exc
        c.stop.set()
    finally:
        if device is not None and spec.device is None:
            try:
                device.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail again
                pass
        c.store.close_thread()


def _run_pool(c: _Campaign, specs: list[DeviceSpec], jobs: list[_Job],
              settings_of: dict[str, dict[str, Any]], make_artifact: Callable[[_Job, str], Path],
              protocol: ProtocolSettings, remeasure: bool, measured_after_id: int | None,
              max_failures: int, on_row: Callable[[str, _Job, Any], None] | None = None) -> None:
    """Skip stored jobs, run one worker per device, wait (Ctrl-C sets the stop flag)."""
    todo: dict[str, list[_Job]] = {}
    if remeasure and measured_after_id is None:
        measured_after_id = c.store.max_id()
    for spec in specs:
        h = settings_fingerprint(settings_of[spec.name])
        if remeasure:
            done = c.store.done_keys(c.kind, c.space.name, spec.name, h,
                                     after_id=measured_after_id)
        else:
            done = c.store.done_keys(c.kind, c.space.name, spec.name, h)
        todo[spec.name] = [j for j in jobs if j.key not in done]
        skipped = len(jobs) - len(todo[spec.name])
        c.total += len(jobs)
        if skipped:
            c.count(spec.name, "skipped", skipped)
    c.emit(kind="start", message=f"{len(jobs)} jobs x {len(specs)} device(s)")
    for spec in specs:
        skipped = c.result.per_device.get(spec.name, {}).get("skipped", 0)
        if skipped:
            c.emit(kind="skipped", device=spec.name, count=skipped)
    runs = [spec for spec in specs if todo[spec.name]]
    finished = {spec.name: threading.Event() for spec in runs}

    def body(spec: DeviceSpec) -> None:
        try:
            _worker(c, spec, todo[spec.name], settings_of[spec.name], make_artifact, protocol,
                    max_failures, on_row)
        finally:
            finished[spec.name].set()

    threads = [threading.Thread(target=body, args=(spec,), name=f"latkit-{spec.name}",
                                daemon=True) for spec in runs]
    for t in threads:
        t.start()
    # Wait on events, not Thread.join: a KeyboardInterrupt inside join() can mark a thread that is
    # still running as stopped (CPython 3.11), and exiting under a running export aborts.
    try:
        for ev in finished.values():
            while not ev.wait(0.2):
                pass
    except KeyboardInterrupt:
        c.stop.set()
        c.result.interrupted = True
        try:
            for ev in finished.values():
                while not ev.wait(0.5):
                    pass
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, keep what is stored
            return
    for t in threads:
        t.join()
    if c.crash is not None:
        raise c.crash
