"""The default measurement protocol of campaigns: interleaved passes and a reference model.

A machine drifts by a few percent over minutes (neighbours, frequency, thermals). One measurement
per subnet or layer samples that drift once, so two subnets measured minutes apart differ by the
drift as well as by their cost. The campaigns therefore measure by default:

- in ``passes`` short passes (``devices.base.DEFAULT_PASSES``): pass 1 over every job in input
  order, then pass 2 over every job in another (seeded) order, and so on, so that a job's passes
  are spread over the whole campaign. Every pass is a row of the store, stored the moment it is
  taken (a killed campaign resumes with the passes it lacks); the reported figure is the median of
  the passes' medians (``devices.base.combine_passes``), and the spread of the passes is recorded;
- on this host's CPUs, every sample paired with a run of latkit's reference model
  (``devices/reference.py``) taken right after it: a pass records the pairs' median ratio, and its
  figure is that ratio times the device's reference level (``devices/levels.py``, the median of
  every reading of the reference on this host). ``combine_rows`` applies the level as it is when
  a table or CSV is built, so every figure of one output shares one scale. On the benchmark VM
  under load the test set's pass-vs-pass noise fell from 13.4% as measured to 3.0% paired;
- a reference model (the space's smallest subnet at its largest resolution) measured alone at the
  start and every ``REFERENCE_INTERVAL_S`` seconds, each reading stored (kind ``reference``). Every
  measurement records the latest reading as ``extra["reference"]``: its latency, the device's
  reference level (the median of every reading stored with these settings, across campaigns) and
  the drift between them; a drift beyond ``LEVEL_SHIFT`` flags a level shift. Dividing by that
  drift helps far less than the pairing (a reading 30 s old does not follow a shift of seconds), so
  it only flags. Campaigns taken hours apart compare their reference levels (recorded in the
  table's and CSV's metadata) when a lookup table is calibrated against end-to-end measurements.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latkit.devices import levels
from latkit.devices.base import Measurement, combine_passes
from latkit.profiler.store import settings_fingerprint

#: seconds between two readings of the reference model
REFERENCE_INTERVAL_S = 30.0
#: a reference reading this far (relative) from the device's level flags a level shift
LEVEL_SHIFT = 0.05

__all__ = ["LEVEL_SHIFT", "REFERENCE_INTERVAL_S", "Reference", "combine_rows", "pass_schedule",
           "reference_arch", "reference_level"]


def pass_schedule(jobs: Sequence[Any], passes: int, have: dict[str, int], seed: int = 0
                  ) -> list[tuple[Any, int]]:
    """(job, pass index) in measuring order: pass p over every job lacking it, each pass in its own
    seeded order (the first in input order), so that a job's passes are spread over the campaign.
    ``have`` is how many passes each key already has in the store."""
    out: list[tuple[Any, int]] = []
    for p in range(passes):
        order = list(jobs)
        if p:
            random.Random(seed * 1000 + p).shuffle(order)
        out += [(j, p) for j in order if have.get(j.key, 0) <= p]
    return out


def combine_rows(rows: Sequence[Any]) -> Measurement:
    """The figure of a key from its stored passes (``StoredMeasurement`` rows): passes measured
    beside the reference model scaled by their device's level (``devices/levels.py``), as it is
    now, so that every figure built at one time shares one scale."""
    ms = [r.to_measurement() for r in rows]
    level = next((lv for lv in (levels.level_of(m) for m in ms) if lv), None)
    return combine_passes(ms, level["level_ms"] if level else None)


def reference_arch(space: Any) -> Any:
    """The reference model of a space: its smallest subnet at its largest resolution."""
    return space.min_arch(space.resolutions[-1])


def reference_level(store: Any, space: str, device: str, settings_hash: str) -> dict[str, Any] | None:
    """The device's reference level: the median of its stored readings (None if there are none)."""
    meds = [r.median_ms for r in store.records("reference", space=space, device=device,
                                                settings_hash=settings_hash)]
    if not meds:
        return None
    return {"median_ms": statistics.median(meds), "readings": len(meds)}


class Reference:
    """The reference model of one device in one campaign: measured when due, read into every
    measurement. ``benchmark(path)`` measures (the caller's device, under its scheduling)."""

    def __init__(self, store: Any, space: str, device: str, settings: dict[str, Any],
                 key: str, artifact: Callable[[], Path], interval_s: float = REFERENCE_INTERVAL_S,
                 run_id: str | None = None, versions: dict[str, Any] | None = None) -> None:
        self.store, self.space, self.device, self.settings = store, space, device, settings
        self.key, self._artifact, self.interval_s = key, artifact, float(interval_s)
        self.run_id, self.versions = run_id, versions or {}
        self.hash = settings_fingerprint(settings)
        self.last: Measurement | None = None
        self.last_t = -float("inf")
        self.readings: list[float] = []

    def due(self) -> bool:
        return time.monotonic() - self.last_t >= self.interval_s

    def measure(self, benchmark: Callable[[Path], Measurement]) -> Measurement:
        m = benchmark(self._artifact())
        self.store.add("reference", self.key, self.space, self.device, self.settings, m,
                       versions=self.versions, run_id=self.run_id)
        self.last, self.last_t = m, time.monotonic()
        self.readings.append(m.median_ms)
        return m

    def level(self) -> dict[str, Any] | None:
        return reference_level(self.store, self.space, self.device, self.hash)

    def annotate(self, m: Measurement, level: dict[str, Any] | None) -> None:
        """Record the latest reading, the device's level and the drift in ``m.extra``."""
        if self.last is None or not level:
            return
        drift = self.last.median_ms / level["median_ms"] - 1.0
        m.extra["reference"] = {
            "key": self.key, "ms": self.last.median_ms, "level_ms": level["median_ms"],
            "drift": drift, "level_shift": abs(drift) > LEVEL_SHIFT,
            "age_s": round(time.monotonic() - self.last_t, 3)}

    def summary(self) -> dict[str, Any]:
        """What the campaign's output records: this campaign's readings and the device's level."""
        level = self.level() or {}
        this = statistics.median(self.readings) if self.readings else None
        return {"key": self.key, "settings_hash": self.hash, "readings": len(self.readings),
                "median_ms": this, "level_ms": level.get("median_ms"),
                "level_readings": level.get("readings"),
                "spread": ((max(self.readings) - min(self.readings)) / this
                           if this and len(self.readings) > 1 else 0.0)}
