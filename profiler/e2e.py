"""End-to-end campaigns: whole subnets exported and measured, the ground truth for predictors.

Output: a CSV with header ``E2E_COLUMNS`` (``arch`` = canonical key, ``latency_ms`` = median), one
row per arch and device in input order, plus ``FILE.csv.meta.json`` with the provenance. Rows are
appended as they are measured; at the end the file is rewritten from the store (latest row per
arch), so a resumed campaign's CSV also holds what earlier runs measured.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from latkit.errors import ArchError
from latkit.fileio import check_writable, write_text
from latkit.profiler.artifacts import ArtifactMaker
from latkit.profiler.jobs import (
    NETWORK_PROTOCOL,
    CampaignResult,
    CampaignSettings,
    DeviceSpec,
    ProgressFn,
    _Job,
    device_specs,
    export_cache,
    job_settings,
    resolve_space,
)
from latkit.profiler.passes import combine_rows
from latkit.profiler.pool import _Campaign, _run_pool, pass_plan
from latkit.profiler.store import MeasurementStore, process_run_id, settings_fingerprint
from latkit.provenance import record
from latkit.supernet.space import get_space
from latkit.tables import append_rows, header_line, is_parquet, write_table

#: ``passes``: how many passes the figure is the median of; ``pass_ms``: their medians in measuring
#: order, ``;``-separated (what ``lat fit evaluate`` reads the noise floor from); ``ref_drift``: the
#: reference model's median drift during those passes (relative; empty without a reference)
E2E_COLUMNS = ("arch", "latency_ms", "space", "device", "p10_ms", "p90_ms", "mean_ms", "std_ms",
               "cv", "runs", "passes", "pass_ms", "ref_drift", "precision")

# ---------------------------------------------------------------------------------------------
# End-to-end campaigns
# ---------------------------------------------------------------------------------------------


def sample_archs(space: Any, n: int, seed: int, resolutions: Sequence[int] | None = None) -> list:
    """``n`` distinct random subnets (``random.Random(seed)``); ``ArchError`` if there are fewer."""
    sp, rs = resolve_space(space, resolutions)
    rng = random.Random(seed)
    seen: dict[str, Any] = {}
    for _ in range(max(100, 50 * n)):
        if len(seen) >= n:
            break
        a = sp.sample(rng, rs)
        seen.setdefault(str(a), a)
    if len(seen) < n:
        raise ArchError(f"could draw only {len(seen)} distinct subnets of {sp.name} at "
                        f"{rs}; ask for fewer (-n {len(seen)})")
    return list(seen.values())


def _e2e_row(arch_key: str, space: str, device: str, m: Any, precision: str = "fp32"
             ) -> dict[str, Any]:
    return {"arch": arch_key, "latency_ms": m.median_ms, "space": space, "device": device,
            "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "mean_ms": m.mean_ms, "std_ms": m.std_ms,
            "cv": m.cv, "runs": m.runs, "passes": m.extra.get("passes", 1),
            "pass_ms": ";".join(repr(float(v)) for v in m.extra.get("pass_medians_ms", [m.median_ms])),
            "ref_drift": m.extra.get("reference_drift", ""),
            "precision": m.env.get("precision") or precision}


def write_e2e_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write the end-to-end CSV atomically (header ``E2E_COLUMNS``)."""
    return write_table([{k: r.get(k, "") for k in E2E_COLUMNS} for r in rows], path,
                       columns=E2E_COLUMNS)


def run_e2e_campaign(
    space: Any,
    archs: Sequence[Any],
    devices: str | DeviceSpec | Iterable[str | DeviceSpec],
    store: MeasurementStore | str | Path,
    out_csv: str | Path,
    *,
    remeasure: bool = False,
    measured_after_id: int | None = None,
    progress: ProgressFn | None = None,
    settings: CampaignSettings | None = None,
    supernet: Any = None,
    cache_dir: str | Path | None = None,
    command: str = "",
) -> CampaignResult:
    """Export and measure whole subnets; write ``out_csv`` (one row per arch and device, input order).

    Rows are appended to ``out_csv`` as they are measured; at the end the file is rewritten from the
    store in input order (so a resumed campaign's CSV also holds what earlier runs measured).
    """
    t0 = time.perf_counter()
    settings = settings or CampaignSettings()
    sp = get_space(space) if isinstance(space, str) else space
    parsed = [sp.parse(a) for a in archs]
    order: dict[str, Any] = {}
    for a in parsed:
        order.setdefault(str(a), a)
    jobs = [_Job(k, a) for k, a in order.items()]
    specs = device_specs(devices)
    own_store = not isinstance(store, MeasurementStore)
    st = MeasurementStore(store) if own_store else store
    try:
        settings_of = {d.name: job_settings(d, settings, "network") for d in specs}
        protocol = settings.protocol or NETWORK_PROTOCOL
        maker = ArtifactMaker(export_cache(cache_dir, st), seed=settings.seed,
                              batch=settings.batch, supernet=supernet,
                              weights_id=settings.weights_id, precision=settings.precision,
                              calibration=settings.calibration())
        c = _Campaign(st, "network", sp, progress, process_run_id())
        c.passes = settings.passes
        out = check_writable(out_csv)  # appended row by row: refuse a FIFO, device or symlink first
        out.parent.mkdir(parents=True, exist_ok=True)
        live_lock = threading.Lock()
        # a CSV grows row by row as subnets are measured; a Parquet file is written at the end
        # (the store holds every measurement meanwhile)
        live_path = os.devnull if is_parquet(out) else out
        with open(live_path, "w", newline="", encoding="utf-8") as live:
            live.write(header_line(E2E_COLUMNS))
            live.flush()

            def on_row(device: str, job: _Job, m: Any) -> None:
                with live_lock:
                    append_rows(live, [_e2e_row(job.key, sp.name, device, m, settings.precision)],
                                E2E_COLUMNS)

            _run_pool(c, specs, jobs, settings_of, lambda j, fmt: maker.network(sp, j.payload, fmt),
                      protocol, remeasure, measured_after_id, settings.max_consecutive_failures,
                      on_row, plan=pass_plan(c, settings, st, cache_dir))
        res = c.result
        by_device = {}
        for d in specs:
            latest = st.passes("network", sp.name, d.name, settings_fingerprint(settings_of[d.name]),
                               order, settings.passes)
            if len(latest) < len(order) or c.short_keys(d.name, settings_of[d.name], order,
                                                          settings.passes):
                res.complete = False
            by_device[d.name] = {k: _e2e_row(k, sp.name, d.name, combine_rows(r), settings.precision)
                                 for k, r in latest.items()}
        final = [by_device[d.name][k] for k in order for d in specs if k in by_device[d.name]]
        write_e2e_csv(out, final)
        _write_e2e_meta(out, sp, specs, settings_of, c, command, res, len(order))
        res.entries = len(final)
        res.outputs = {d.name: str(out) for d in specs}
        res.seconds = time.perf_counter() - t0
        return res
    finally:
        if own_store:
            st.close()


def _write_e2e_meta(out: Path, sp: Any, specs: list[DeviceSpec], settings_of: dict[str, Any],
                    c: _Campaign, command: str, res: CampaignResult, n_archs: int) -> None:
    """Provenance next to the CSV: ``FILE.csv.meta.json``."""
    meta = {
        **record(command),  # command, cwd, created, host: where to re-run it
        "format": "latkit-e2e", "version": 1, "space": sp.name, "archs": n_archs,
        "devices": [d.name for d in specs], "env": c.env, "settings": settings_of,
        "versions": c.versions, "command": command, "store": str(c.store.path),
        "passes": c.passes, "reference": c.reference, "partial": not res.complete,
        "interrupted": res.interrupted,
        "precision": next((s.get("precision") for s in settings_of.values()), None) or "fp32",
    }
    write_text(out.with_name(out.name + ".meta.json"),
               json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
