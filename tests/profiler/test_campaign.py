"""Campaign logic with scripted devices (fast), and real `cpu` campaigns through the CLI."""

from __future__ import annotations

import _thread
import csv
import json
import shlex
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from latkit.cli import main
from latkit.devices.base import Measurement
from latkit.errors import DeviceError
from latkit.profiler.campaign import (
    QUICK_PROTOCOL,
    CampaignSettings,
    DeviceSpec,
    job_settings,
    layer_jobs,
    run_e2e_campaign,
    run_layer_campaign,
    sample_archs,
)
from latkit.profiler.lut import LookupTable
from latkit.profiler.store import MeasurementStore, settings_fingerprint
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")
QUICK = CampaignSettings(protocol=QUICK_PROTOCOL, passes=1, reference=False)


class ScriptedDevice:
    """A device that 'measures' a file as a deterministic number, recording how it was used."""

    formats = ("onnx",)

    def __init__(self, name: str, *, fail=lambda path: False, delay_s: float = 0.0,
                 after=None, shift: float = 0.0) -> None:
        self.name, self.fail, self.delay_s, self.after, self.shift = name, fail, delay_s, after, shift
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def benchmark(self, path, settings=None) -> Measurement:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            if self.fail(Path(path)):
                raise DeviceError(f"{self.name}: scripted failure on {Path(path).name}")
            self.calls.append(Path(path).name)
            v = 0.1 + (zlib.crc32(Path(path).name.encode()) % 1000) / 1000 + self.shift
            m = Measurement.from_samples([v * 0.99, v, v * 1.01], warmup_runs=1,
                                         env={"device": self.name, "artifact": str(path)},
                                         protocol=settings)
            if self.after:
                self.after(len(self.calls))
            return m
        finally:
            with self.lock:
                self.active -= 1

    def environment(self):
        return {"device": self.name, "runtime": "scripted"}

    def close(self):
        pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


def run(tmp_path, devices, cache, **kw):
    kw.setdefault("settings", QUICK)
    kw.setdefault("limit", 6)
    return run_layer_campaign(SPACE, [224], devices, tmp_path / "store.sqlite", tmp_path / "out",
                              cache_dir=cache, **kw)


def test_two_devices_run_concurrently_one_benchmark_each(tmp_path, cache):
    a, b = ScriptedDevice("dev-a", delay_s=0.03), ScriptedDevice("dev-b", delay_s=0.03)
    events = []
    res = run(tmp_path, [DeviceSpec("dev-a", device=a), DeviceSpec("dev-b", device=b)], cache,
              progress=events.append)
    assert (res.entries, res.measured, res.skipped, res.failed) == (12, 12, 0, 0)
    assert res.complete and not res.interrupted
    assert a.max_active == 1 and b.max_active == 1 and len(a.calls) == len(b.calls) == 6
    for dev in ("dev-a", "dev-b"):
        t = LookupTable.load(tmp_path / "out" / dev)
        assert t.keys() == sorted(j.key for j in layer_jobs(SPACE, [224], 6))
        assert t.device == dev and t.meta["partial"] is False
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.count("measured") == 12
    assert events[-1].done == 12 and events[-1].total == 12


def test_rerun_skips_and_remeasure_adds_newer_rows(tmp_path, cache):
    dev = ScriptedDevice("d")
    res = run(tmp_path, [DeviceSpec("d", device=dev)], cache)
    first = LookupTable.load(tmp_path / "out")
    assert res.measured == 6 and (tmp_path / "out" / "lut.csv").is_file()
    res = run(tmp_path, [DeviceSpec("d", device=dev)], cache)
    assert (res.measured, res.skipped, res.entries) == (0, 6, 6) and len(dev.calls) == 6
    res = run(tmp_path, [DeviceSpec("d", device=dev)], cache, limit=8)  # only the 2 new ones
    assert (res.measured, res.skipped, res.entries) == (2, 6, 8)
    dev.shift = 1.0
    st = MeasurementStore(tmp_path / "store.sqlite")
    res = run_layer_campaign(SPACE, [224], [DeviceSpec("d", device=dev)], st, tmp_path / "out",
                             settings=QUICK, limit=6, remeasure=True, cache_dir=cache)
    assert res.measured == 6 and st.count() == 14
    t = LookupTable.load(tmp_path / "out")
    for k in t.keys():
        assert t.latency_ms(k) == pytest.approx(first.latency_ms(k) + 1.0)
    st.close()


def test_other_settings_are_not_skipped(tmp_path, cache):
    dev = ScriptedDevice("d")
    run(tmp_path, [DeviceSpec("d", device=dev)], cache, limit=3)
    other = CampaignSettings(protocol=QUICK_PROTOCOL.__class__(min_runs=7), passes=1, reference=False)
    res = run(tmp_path, [DeviceSpec("d", device=dev)], cache, limit=3, settings=other)
    assert res.measured == 3 and res.skipped == 0
    s1 = job_settings(DeviceSpec("d", {"serial": "1.2.3.4:5", "threads": 2}, device=dev), QUICK,
                      "layer")
    s2 = job_settings(DeviceSpec("d", {"serial": "9.9.9.9:5", "threads": 2}, device=dev), QUICK,
                      "layer")
    assert settings_fingerprint(s1) == settings_fingerprint(s2)  # where it is, not how it measures
    s3 = job_settings(DeviceSpec("d", {"threads": 4}, device=dev), QUICK, "layer")
    assert settings_fingerprint(s3) != settings_fingerprint(s1)


def test_failures_leave_a_partial_table_that_a_rerun_completes(tmp_path, cache):
    victim = layer_jobs(SPACE, [224], 6)[2].payload
    from latkit.profiler.export import safe_name

    bad = ScriptedDevice("d", fail=lambda p: p.name.startswith(safe_name(victim.key)))
    res = run(tmp_path, [DeviceSpec("d", device=bad)], cache)
    assert (res.measured, res.failed, res.complete) == (5, 1, False)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["partial"] is True and meta["missing"] == 1 and meta["entries"] == 5
    good = ScriptedDevice("d")
    res = run(tmp_path, [DeviceSpec("d", device=good)], cache)
    assert (res.measured, res.skipped, res.complete, res.entries) == (1, 5, True, 6)


def test_a_device_that_keeps_failing_is_given_up(tmp_path, cache):
    dead = ScriptedDevice("dead", fail=lambda p: True)
    ok = ScriptedDevice("ok")
    res = run(tmp_path, [DeviceSpec("dead", device=dead), DeviceSpec("ok", device=ok)], cache)
    assert res.failed == 3 and res.per_device["ok"]["measured"] == 6
    assert any("giving up on dead" in e for e in res.errors)
    with pytest.raises(DeviceError, match="listed twice"):
        run(tmp_path, ["cpu", "cpu"], cache)


def test_interrupt_stops_cleanly_and_keeps_everything(tmp_path, cache):
    def interrupt(n: int) -> None:
        if n == 3:
            _thread.interrupt_main()
            time.sleep(0.5)  # let the main thread take the interrupt, even on a loaded machine

    dev = ScriptedDevice("d", after=interrupt, delay_s=0.05)
    res = run(tmp_path, [DeviceSpec("d", device=dev)], cache)
    assert res.interrupted and not res.complete
    assert 3 <= res.measured < 6
    t = LookupTable.load(tmp_path / "out")
    assert len(t) == res.measured and t.meta["partial"] and t.meta["interrupted"]
    res = run(tmp_path, [DeviceSpec("d", device=ScriptedDevice("d"))], cache)
    assert res.complete and res.measured + res.skipped == 6 and res.entries == 6


def test_specialised_family_files_compute_the_static_layer(tmp_path, cache):
    from latkit.profiler.artifacts import ArtifactMaker
    from latkit.profiler.export import ExportCache, export_layer, run_exported

    maker = ArtifactMaker(ExportCache(cache))
    specs = SPACE.unique_layers([128, 224])
    picked = [s for s in specs if s.kind != "expanded_conv"]
    picked += [s for s in specs if s.kind == "expanded_conv" and s.se][:2]
    picked += [s for s in specs if s.kind == "expanded_conv" and s.stride == 2][:2]
    rng = np.random.default_rng(0)
    for s in picked:
        p = maker.layer(s, "onnx")
        assert maker.layer(s, "onnx") == p  # reused, not redone
        q = export_layer(s, "onnx", ExportCache(tmp_path / "static"))
        x = rng.standard_normal((1, s.in_c, s.in_hw, s.in_hw)).astype("float32")
        np.testing.assert_allclose(run_exported(p, x), run_exported(q, x), rtol=1e-5, atol=1e-6)
    import onnx

    dims = onnx.load(str(maker.layer(picked[0], "onnx"))).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, picked[0].in_hw, picked[0].in_hw]


# ---- real cpu campaigns through the CLI ------------------------------------------------------


def test_lat_profile_cpu_json(tmp_path, capsys):
    out = tmp_path / "lut"
    argv = ["profile", "--device", "cpu", "--space", "compofa-w1.0", "--resolutions", "224",
            "--out", str(out), "--limit", "4", "--quick", "--json", "--quiet"]
    # typed as the alias, so recorded as the alias (`lat profile ...` is recorded as typed too:
    # tests/profiler/test_recorded_command.py)
    assert main(argv, typed=["lat-profile", *argv[1:]]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["entries"] == 4 and res["measured"] == 4 and res["skipped"] == 0
    assert res["seconds"] > 0 and res["complete"] is True
    meta = json.loads((out / "meta.json").read_text())
    assert meta["device"] == "cpu" and meta["resolutions"] == [224]
    assert meta["env"]["runtime"] == "onnxruntime" and "onnxruntime" in meta["versions"]
    assert "lat-profile" in meta["command"] and (out / "store.sqlite").is_file()
    assert meta["command"] == shlex.join(["lat-profile", *argv[1:]])
    assert main(["profile", "--resume", "--out", str(out), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["measured"], res["skipped"], res["entries"]) == (0, 4, 4)
    rows = list(csv.DictReader(open(out / "lut.csv")))
    assert all(float(r["median_ms"]) > 0 and int(r["runs"]) >= 5 for r in rows)


def test_lat_profile_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "store.sqlite"
    bad.write_text("garbage" * 100)
    assert main(["profile", "--device", "cpu", "--space", "compofa-w1.0", "--out", str(tmp_path),
                 "--limit", "1", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a usable latkit measurement store" in err
    assert main(["profile", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["profile", "--device", "nosuch", "--space", "compofa-w1.0", "--out",
                 str(tmp_path / "x"), "--quick", "--limit", "1"]) == 2
    assert "unknown device 'nosuch'" in capsys.readouterr().err


def test_lat_measure_csv(tmp_path, capsys):
    out = tmp_path / "e2e.csv"
    assert main(["measure", "--device", "cpu", "--space", "compofa-w1.0", "-n", "3", "--seed",
                 "1", "--resolutions", "128", "--quick", "--out", str(out), "--json",
                 "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["entries"] == 3 and res["measured"] == 3
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["arch", "latency_ms", "space", "device", "p10_ms", "p90_ms",
                             "mean_ms", "std_ms", "cv", "runs", "passes", "pass_ms", "ref_drift",
                             "precision"]
    want = [str(a) for a in sample_archs(SPACE, 3, 1, [128])]
    assert [r["arch"] for r in rows] == want
    assert all(r["space"] == "compofa-w1.0" and r["device"] == "cpu" for r in rows)
    assert all(float(r["p10_ms"]) <= float(r["latency_ms"]) <= float(r["p90_ms"]) for r in rows)
    assert json.loads(out.with_name("e2e.csv.meta.json").read_text())["archs"] == 3
    # an arch file mixing a JSON dict and a key, one of them already measured
    archs = tmp_path / "archs.txt"
    a0 = SPACE.parse(want[0])
    other = SPACE.min_arch(128)
    archs.write_text(json.dumps(a0.to_ofa_dict()) + "\n" + str(other) + "\n")
    out2 = tmp_path / "e2e2.csv"
    assert main(["measure", "--device", "cpu", "--space", "compofa-w1.0", "--archs", str(archs),
                 "--quick", "--out", str(out2), "--store", str(tmp_path / "store.sqlite"),
                 "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["measured"], res["skipped"]) == (1, 1)
    assert [r["arch"] for r in csv.DictReader(open(out2))] == [want[0], str(other)]


def test_e2e_library_in_input_order(tmp_path, cache):
    dev = ScriptedDevice("d")
    archs = sample_archs(SPACE, 3, 7, [128])
    res = run_e2e_campaign(SPACE, [*archs, archs[0]], [DeviceSpec("d", device=dev)],
                           tmp_path / "s.sqlite", tmp_path / "o.csv", settings=QUICK,
                           cache_dir=cache)
    assert res.entries == 3 and res.measured == 3
    assert [r["arch"] for r in csv.DictReader(open(tmp_path / "o.csv"))] == [str(a) for a in archs]


def test_a_bug_in_a_worker_is_raised_not_swallowed(tmp_path, cache):
    class Broken(ScriptedDevice):
        def benchmark(self, path, settings=None):
            raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run(tmp_path, [DeviceSpec("b", device=Broken("b"))], cache, limit=1)


def test_progress_reporters(capsys):
    import io

    from latkit.profiler.campaign import ProgressEvent
    from latkit.profiler.progress import BarProgress, LogProgress, make_progress

    log = io.StringIO()
    p = LogProgress("lat-profile", log, every_s=0, every_n=1)
    p(ProgressEvent("start", total=3, message="3 jobs x 1 device(s)"))
    p(ProgressEvent("skipped", device="cpu", count=1, total=3, done=1))
    p(ProgressEvent("measured", device="cpu", key="Conv-x", done=2, total=3, median_ms=0.25))
    p(ProgressEvent("failed", device="cpu", key="Conv-y", done=2, total=3, message="boom"))
    text = log.getvalue()
    assert "3 entries to cover" in text and "2/3 (67%)" in text and "ETA" in text
    assert "Conv-y FAILED: boom" in text and "1 already in the store" in text

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = make_progress("lat-profile", tty)
    assert isinstance(bar, BarProgress)
    bar(ProgressEvent("start", total=2))
    bar(ProgressEvent("measured", device="cpu", key="Conv-x", done=1, total=2, median_ms=0.2))
    bar.close()
    assert "1/2" in tty.getvalue() and "cpu: Conv-x" in tty.getvalue()
    assert isinstance(make_progress("x", io.StringIO()), LogProgress)
