"""Measurement campaigns: every layer of a space (lookup tables) or a list of subnets (end to end).

A campaign is a list of jobs (layer specs or arch configs) measured on one or more devices. Each
device gets one worker thread, so a device runs one benchmark at a time while different devices run
concurrently. A worker exports (or reuses) the job's file, benchmarks it, and writes the
``Measurement`` to the store at once, in its own transaction: a campaign killed at any point loses at
most the benchmark in flight, and running it again skips everything already stored with the same
settings (``remeasure=True`` measures again and adds newer rows; readers use the latest).

Library entry points (the CLI in ``profiler/cli.py`` is a thin layer over them)::

    run_layer_campaign(space, resolutions, devices, store, out_dir, ...) -> CampaignResult
    run_e2e_campaign(space, archs, devices, store, out_csv, ...)        -> CampaignResult
    build_lut(store, space, keys, device, settings, meta)                -> LookupTable

A campaign that records its arguments beside its output and resumes from them (what ``lat profile``
and ``lat measure`` run) is ``profiler/campaign_file.py``: ``run_campaign(spec, out)``,
``resume_layer_campaign(out_dir)``, ``resume_e2e_campaign(out_csv)``.

This module holds the lookup-table campaign and re-exports the rest: ``jobs`` (data types, protocol
presets, the settings that identify a measurement), ``pool`` (the per-device worker threads),
``e2e`` (end-to-end campaigns) and ``artifacts`` (the files a campaign measures).

Progress goes only through the ``progress`` callback (a ``ProgressEvent`` per job done, skipped or
failed). Ctrl-C (``KeyboardInterrupt``) in the calling thread stops the workers after their current
benchmark; the campaign then writes the table (or CSV) of what is done, marked partial, and returns
a result with ``interrupted=True``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from latkit.devices.base import DEFAULT_PASSES
from latkit.profiler.artifacts import ArtifactMaker
from latkit.profiler.e2e import (
    E2E_COLUMNS,
    run_e2e_campaign,
    sample_archs,
    write_e2e_csv,
)
from latkit.profiler.jobs import (
    CONNECTION_OPTIONS,
    LAYER_PROTOCOL,
    NETWORK_PROTOCOL,
    QUICK_PROTOCOL,
    SINGLE_NETWORK_PROTOCOL,
    CampaignResult,
    CampaignSettings,
    DeviceSpec,
    ProgressEvent,
    ProgressFn,
    _Job,
    device_specs,
    export_cache,
    job_settings,
    resolve_space,
)
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.profiler.passes import combine_rows
from latkit.profiler.pool import _Campaign, _run_pool, pass_plan, realtime
from latkit.profiler.store import MeasurementStore, process_run_id, settings_fingerprint
from latkit.provenance import record
from latkit.supernet.space import LayerSpec

__all__ = [
    "CONNECTION_OPTIONS", "E2E_COLUMNS", "LAYER_PROTOCOL", "NETWORK_PROTOCOL", "QUICK_PROTOCOL",
    "SINGLE_NETWORK_PROTOCOL",
    "CampaignResult", "CampaignSettings", "DeviceSpec", "ProgressEvent", "build_lut",
    "device_specs", "job_settings", "layer_jobs", "realtime", "run_e2e_campaign",
    "run_layer_campaign", "sample_archs", "write_e2e_csv",
]

# ---------------------------------------------------------------------------------------------
# Lookup tables
# ---------------------------------------------------------------------------------------------


def build_lut(store: MeasurementStore, space: Any, keys: Sequence[str], device: str,
              settings: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
              passes: int = DEFAULT_PASSES) -> LookupTable:
    """The table of ``keys`` (missing keys are left out), each the median of its newest ``passes``
    stored passes with these settings (``profiler/passes.py``)."""
    rows = store.passes("layer", space.name, device, settings_fingerprint(settings), keys, passes)
    entries = [LutEntry.from_measurement(k, LayerSpec.parse(k).kind, combine_rows(rows[k]))
               for k in keys if k in rows]
    return LookupTable.from_entries(entries, meta)


def layer_jobs(space: Any, resolutions: Sequence[int], limit: int | None = None) -> list[_Job]:
    specs = space.unique_layers(resolutions)
    if limit is not None:
        specs = specs[: max(0, int(limit))]
    return [_Job(s.key, s) for s in specs]


def run_layer_campaign(
    space: Any,
    resolutions: Sequence[int] | str | None,
    devices: str | DeviceSpec | Iterable[str | DeviceSpec],
    store: MeasurementStore | str | Path,
    out_dir: str | Path,
    *,
    remeasure: bool = False,
    measured_after_id: int | None = None,
    progress: ProgressFn | None = None,
    settings: CampaignSettings | None = None,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
    command: str = "",
) -> CampaignResult:
    """Measure every unique layer of ``space`` at ``resolutions`` on ``devices``; write the table(s).

    One device: the table goes to ``out_dir`` itself; several: to ``out_dir/<device>/``. The store
    is a ``MeasurementStore`` or a path (created if absent). ``remeasure`` measures every job again:
    rows with id <= ``measured_after_id`` (default: the newest row when the campaign starts) do not
    count as done, so a remeasure campaign resumes by passing the same mark again. ``limit`` keeps
    the first N layers (smoke runs, tests). To record the campaign's arguments so that it resumes
    from ``out_dir`` alone, run it through ``profiler.campaign_file.run_campaign``.
    """
    t0 = time.perf_counter()
    settings = settings or CampaignSettings()
    sp, rs = resolve_space(space, resolutions)
    specs = device_specs(devices)
    own_store = not isinstance(store, MeasurementStore)
    st = MeasurementStore(store) if own_store else store
    try:
        jobs = layer_jobs(sp, rs, limit)
        settings_of = {d.name: job_settings(d, settings, "layer") for d in specs}
        protocol = settings.protocol or LAYER_PROTOCOL
        maker = ArtifactMaker(export_cache(cache_dir, st), seed=settings.seed,
                              batch=settings.batch, dynamic_hw=settings.dynamic_hw,
                              precision=settings.precision, calibration=settings.calibration())
        c = _Campaign(st, "layer", sp, progress, process_run_id())
        _run_pool(c, specs, jobs, settings_of, lambda j, fmt: maker.layer(j.payload, fmt),
                  protocol, remeasure, measured_after_id, settings.max_consecutive_failures,
                  plan=pass_plan(c, settings, st, cache_dir))
        res = c.result
        keys = [j.key for j in jobs]
        out = Path(out_dir)
        for d in specs:
            s = settings_of[d.name]
            meta = {
                **record(command),  # command, cwd, created, host: where to re-run it
                "space": sp.name, "resolutions": rs, "device": d.name,
                "env": c.env.get(d.name, {}), "versions": c.versions, "command": command,
                "settings": s, "settings_hash": settings_fingerprint(s), "store": str(st.path),
                "limit": limit, "statistic": "median of passes", "passes": settings.passes,
                "reference": c.reference.get(d.name), "source": "latkit",
                "precision": settings.precision,
            }
            table = build_lut(st, sp, keys, d.name, s, meta, settings.passes)
            missing = len(keys) - len(table)
            short = c.short_keys(d.name, s, keys, settings.passes) - missing
            table.meta.update(partial=bool(missing or short), missing=missing,
                              short_of_passes=short, interrupted=res.interrupted)
            if missing or short:
                res.complete = False
            target = out if len(specs) == 1 else out / d.name
            table.save(target, seconds=round(time.perf_counter() - t0, 3))
            res.outputs[d.name] = str(target)
            res.entries += len(table)
        res.seconds = time.perf_counter() - t0
        return res
    finally:
        if own_store:
            st.close()
