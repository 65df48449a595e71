"""The reference level of a device on this host: what its reference model runs at, over its history.

A local device measures every sample of an artifact beside a run of one fixed reference model
(``measure_with_protocol(reference_once=...)``), and a pass's figure is the median ratio of the
pairs times this level (``devices.base.apply_level``). The level is the median of the reference's
pass medians recorded on this host with the same runtime settings, by every campaign and ``lat
bench`` run, so that figures taken minutes or days apart, in different stores, share one scale:
a layer table and the end-to-end measurements it is calibrated against, or ten ``lat bench`` runs.

It is kept in ``$LATKIT_HOME/levels/<device>-<identity>.json`` (the newest ``KEEP`` readings); the
identity hashes what changes the reference's speed (the reference's bytes, the runtime and its
version, threads, CPU affinity, the host). The readings themselves are stored with every pass in
the measurement store, so a figure can always be recomputed: this file only remembers the scale.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from latkit.devices.base import apply_level
from latkit.devices.paths import latkit_home
from latkit.fileio import make_dir, write_text

#: readings kept per identity (the newest): enough that one campaign's shift moves the median little
KEEP = 2000
#: the environment fields that change the reference model's speed on one host
IDENTITY_FIELDS = ("device", "host", "runtime", "runtime_version", "threads", "affinity_mask",
                   "execution_provider", "delegate", "graph_opt_level", "allow_spinning")

#: path -> ((inode, mtime_ns, size), readings) of the books read by this process
_READ_CACHE: dict[Path, tuple[tuple[int, int, int], list[float]]] = {}

__all__ = ["KEEP", "LevelBook", "benchmark_scaled", "book_of", "identity_of", "level_of", "record"]


def identity_of(env: Mapping[str, Any], reference_sha256: str) -> dict[str, Any]:
    """What a level is the level of: ``IDENTITY_FIELDS`` of a measurement's environment and the
    reference model's sha256."""
    ident = {k: env.get(k) for k in IDENTITY_FIELDS}
    ident["reference_sha256"] = reference_sha256
    return ident


class LevelBook:
    """The readings of one identity, read and appended under a file lock (several processes of one
    user share a device's level)."""

    def __init__(self, identity: Mapping[str, Any], folder: str | Path | None = None) -> None:
        self.identity = dict(identity)
        digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True, default=str).encode())
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(identity.get("device")))
        self.folder = Path(folder) if folder is not None else latkit_home() / "levels"
        self.path = self.folder / f"{name}-{digest.hexdigest()[:16]}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_dir(self.folder)
        with open(self.folder / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[list[float]]:
        """The stored readings; a damaged file counts as none (it only remembers a scale: the
        readings are in the stores) and is replaced at the next ``add``."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            rows = data["readings"]
            out = [[float(t), float(v)] for t, v in rows]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        return [r for r in out if math.isfinite(r[1]) and r[1] > 0]

    def readings(self) -> list[float]:
        """The readings' values, read again only when the file changed: a table of 459 layers asks
        its level once per layer (``profiler.passes.combine_rows``)."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # an add replaces the file (new inode)
        except OSError:
            return []
        cached = _READ_CACHE.get(self.path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, [v for _, v in self._read()])
            _READ_CACHE[self.path] = cached
        return list(cached[1])

    def add(self, values_ms: Iterable[float]) -> None:
        """Append readings (reference pass medians, in ms); non-finite or non-positive ones are
        dropped."""
        new = [float(v) for v in values_ms if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
        if not new:
            return
        with self._locked():
            rows = self._read() + [[round(time.time(), 3), v] for v in new]
            doc = {"format": "latkit-levels", "version": 1, "identity": self.identity,
                   "readings": rows[-KEEP:]}
            write_text(self.path, json.dumps(doc, sort_keys=True) + "\n")

    def level(self) -> dict[str, Any] | None:
        """``{"level_ms": median, "readings": n, "spread": (p90 - p10) / median}``, None if empty."""
        vals = self.readings()
        if not vals:
            return None
        med = statistics.median(vals)
        qs = statistics.quantiles(vals, n=10) if len(vals) >= 2 else [med] * 9
        return {"level_ms": med, "readings": len(vals), "spread": (qs[-1] - qs[0]) / med,
                "file": str(self.path)}


def book_of(m: Any) -> LevelBook | None:
    """The level book of a pass measured beside the reference (``extra["paired"]``), else None."""
    paired = m.extra.get("paired") if isinstance(getattr(m, "extra", None), dict) else None
    if not isinstance(paired, dict) or not paired.get("sha256"):
        return None
    return LevelBook(identity_of(m.env, str(paired["sha256"])))


def record(m: Any) -> None:
    """Add a paired pass's reference median to its device's level."""
    book = book_of(m)
    if book is not None:
        book.add([m.extra["paired"].get("ref_ms")])


def level_of(m: Any) -> dict[str, Any] | None:
    """The level a paired pass's figure is scaled by (None for a pass without a reference)."""
    book = book_of(m)
    return book.level() if book is not None else None


def benchmark_scaled(device: Any, artifact: Any, settings: Any = None) -> Any:
    """One measurement as a figure on the device's level: paired with the reference and scaled
    where the device pairs (this host's CPUs), as measured elsewhere. What a search's ``--verify``
    and live measurements use, so that they share the scale of the tables and predictors."""
    if not getattr(device, "pairs_with_reference", False):
        return device.benchmark(artifact, settings)
    m = device.benchmark(artifact, settings, reference=True)
    lv = level_of(m)
    out = apply_level(m, lv["level_ms"] if lv else None)
    if lv:
        out.extra["level"] = lv
    return out
