"""The campaign worker pool: one thread per device, every result stored the moment it arrives.

A device runs one benchmark at a time; different devices run concurrently. A worker exports (or
reuses) a job's file, benchmarks it, and adds the ``Measurement`` to the store in its own
transaction. Ctrl-C in the calling thread sets a stop flag that workers check between benchmarks.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latkit.devices import levels
from latkit.devices.base import DeviceUnreachableError, ProtocolSettings
from latkit.devices.host import DEFAULT_RT_PRIORITY, default_affinity, realtime
from latkit.devices.registry import LOCAL_DEVICES
from latkit.errors import LatkitError, StoreError
from latkit.profiler.artifacts import ArtifactMaker
from latkit.profiler.jobs import (
    NETWORK_PROTOCOL,
    CampaignResult,
    CampaignSettings,
    DeviceSpec,
    ProgressEvent,
    ProgressFn,
    _Job,
    export_cache,
    job_settings,
)
from latkit.profiler.passes import Reference, combine_rows, pass_schedule, reference_arch
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
        self.reference: dict[str, dict[str, Any]] = {}  # device -> Reference.summary()
        self.passes = 1
        self.after_id: int | None = None  # rows that count as done have a larger id

    def short_keys(self, device: str, settings: dict[str, Any], keys: Any, passes: int) -> int:
        """How many of ``keys`` have fewer than ``passes`` passes stored (failed or interrupted)."""
        counts = self.store.pass_counts(self.kind, self.space.name, device,
                                        settings_fingerprint(settings), self.after_id)
        return sum(1 for k in keys if counts.get(k, 0) < passes)

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


def _open_device(spec: DeviceSpec, pin: bool) -> Any:
    """The device of ``spec``; a one-thread local device with no affinity is pinned to one CPU."""
    if pin and spec.device is None and spec.name in LOCAL_DEVICES and "affinity" not in spec.options:
        cpus = default_affinity(spec.options.get("threads"))
        if cpus is not None:
            return DeviceSpec(spec.name, {**spec.options, "affinity": list(cpus)}).open()
    return spec.open()


@dataclass
class PassPlan:
    """How a campaign measures: passes per job, the reference model, the scheduling asked for."""

    passes: int = 1
    reference: Callable[[DeviceSpec], Reference | None] | None = None
    rt_priority: int | None = None
    rt_required: bool = False
    pin: bool = False
    seed: int = 0


def _worker(c: _Campaign, spec: DeviceSpec, jobs: list[_Job], settings: dict[str, Any],
            make_artifact: Callable[[_Job, str], Path], protocol: ProtocolSettings,
            max_failures: int, on_row: Callable[[str, _Job, Any], None] | None,
            plan: PassPlan, have: dict[str, int]) -> None:
    fmt = settings["format"]
    device = None
    ref: Reference | None = None
    _block_stop_signals()
    try:
        try:
            if plan.rt_required:
                with realtime(plan.rt_priority):  # fail fast when not permitted
                    pass
            device = _open_device(spec, plan.pin)
            c.env[spec.name] = device.environment()
            ref = plan.reference(spec) if plan.reference is not None else None
        except LatkitError as exc:
            c.result.errors.append(f"{spec.name}: {exc}")
            c.emit(kind="device_error", device=spec.name, message=str(exc))
            return
        level = ref.level() if ref is not None else None
        # asked for (--realtime): every device; by default: the devices that time on this host
        local = spec.device is None and spec.name in LOCAL_DEVICES
        priority = plan.rt_priority if plan.rt_required or local else None

        # where the device can (the CPUs of this host), every sample is paired with the reference
        # model (devices/reference.py) and the figure is the pairs' ratio times the device's level
        pair = ref is not None and bool(getattr(device, "pairs_with_reference", False))

        def bench(path: Path, paired: bool = pair) -> Any:
            with realtime(priority, required=plan.rt_required) as sched:
                m = (device.benchmark(path, protocol, reference=True) if paired
                     else device.benchmark(path, protocol))
            m.env["scheduling"] = sched
            return m

        failures = 0
        paired_seen = None
        down_since: float | None = None  # when the device's link first failed, in a row
        down_attempts = 0
        queue = pass_schedule(jobs, plan.passes, have, plan.seed)
        failed: set[str] = set()
        while queue:
            job, p = queue[0]
            if c.stop.is_set():
                return
            if job.key in failed:  # a failed job is not measured again in a later pass
                queue.pop(0)
                continue
            try:
                if ref is not None and ref.due():
                    ref.measure(lambda p: bench(p, paired=False))
                    level = ref.level()
                path = make_artifact(job, fmt)
                m = bench(path)
            except DeviceUnreachableError as exc:  # the phone went away: wait for it, then this job again
                down_since = down_since if down_since is not None else time.monotonic()
                if not _wait_for_device(c, spec, exc, down_since, down_attempts):
                    return
                down_attempts += 1
                continue
            except LatkitError as exc:
                queue.pop(0)
                failed.add(job.key)
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
            m.extra["pass"] = p
            if "paired" in m.extra:
                paired_seen = m
            if ref is not None:
                ref.annotate(m, level)
            c.store.add(c.kind, job.key, c.space.name, spec.name, settings, m,
                        versions=c.versions, run_id=c.run_id)
            have[job.key] = have.get(job.key, 0) + 1
            c.count(spec.name, "measured")
            if on_row is not None and have[job.key] >= plan.passes:
                rows = c.store.passes(c.kind, c.space.name, spec.name,
                                      settings_fingerprint(settings), [job.key], plan.passes)
                on_row(spec.name, job, combine_rows(rows[job.key]))
            c.emit(kind="measured", device=spec.name, key=job.key, median_ms=m.median_ms, cv=m.cv,
                   message=f"pass {p + 1}/{plan.passes}" if plan.passes > 1 else "")
        if ref is not None:
            c.reference[spec.name] = ref.summary()
            if paired_seen is not None:  # the level this campaign's figures are scaled by
                c.reference[spec.name]["paired_level"] = levels.level_of(paired_seen)
    except StoreError as exc:
        c.result.errors.append(f"{spec.name}: {exc}")
        c.emit(kind="device_error", device=spec.name, message=str(exc))
        c.stop.set()
    except Exception as exc:  # noqa: BLE001 -- a bug: stop every worker, re-raised in the calling thread
        c.crash = c.crash or exc
        c.stop.set()
    finally:
        if ref is not None and spec.name not in c.reference:
            c.reference[spec.name] = ref.summary()
        if device is not None and spec.device is None:
            try:
                device.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail again
                pass
        c.store.close_thread()


def _run_pool(c: _Campaign, specs: list[DeviceSpec], jobs: list[_Job],
              settings_of: dict[str, dict[str, Any]], make_artifact: Callable[[_Job, str], Path],
              protocol: ProtocolSettings, remeasure: bool, measured_after_id: int | None,
              max_failures: int, on_row: Callable[[str, _Job, Any], None] | None = None,
              plan: PassPlan | None = None) -> None:
    """Skip stored passes, run one worker per device, wait (Ctrl-C sets the stop flag).

    Counts (``measured``, ``skipped``, ``total``) are of passes: ``len(jobs) * plan.passes`` per
    device."""
    plan = plan or PassPlan()
    todo: dict[str, list[_Job]] = {}
    have_of: dict[str, dict[str, int]] = {}
    if remeasure and measured_after_id is None:
        measured_after_id = c.store.max_id()
    c.after_id = measured_after_id if remeasure else None
    for spec in specs:
        h = settings_fingerprint(settings_of[spec.name])
        counts = c.store.pass_counts(c.kind, c.space.name, spec.name, h,
                                     after_id=measured_after_id if remeasure else None)
        have = {j.key: min(counts.get(j.key, 0), plan.passes) for j in jobs}
        have_of[spec.name] = have
        todo[spec.name] = [j for j in jobs if have[j.key] < plan.passes]
        skipped = sum(have.values())
        c.total += len(jobs) * plan.passes
        if skipped:
            c.count(spec.name, "skipped", skipped)
    c.emit(kind="start", message=f"{len(jobs)} jobs x {len(specs)} device(s)"
           + (f" x {plan.passes} passes" if plan.passes > 1 else ""))
    for spec in specs:
        skipped = c.result.per_device.get(spec.name, {}).get("skipped", 0)
        if skipped:
            c.emit(kind="skipped", device=spec.name, count=skipped)
    runs = [spec for spec in specs if todo[spec.name]]
    finished = {spec.name: threading.Event() for spec in runs}

    def body(spec: DeviceSpec) -> None:
        try:
            _worker(c, spec, todo[spec.name], settings_of[spec.name], make_artifact, protocol,
                    max_failures, on_row, plan, have_of[spec.name])
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


def pass_plan(c: _Campaign, settings: CampaignSettings, store: MeasurementStore,
              cache_dir: str | Path | None) -> PassPlan:
    """The ``PassPlan`` of a campaign's settings: passes, scheduling, pinning, reference model."""
    rt = settings.realtime_priority or (DEFAULT_RT_PRIORITY if settings.auto_realtime else None)
    reference = None
    if settings.reference:
        ref_settings = dataclasses.replace(settings, protocol=NETWORK_PROTOCOL, fmt=None)
        maker = ArtifactMaker(export_cache(cache_dir, store), seed=settings.seed, batch=settings.batch)
        arch = reference_arch(c.space)

        def reference(spec: DeviceSpec) -> Reference:
            s = job_settings(spec, ref_settings, "network")
            s["format"] = settings.fmt or s["format"]
            return Reference(store, c.space.name, spec.name, s, str(arch),
                             lambda: maker.network(c.space, arch, s["format"]),
                             run_id=c.run_id, versions=c.versions)

    return PassPlan(passes=settings.passes, reference=reference, rt_priority=rt,
                    rt_required=bool(settings.realtime_priority), pin=settings.pin,
                    seed=settings.seed)
