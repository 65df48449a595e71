"""A real campaign in a subprocess, killed mid-way (SIGKILL, then Ctrl-C), resumes losing nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latkit.profiler.campaign import layer_jobs
from latkit.profiler.lut import LookupTable
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")
LIMIT = 12


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "latkit", "profile", "--device", "cpu", "--space", SPACE.name,
         "--resolutions", "224", "--out", str(out), "--limit", str(LIMIT), "--quick",
         "--min-time", "0.1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(store: Path) -> list[tuple[str, int]]:
    if not store.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("SELECT key, id FROM measurements ORDER BY id").fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is being created right now
        return []


def wait_for_rows(proc: subprocess.Popen, store: Path, n: int, timeout_s: float = 180) -> None:
    t0 = time.monotonic()
    while len(rows(store)) < n:
        if proc.poll() is not None:
            pytest.fail(f"campaign ended before {n} rows: {proc.communicate()[1][-2000:]}")
        if time.monotonic() - t0 > timeout_s:
            proc.kill()
            pytest.fail(f"fewer than {n} rows after {timeout_s} s")
        time.sleep(0.05)


def resume(out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "latkit", "profile", "--resume", "--out", str(out),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_complete(out: Path, store: Path) -> None:
    keys = [k for k, _ in rows(store)]
    want = [j.key for j in layer_jobs(SPACE, [224], LIMIT)]
    assert len(keys) == len(set(keys)), "a measurement was duplicated"
    assert sorted(keys) == sorted(want), "a measurement was lost"
    table = LookupTable.load(out)
    assert sorted(table.keys()) == sorted(want)
    assert table.meta["partial"] is False and table.meta["entries"] == LIMIT


def test_sigkill_mid_campaign_then_resume(tmp_path):
    out = tmp_path / "lut"
    store = out / "store.sqlite"
    proc = start(out)
    wait_for_rows(proc, store, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = rows(store)
    assert 4 <= len(before) < LIMIT, "kill the campaign mid-way"
    assert not (out / "lut.csv").exists()  # killed: nothing after the store was written
    res = resume(out)
    assert res["skipped"] == len(before) and res["measured"] == LIMIT - len(before)
    assert res["entries"] == LIMIT and res["complete"] is True
    after = rows(store)
    assert after[: len(before)] == before  # earlier rows untouched
    check_complete(out, store)


def test_ctrl_c_writes_partial_table_and_says_how_to_resume(tmp_path):
    out = tmp_path / "lut"
    store = out / "store.sqlite"
    proc = start(out)
    wait_for_rows(proc, store, 4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "lat-profile --resume --out" in err
    done = rows(store)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["partial"] is True and meta["interrupted"] is True
    assert meta["entries"] == len(done) < LIMIT
    res = resume(out)
    assert res["skipped"] == len(done) and res["measured"] == LIMIT - len(done)
    check_complete(out, store)
