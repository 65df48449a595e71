"""Several phones in one campaign (issue 14, item 4): one worker per phone into one store; a phone
that drops off is waited for with backoff while the other goes on, and its jobs finish when it
returns: nothing lost, nothing measured twice. Two ADB device emulators (real LiteRT runs)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("adb_shell")
pytest.importorskip("litert_torch")

from latkit.profiler import pool  # noqa: E402
from latkit.profiler.campaign import (  # noqa: E402
    QUICK_PROTOCOL,
    CampaignSettings,
    DeviceSpec,
    layer_jobs,
    run_layer_campaign,
)
from latkit.profiler.store import open_store  # noqa: E402
from latkit.supernet.space import get_space  # noqa: E402

SPACE = get_space("compofa-w1.0")
LIMIT = 6
pytestmark = pytest.mark.tflite


def test_two_phones_one_dropped_mid_way(tmp_path, monkeypatch):
    from latkit.devices.emulator import EmulatorServer

    monkeypatch.setenv("LATKIT_ADB_KEY", str(tmp_path / "keys" / "adbkey"))
    monkeypatch.delenv("LATKIT_BENCHMARK_MODEL", raising=False)
    monkeypatch.setattr(pool, "BACKOFF_S", (0.2, 1.0))
    root7 = tmp_path / "pixel7-root"
    a = EmulatorServer(port=0, profile="pixel4", benchmark_model=True).start()
    b = EmulatorServer(port=0, profile="pixel7", benchmark_model=True, root=root7).start()
    port7, state = b.port, {"b": b, "dropped_after": None, "back": None}
    events: list = []

    def dropper() -> None:  # pixel7 goes away after 2 benchmarks, back 3 s later (same port, files)
        base = b.counters.benchmarks_completed
        while b.counters.benchmarks_completed < base + 2:
            time.sleep(0.01)
        state["dropped_after"] = b.counters.benchmarks_completed - base
        b.stop()
        time.sleep(3.0)
        state["b"] = EmulatorServer(port=port7, profile="pixel7", benchmark_model=True, root=root7).start()
        state["back"] = time.monotonic()

    specs = [DeviceSpec("pixel4", {"serial": a.serial}), DeviceSpec("pixel7", {"serial": b.serial})]
    settings = CampaignSettings(protocol=QUICK_PROTOCOL, passes=1, reference=False)
    cache = tmp_path / "exports"  # exported once (warm-up), so both timings are measuring only
    try:
        run_layer_campaign(SPACE, [128], specs[:1], tmp_path / "warm.sqlite", tmp_path / "warm",
                           settings=settings, limit=LIMIT, cache_dir=cache)
        t0 = time.monotonic()  # the two campaigns one after the other, no drop
        for spec in specs:
            run_layer_campaign(SPACE, [128], [spec], tmp_path / f"seq-{spec.name}.sqlite",
                               tmp_path / f"seq-{spec.name}", settings=settings, limit=LIMIT, cache_dir=cache)
        sequential_s = time.monotonic() - t0
        threading.Thread(target=dropper, daemon=True).start()
        t0 = time.monotonic()
        res = run_layer_campaign(SPACE, [128], specs, tmp_path / "store.sqlite", tmp_path / "lut",
                                 settings=settings, limit=LIMIT, progress=events.append, cache_dir=cache)
        both_s = time.monotonic() - t0
    finally:
        a.stop()
        state["b"].stop()
    keys = sorted(j.key for j in layer_jobs(SPACE, [128], LIMIT))
    assert state["dropped_after"] == 2 and state["back"] is not None
    assert res.complete, res.errors
    with open_store(tmp_path / "store.sqlite", create=False) as store:
        for device in ("pixel4", "pixel7"):
            got = sorted(r.key for r in store.records("layer", device=device))
            assert got == keys  # every job once: nothing lost, nothing measured twice
    retries = [e for e in events if e.kind == "device_retry"]
    assert retries and all(e.device == "pixel7" for e in retries)
    assert res.per_device["pixel7"]["reconnect_waits"] == len(retries)
    assert (tmp_path / "lut" / "pixel4" / "lut.csv").is_file() and (tmp_path / "lut" / "pixel7").is_dir()
    print(f"two phones in one campaign, pixel7 dropped for 3 s after 2 jobs: {both_s:.1f} s; the two "
          f"campaigns one after the other (no drop): {sequential_s:.1f} s; pixel7 waited {len(retries)} "
          f"time(s)")
