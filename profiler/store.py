"""The resumable measurement store: every measurement persisted the moment it is taken.

SQLite (WAL mode) is the embedded default. One row per measurement, committed in its own
transaction as it arrives, so a campaign killed at any instant loses at most the benchmark that was
running. Rows are never updated or deleted: ``--remeasure`` adds a newer row and readers use the
latest row per key.

Identity of a measurement (what "already measured" means)::

    (kind, key, space, device, settings_hash)

``kind`` is ``"layer"`` (key = ``LayerSpec.key``) or ``"network"`` (key = canonical arch key);
``settings_hash`` is ``settings_fingerprint(...)`` of everything that changes the figure apart from
the artifact itself: protocol settings, threads, affinity, delegate, batch, export format and
dynamic spatial axes, weights identity.

Concurrency: one connection per thread (``threading.local``), WAL journal, ``busy_timeout``, and
each insert in its own ``BEGIN IMMEDIATE`` transaction, so several device workers, or several
processes, can write to one store at once.

Schema (version ``SCHEMA_VERSION``, recorded in table ``meta``)::

    meta(name TEXT PRIMARY KEY, value TEXT)
    measurements(id INTEGER PRIMARY KEY AUTOINCREMENT, kind, key, space, device, settings_hash,
                 settings_json, median_ms, p10_ms, p90_ms, mean_ms, std_ms, cv, runs,
                 measurement_json, artifact_sha256, versions_json, run_id, created, precision)

Schema 2 added ``precision`` (fp32, fp16, int8: the settings' precision, else the measured file's,
else fp32); a schema-1 store is migrated in place when opened, its rows fp32 (precisions came later
and fp32 settings hash as they did, so an old campaign resumes on its own rows).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latkit import __version__
from latkit.devices.base import Measurement
from latkit.errors import StoreError

SCHEMA_VERSION = 2
STORE_FORMAT = "latkit-store"
#: ``reference``: the reference model a campaign measures at intervals to track the machine's drift
KINDS = ("layer", "network", "reference")
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    space TEXT NOT NULL,
    device TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    median_ms REAL NOT NULL,
    p10_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    std_ms REAL NOT NULL,
    cv REAL NOT NULL,
    runs INTEGER NOT NULL,
    measurement_json TEXT NOT NULL,
    artifact_sha256 TEXT,
    versions_json TEXT NOT NULL,
    run_id TEXT,
    created TEXT NOT NULL,
    precision TEXT NOT NULL DEFAULT 'fp32'
);
CREATE INDEX IF NOT EXISTS measurements_identity
    ON measurements (kind, space, device, settings_hash, key);
"""

_COLUMNS = ("id", "kind", "key", "space", "device", "settings_hash", "settings_json", "median_ms",
            "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv", "runs", "measurement_json",
            "artifact_sha256", "versions_json", "run_id", "created", "precision")
#: what each older schema lacks, added in place when such a store is opened (its rows keep their ids)
_MIGRATIONS = {1: ("ALTER TABLE measurements ADD COLUMN precision TEXT NOT NULL DEFAULT 'fp32'",)}


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able settings mapping (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredMeasurement:
    """One row of the store. ``measurement`` is the full ``Measurement.to_dict()``."""

    kind: str
    key: str
    space: str
    device: str
    settings_hash: str
    settings: dict[str, Any]
    measurement: dict[str, Any]
    versions: dict[str, Any]
    run_id: str | None = None
    created: str = ""
    id: int | None = None
    precision: str = "fp32"

    @property
    def median_ms(self) -> float:
        return float(self.measurement["median_ms"])

    @property
    def cv(self) -> float:
        return float(self.measurement["cv"])

    def to_measurement(self) -> Measurement:
        return Measurement.from_dict(self.measurement)


def _check_measurement(m: Mapping[str, Any]) -> None:
    for f in ("median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv", "runs"):
        if f not in m:
            raise StoreError(f"refusing to store a measurement without {f!r}")
    if not (float(m["median_ms"]) > 0):
        raise StoreError(f"refusing to store a non-positive latency ({m['median_ms']!r} ms)")


class MeasurementStore:
    """A SQLite measurement store at ``path`` (created unless ``create=False``).

    Thread-safe: each thread gets its own connection. Use as a context manager or ``close()``.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not self.path.exists():
            if not create:
                raise StoreError(f"measurement store {self.path} does not exist; a campaign "
                                 "creates it (lat-profile ... --store PATH, or lat measure)")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        elif self.path.is_dir():
            raise StoreError(f"measurement store {self.path} is a directory; give a file path "
                             "such as DIR/store.sqlite")
        elif not self.path.is_file():  # a FIFO or device node would hang or be clobbered by SQLite
            raise StoreError(f"measurement store {self.path} is not a regular file (a FIFO or "
                             "device?); give a file path such as DIR/store.sqlite")
        self._init()

    # ---- connections ----
    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode!r}); "
                             "put the store on a local file system")
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises; a
        database error (a corrupt or locked file) becomes the store's one-line ``StoreError``."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    def _corrupt(self, exc: Exception) -> StoreError:
        return StoreError(f"{self.path} is not a usable latkit measurement store ({exc}); "
                          "give another --store path, or move the file away to start afresh")

    def _init(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and "meta" not in tables:
                    raise StoreError(f"{self.path} is an SQLite database but not a latkit "
                                     f"measurement store (tables: {', '.join(sorted(tables))}); "
                                     "give another --store path")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
                if not meta:
                    conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", [
                        ("format", STORE_FORMAT), ("schema_version", str(SCHEMA_VERSION)),
                        ("created", _now()), ("latkit", __version__)])
                elif meta.get("format") != STORE_FORMAT:
                    raise StoreError(f"{self.path} is not a latkit measurement store (format "
                                     f"{meta.get('format')!r}); give another --store path")
                elif int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has store schema {meta['schema_version']}, newer "
                                     f"than this latkit reads ({SCHEMA_VERSION}); upgrade latkit")
                else:
                    version = int(meta.get("schema_version", "1"))
                    for v in range(version, SCHEMA_VERSION):
                        for stmt in _MIGRATIONS.get(v, ()):
                            conn.execute(stmt)
                    if version < SCHEMA_VERSION:
                        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'",
                                     (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._corrupt(exc) from None
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def close_thread(self) -> None:
        """Close the calling thread's connection (call at the end of a worker thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        conn.close()
        self._local.conn = None

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._connect().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    # ---- writing ----
    def add(self, kind: str, key: str, space: str, device: str, settings: Mapping[str, Any],
            measurement: Mapping[str, Any] | Any, *, versions: Mapping[str, Any] | None = None,
            run_id: str | None = None) -> StoredMeasurement:
        """Insert one measurement in its own transaction (committed on return)."""
        if kind not in KINDS:
            raise StoreError(f"measurement kind must be one of {KINDS}, got {kind!r}")
        m = measurement.to_dict() if hasattr(measurement, "to_dict") else dict(measurement)
        _check_measurement(m)
        settings = dict(settings)
        env = m.get("env") or {}
        precision = str(settings.get("precision") or env.get("precision") or "fp32")
        rec = StoredMeasurement(kind, key, space, device, settings_fingerprint(settings), settings,
                                m, dict(versions or {}), run_id, _now(), precision=precision)
        row = (rec.kind, rec.key, rec.space, rec.device, rec.settings_hash,
               json.dumps(settings, sort_keys=True, default=str),
               float(m["median_ms"]), float(m["p10_ms"]), float(m["p90_ms"]), float(m["mean_ms"]),
               float(m["std_ms"]), float(m["cv"]), int(m["runs"]),
               json.dumps(m, sort_keys=True, default=str), env.get("artifact_sha256"),
               json.dumps(rec.versions, sort_keys=True, default=str), run_id, rec.created,
               precision)
        with self._transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO measurements ({', '.join(_COLUMNS[1:])}) "
                f"VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})", row)
        return StoredMeasurement(**{**rec.__dict__, "id": cur.lastrowid})

    # ---- reading ----
    def done_keys(self, kind: str, space: str, device: str, settings_hash: str,
                  after_id: int | None = None) -> set[str]:
        """Keys already measured with exactly these settings (only rows with id > ``after_id``)."""
        rows = self._query(
            "SELECT DISTINCT key FROM measurements WHERE kind = ? AND space = ? AND device = ? "
            "AND settings_hash = ? AND id > ?",
            (kind, space, device, settings_hash, int(after_id or 0)))
        return {r[0] for r in rows}

    def max_id(self) -> int:
        """The id of the newest row (0 for an empty store): a remeasure campaign's starting mark."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM measurements")[0][0])

    def has(self, kind: str, key: str, space: str, device: str, settings_hash: str) -> bool:
        return bool(self._query(
            "SELECT 1 FROM measurements WHERE kind = ? AND key = ? AND space = ? AND device = ? "
            "AND settings_hash = ? LIMIT 1", (kind, key, space, device, settings_hash)))

    def latest(self, kind: str, space: str, device: str, settings_hash: str,
               keys: Iterable[str] | None = None) -> dict[str, StoredMeasurement]:
        """The newest row per key (all keys, or only ``keys``) for these settings."""
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM measurements m WHERE kind = ? AND space = ? AND "
            "device = ? AND settings_hash = ? AND id = (SELECT MAX(id) FROM measurements n WHERE "
            "n.kind = m.kind AND n.space = m.space AND n.device = m.device AND "
            "n.settings_hash = m.settings_hash AND n.key = m.key)",
            (kind, space, device, settings_hash))
        wanted = set(keys) if keys is not None else None
        out = {}
        for r in rows:
            if wanted is None or r[2] in wanted:
                out[r[2]] = self._record(r)
        return out

    def passes(self, kind: str, space: str, device: str, settings_hash: str,
               keys: Iterable[str] | None = None, limit: int | None = None,
               after_id: int | None = None) -> dict[str, list[StoredMeasurement]]:
        """Per key, its newest ``limit`` rows (all if None) with id > ``after_id``, oldest first:
        the passes a figure is the median of (a remeasure campaign's newer passes replace older)."""
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM measurements WHERE kind = ? AND space = ? AND "
            "device = ? AND settings_hash = ? AND id > ? ORDER BY id",
            (kind, space, device, settings_hash, int(after_id or 0)))
        wanted = set(keys) if keys is not None else None
        out: dict[str, list[StoredMeasurement]] = {}
        for r in rows:
            if wanted is None or r[2] in wanted:
                out.setdefault(r[2], []).append(self._record(r))
        if limit is not None:
            out = {k: v[-int(limit):] for k, v in out.items()}
        return out

    def pass_counts(self, kind: str, space: str, device: str, settings_hash: str,
                    after_id: int | None = None) -> dict[str, int]:
        """Rows (passes) stored per key with these settings (only rows with id > ``after_id``)."""
        rows = self._query(
            "SELECT key, COUNT(*) FROM measurements WHERE kind = ? AND space = ? AND device = ? "
            "AND settings_hash = ? AND id > ? GROUP BY key",
            (kind, space, device, settings_hash, int(after_id or 0)))
        return {r[0]: int(r[1]) for r in rows}

    def records(self, kind: str | None = None, **where: Any) -> Iterator[StoredMeasurement]:
        """Every row (oldest first), optionally filtered by kind and column equality."""
        conds, params = [], []
        if kind is not None:
            conds.append("kind = ?")
            params.append(kind)
        for col, val in where.items():
            if col not in _COLUMNS:
                raise StoreError(f"unknown store column {col!r}")
            conds.append(f"{col} = ?")
            params.append(val)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM measurements"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        for r in self._query(sql + " ORDER BY id", params):
            yield self._record(r)

    def count(self, kind: str | None = None, **where: Any) -> int:
        conds, params = [], []
        if kind is not None:
            conds.append("kind = ?")
            params.append(kind)
        for col, val in where.items():
            if col not in _COLUMNS:
                raise StoreError(f"unknown store column {col!r}")
            conds.append(f"{col} = ?")
            params.append(val)
        sql = "SELECT COUNT(*) FROM measurements" + (" WHERE " + " AND ".join(conds) if conds else "")
        return int(self._query(sql, params)[0][0])

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT name, value FROM meta"))

    def frame(self, kind: str | None = None, *, latest: bool = False, **where: Any) -> Any:
        """The store as a pandas DataFrame: one row per measurement (oldest first).

        Columns: ``id``, ``kind``, ``key`` (the layer key or the canonical arch key), ``arch`` (the
        arch key for network rows, empty for layers), ``space``, ``device``, ``precision`` (where the
        settings name one, else ``fp32``), the statistics (``median_ms``, ``p10_ms``, ``p90_ms``,
        ``mean_ms``, ``std_ms``, ``cv``, ``runs``, ``warmup_runs``), ``created``, ``run_id``,
        ``settings_hash``, then every environment field as ``env_<name>`` and every setting as
        ``setting_<name>``. ``latest`` keeps only the newest row per identity (what readers use);
        ``kind`` and ``where`` (column equality, e.g. ``device="cpu"``) filter as ``records`` does.
        """
        pd = _pandas()
        rows = []
        for r in self.records(kind, **where):
            m = r.measurement
            row: dict[str, Any] = {
                "id": r.id, "kind": r.kind, "key": r.key,
                "arch": r.key if r.kind == "network" else "", "space": r.space, "device": r.device,
                "precision": r.precision,
            }
            for f in ("median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv"):
                row[f] = float(m[f])
            row["runs"] = int(m["runs"])
            row["warmup_runs"] = int(m.get("warmup_runs") or 0)
            row.update(created=r.created, run_id=r.run_id or "", settings_hash=r.settings_hash)
            for k, v in sorted((m.get("env") or {}).items()):
                row[f"env_{k}"] = v if isinstance(v, (str, int, float, bool)) or v is None \
                    else json.dumps(v, sort_keys=True)
            for k, v in sorted(r.settings.items()):
                row[f"setting_{k}"] = v if isinstance(v, (str, int, float, bool)) or v is None \
                    else json.dumps(v, sort_keys=True)
            rows.append(row)
        base = ["id", "kind", "key", "arch", "space", "device", "precision", "median_ms", "p10_ms",
                "p90_ms", "mean_ms", "std_ms", "cv", "runs", "warmup_runs", "created", "run_id",
                "settings_hash"]
        frame = pd.DataFrame(rows, columns=None if rows else base)
        if latest and not frame.empty:
            ident = ["kind", "key", "space", "device", "settings_hash"]
            frame = frame.sort_values("id").groupby(ident, sort=False).tail(1).sort_values("id")
        return frame.reset_index(drop=True)

    def _record(self, r: tuple) -> StoredMeasurement:
        d = dict(zip(_COLUMNS, r, strict=True))
        try:
            return StoredMeasurement(
                kind=d["kind"], key=d["key"], space=d["space"], device=d["device"],
                settings_hash=d["settings_hash"], settings=json.loads(d["settings_json"]),
                measurement=json.loads(d["measurement_json"]),
                versions=json.loads(d["versions_json"]), run_id=d["run_id"],
                created=d["created"], id=d["id"], precision=d["precision"] or "fp32")
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: row {d['id']} holds malformed JSON ({exc.msg}); the "
                             "store is corrupt") from None


def _pandas() -> Any:
    import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

    return pd


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}" \
        + time.strftime("%z", time.localtime(t))


def open_store(path: str | Path, *, create: bool = True) -> MeasurementStore:
    """Open (or create) the store at ``path``; ``StoreError`` with one clear line if unusable."""
    return MeasurementStore(path, create=create)


def default_store_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "store.sqlite"


def process_run_id() -> str:
    """An id for one campaign run (host, pid, start time): recorded with every row it writes."""
    return f"{platform.node()}:{os.getpid()}:{int(time.time())}"


def merge_stores(sources: Iterable[str | Path], dest: str | Path) -> dict[str, Any]:
    """Join measurement stores made on different hosts into ``dest`` (created if missing).

    A row is the same measurement when its kind, key, space, device, settings hash, run id, creation
    time and measurement are equal: it is copied once, however many sources (or ``dest`` itself)
    hold it. Rows of one (kind, space, device) measured under different settings are all kept
    (they never mix in a table: a table reads one settings hash) and reported as ``conflicts``.
    """
    fields = _COLUMNS[1:]
    identity = ("kind", "key", "space", "device", "settings_hash", "run_id", "created",
                "measurement_json")
    idx = [fields.index(f) for f in identity]
    sources = [Path(s) for s in sources]
    dest_path = Path(dest)
    for s in sources:
        if s.resolve() == dest_path.resolve():
            raise StoreError(f"the merged store {dest_path} is also a source; write it elsewhere")
    out = open_store(dest_path)
    report: dict[str, Any] = {"out": str(dest_path), "sources": {}, "added": 0, "duplicates": 0}
    settings_seen: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    try:
        seen = {tuple(r[i] for i in idx)
                for r in out._query(f"SELECT {', '.join(fields)} FROM measurements")}
        for r in out._query(f"SELECT {', '.join(fields)} FROM measurements"):
            settings_seen.setdefault((r[0], r[2], r[3]), {}).setdefault(r[4], set()).add(str(dest_path))
        for src in sources:
            if not src.is_file():
                raise StoreError(f"store {src} does not exist")
            with open_store(src, create=False) as store:
                rows = store._query(f"SELECT {', '.join(fields)} FROM measurements ORDER BY id")
            new = []
            for r in rows:
                settings_seen.setdefault((r[0], r[2], r[3]), {}).setdefault(r[4], set()).add(str(src))
                ident = tuple(r[i] for i in idx)
                if ident in seen:
                    report["duplicates"] += 1
                    continue
                seen.add(ident)
                new.append(r)
            with out._transaction() as conn:
                conn.executemany(f"INSERT INTO measurements ({', '.join(fields)}) "
                                 f"VALUES ({', '.join('?' * len(fields))})", new)
            report["sources"][str(src)] = {"rows": len(rows), "added": len(new)}
            report["added"] += len(new)
    finally:
        out.close()
    report["conflicts"] = [
        {"kind": k, "space": sp, "device": d,
         "settings": {h: sorted(where) for h, where in sorted(hashes.items())}}
        for (k, sp, d), hashes in sorted(settings_seen.items()) if len(hashes) > 1]
    return report
