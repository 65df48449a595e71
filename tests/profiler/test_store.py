"""The measurement store: idempotent identity, latest-wins remeasure, concurrency, clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from latkit.errors import StoreError
from latkit.profiler.store import MeasurementStore, open_store, settings_fingerprint


def meas(median: float = 1.0) -> dict:
    return {"median_ms": median, "p10_ms": 0.9 * median, "p90_ms": 1.1 * median,
            "mean_ms": median, "std_ms": 0.01, "cv": 0.01, "runs": 20, "warmup_runs": 5,
            "samples_ms": [median] * 20, "env": {"device": "cpu", "artifact_sha256": "ab" * 32}}


SETTINGS = {"protocol": {"min_runs": 20}, "format": "onnx"}


def test_wal_schema_and_meta(tmp_path):
    with open_store(tmp_path / "s.sqlite") as st:
        assert st.meta()["format"] == "latkit-store"
        assert st.meta()["schema_version"] == "2"
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_schema_1_store_opens_migrated_its_rows_fp32(tmp_path):
    """A store written before precisions existed: the precision column is added, old rows are fp32,
    an fp32 campaign's settings hash as before, and an int8 row is another identity."""
    path = tmp_path / "old.sqlite"
    with open_store(path) as st:
        st.add("network", "a", "sp", "cpu", SETTINGS, meas(2.0))
    conn = sqlite3.connect(path)  # turn it back into what latkit wrote before schema 2
    conn.executescript("ALTER TABLE measurements DROP COLUMN precision; "
                       "UPDATE meta SET value = '1' WHERE name = 'schema_version';")
    conn.close()
    with open_store(path) as st:
        assert st.meta()["schema_version"] == "2"
        old = next(iter(st.records()))
        assert old.precision == "fp32" and old.settings_hash == settings_fingerprint(SETTINGS)
        assert st.done_keys("network", "sp", "cpu", settings_fingerprint(SETTINGS)) == {"a"}
        q = {**SETTINGS, "precision": "int8"}
        st.add("network", "a", "sp", "cpu", q, meas(1.0))
        assert st.done_keys("network", "sp", "cpu", settings_fingerprint(q)) == {"a"}
        assert list(st.frame("network")["precision"]) == ["fp32", "int8"]


def test_identity_and_latest(tmp_path):
    h = settings_fingerprint(SETTINGS)
    assert h == settings_fingerprint(dict(reversed(list(SETTINGS.items()))))
    assert h != settings_fingerprint({**SETTINGS, "format": "tflite"})
    with open_store(tmp_path / "s.sqlite") as st:
        r1 = st.add("layer", "k1", "sp", "cpu", SETTINGS, meas(1.0), versions={"latkit": "x"})
        assert r1.settings_hash == h and r1.id == 1
        assert st.has("layer", "k1", "sp", "cpu", h)
        assert not st.has("layer", "k1", "sp", "cpu-tflite", h)
        assert not st.has("network", "k1", "sp", "cpu", h)
        assert st.done_keys("layer", "sp", "cpu", h) == {"k1"}
        mark = st.max_id()
        st.add("layer", "k1", "sp", "cpu", SETTINGS, meas(2.0))  # a remeasure: newer row
        assert st.count("layer") == 2
        latest = st.latest("layer", "sp", "cpu", h)
        assert latest["k1"].median_ms == 2.0
        assert st.done_keys("layer", "sp", "cpu", h, after_id=mark) == {"k1"}
        assert st.done_keys("layer", "sp", "cpu", h, after_id=st.max_id()) == set()
        rec = next(st.records("layer"))
        assert rec.to_measurement().median_ms == 1.0 and rec.versions == {"latkit": "x"}
        assert rec.measurement["samples_ms"] == [1.0] * 20


def test_refuses_bad_measurements(tmp_path):
    with open_store(tmp_path / "s.sqlite") as st:
        with pytest.raises(StoreError):
            st.add("layer", "k", "sp", "cpu", SETTINGS, meas(0.0))
        with pytest.raises(StoreError):
            st.add("layer", "k", "sp", "cpu", SETTINGS, {"median_ms": 1.0})
        with pytest.raises(StoreError):
            st.add("blob", "k", "sp", "cpu", SETTINGS, meas())
        assert st.count() == 0


def test_two_threads_write_at_once(tmp_path):
    st = MeasurementStore(tmp_path / "s.sqlite")
    barrier = threading.Barrier(2)

    def write(dev: str) -> None:
        barrier.wait()
        for i in range(100):
            st.add("layer", f"k{i}", "sp", dev, SETTINGS, meas(1.0 + i))
        st.close_thread()

    ts = [threading.Thread(target=write, args=(d,)) for d in ("cpu", "pixel4")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    h = settings_fingerprint(SETTINGS)
    assert st.count() == 200
    for dev in ("cpu", "pixel4"):
        assert st.done_keys("layer", "sp", dev, h) == {f"k{i}" for i in range(100)}
    st.close()


def test_two_processes_write_at_once(tmp_path):
    code = (
        "import sys\n"
        "from latkit.profiler.store import MeasurementStore\n"
        "st = MeasurementStore(sys.argv[1])\n"
        "m = {'median_ms': 1.0, 'p10_ms': 1.0, 'p90_ms': 1.0, 'mean_ms': 1.0, 'std_ms': 0.0,"
        " 'cv': 0.0, 'runs': 1}\n"
        "for i in range(60):\n"
        "    st.add('layer', f'k{i}', 'sp', sys.argv[2], {}, m)\n"
    )
    path = tmp_path / "s.sqlite"
    MeasurementStore(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), dev])
             for dev in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with open_store(path) as st:
        assert st.count(device="a") == 60 and st.count(device="b") == 60


def test_corrupt_or_foreign_store(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 50)
    with pytest.raises(StoreError, match="not a usable latkit measurement store"):
        open_store(bad)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (a)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a latkit measurement store"):
        open_store(other)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    MeasurementStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(path)
