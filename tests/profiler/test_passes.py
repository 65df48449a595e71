"""The default protocol: interleaved passes (stored at once, resumable), the reference model."""

from __future__ import annotations

import _thread
import csv
import json
import time
import zlib
from pathlib import Path

import pytest

from latkit.devices.base import Measurement, combine_passes
from latkit.errors import DeviceError
from latkit.profiler.artifacts import ArtifactMaker
from latkit.profiler.campaign import (
    QUICK_PROTOCOL,
    CampaignSettings,
    DeviceSpec,
    run_e2e_campaign,
    run_layer_campaign,
    sample_archs,
)
from latkit.profiler.jobs import _Job
from latkit.profiler.lut import LookupTable
from latkit.profiler.passes import LEVEL_SHIFT, Reference, pass_schedule
from latkit.profiler.store import MeasurementStore
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")


def passes(n: int, reference: bool = False) -> CampaignSettings:
    return CampaignSettings(protocol=QUICK_PROTOCOL, passes=n, reference=reference)


class PassDevice:
    """'Measures' a file as a deterministic number times a factor that changes every call (drift)."""

    formats = ("onnx",)

    def __init__(self, name: str = "d", drift=(1.0, 1.1, 0.95), after=None) -> None:
        self.name, self.drift, self.after = name, drift, after
        self.calls: list[str] = []

    def benchmark(self, path, settings=None) -> Measurement:
        name = Path(path).name
        self.calls.append(name)
        v = (0.1 + (zlib.crc32(name.encode()) % 1000) / 1000) * self.drift[(len(self.calls) - 1)
                                                                           % len(self.drift)]
        m = Measurement.from_samples([v * 0.99, v, v * 1.01], warmup_runs=1,
                                     env={"device": self.name}, protocol=settings)
        if self.after:
            self.after(len(self.calls))
            time.sleep(0.05)  # the main thread handles the interrupt while this one still works
        return m

    def environment(self):
        return {"device": self.name, "runtime": "scripted"}

    def close(self):
        pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture()
def no_network_export(monkeypatch, tmp_path):
    """Whole-subnet 'exports' as small named files: a scripted device only reads the name."""
    def network(self, space, arch, fmt):
        path = tmp_path / f"{arch}.{fmt}"
        path.write_text(str(arch))
        return path

    monkeypatch.setattr(ArtifactMaker, "network", network)


def layer_run(tmp_path, dev, cache, settings, limit=4):
    return run_layer_campaign(SPACE, [224], [DeviceSpec(dev.name, device=dev)],
                              tmp_path / "store.sqlite", tmp_path / "out", settings=settings,
                              limit=limit, cache_dir=cache)


def test_pass_schedule_interleaves_and_resumes():
    jobs = [_Job(k, None) for k in "abcd"]
    order = pass_schedule(jobs, 3, {})
    assert [p for _, p in order] == [0] * 4 + [1] * 4 + [2] * 4
    assert [j.key for j, _ in order[:4]] == list("abcd")
    for p in range(3):  # every pass measures every job once
        assert sorted(j.key for j, q in order if q == p) == list("abcd")
    assert [j.key for j, _ in order[4:8]] != list("abcd") or [j.key for j, _ in order[8:]] != list("abcd")
    rest = pass_schedule(jobs, 3, {"a": 3, "b": 1})
    assert sorted((j.key, p) for j, p in rest) == sorted(
        [("b", 1), ("b", 2), ("c", 0), ("c", 1), ("c", 2), ("d", 0), ("d", 1), ("d", 2)])


def test_combine_passes_takes_the_median_of_the_medians():
    ms = [Measurement.from_samples([v, v * 1.02], warmup_runs=2, env={}) for v in (1.0, 1.3, 0.9)]
    c = combine_passes(ms)
    assert c.median_ms == pytest.approx(ms[0].median_ms)
    assert c.runs == 6 and len(c.samples_ms) == 6 and c.extra["passes"] == 3
    assert c.extra["pass_medians_ms"] == [m.median_ms for m in ms]
    assert c.extra["pass_spread"] == pytest.approx((1.3 - 0.9) * 1.01 / (1.01))
    one = combine_passes(ms[:1])
    assert one.median_ms == ms[0].median_ms and one.extra["passes"] == 1
    with pytest.raises(DeviceError):
        combine_passes([])


def test_layer_campaign_measures_interleaved_passes_and_reports_their_median(tmp_path, cache):
    dev = PassDevice()
    res = layer_run(tmp_path, dev, cache, passes(3))
    assert (res.measured, res.entries, res.complete) == (12, 4, True)
    with MeasurementStore(tmp_path / "store.sqlite") as st:
        rows = list(st.records("layer"))  # in measuring order
    assert [r.measurement["extra"]["pass"] for r in rows] == [0] * 4 + [1] * 4 + [2] * 4
    assert len({r.key for r in rows[:4]}) == 4  # pass 1 over every layer before any second pass
    t = LookupTable.load(tmp_path / "out")
    by_key: dict[str, list[float]] = {}
    for r in rows:
        by_key.setdefault(r.key, []).append(r.median_ms)
    for key, meds in by_key.items():
        assert t.entry(key).median_ms == pytest.approx(sorted(meds)[1])  # median of three passes
    assert t.meta["passes"] == 3 and t.meta["statistic"] == "median of passes"


def test_a_killed_campaign_resumes_without_losing_a_pass(tmp_path, cache):
    def interrupt(n: int) -> None:
        if n == 6:  # in the middle of the second pass
            _thread.interrupt_main()
            time.sleep(0.5)  # let the main thread take the interrupt, even on a loaded machine

    res = layer_run(tmp_path, PassDevice(after=interrupt), cache, passes(3))
    assert res.interrupted and 6 <= res.measured < 12
    first = res.measured
    with MeasurementStore(tmp_path / "store.sqlite") as st:
        assert st.count("layer") == first  # every pass taken is stored
    dev = PassDevice()
    res = layer_run(tmp_path, dev, cache, passes(3))
    assert res.complete and res.skipped == first and res.measured == 12 - first
    assert len(dev.calls) == 12 - first
    more = layer_run(tmp_path, PassDevice(), cache, passes(4))  # one more pass each, nothing else
    assert (more.measured, more.skipped) == (4, 12)


def test_e2e_csv_carries_the_passes(tmp_path, cache, no_network_export):
    archs = sample_archs(SPACE, 2, 0, [128])
    out = tmp_path / "e2e.csv"
    res = run_e2e_campaign(SPACE, archs, [DeviceSpec("d", device=PassDevice())],
                           tmp_path / "store.sqlite", out, settings=passes(3), cache_dir=cache)
    assert res.complete and res.measured == 6
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 2
    for r in rows:
        ps = [float(v) for v in r["pass_ms"].split(";")]
        assert int(r["passes"]) == 3 and len(ps) == 3
        assert float(r["latency_ms"]) == pytest.approx(sorted(ps)[1])


def test_reference_model_is_measured_and_recorded(tmp_path, cache, no_network_export):
    dev = PassDevice()
    res = layer_run(tmp_path, dev, cache, passes(2, reference=True), limit=2)
    assert res.complete and res.measured == 4
    with MeasurementStore(tmp_path / "store.sqlite") as st:
        refs = list(st.records("reference"))
        layers = list(st.records("layer"))
    assert len(refs) >= 1 and refs[0].key == str(SPACE.min_arch(224))
    for r in layers:
        ref = r.measurement["extra"]["reference"]
        assert ref["key"] == refs[0].key and ref["ms"] > 0 and "drift" in ref
    meta = LookupTable.load(tmp_path / "out").meta
    assert meta["reference"]["readings"] == len(refs) and meta["reference"]["median_ms"] > 0


def test_reference_flags_a_level_shift(tmp_path):
    st = MeasurementStore(tmp_path / "s.sqlite")
    ref = Reference(st, SPACE.name, "d", {"x": 1}, "ref", lambda: tmp_path / "ref.onnx",
                    interval_s=0.0)

    def reading(ms):
        return lambda path: Measurement.from_samples([ms, ms], warmup_runs=0, env={})

    for ms in (10.0, 10.1, 9.9):
        ref.measure(reading(ms))
    m = Measurement.from_samples([1.0], warmup_runs=0, env={})
    ref.annotate(m, ref.level())
    assert m.extra["reference"]["level_shift"] is False
    ref.measure(reading(10.0 * (1 + 2 * LEVEL_SHIFT)))
    ref.annotate(m, ref.level())
    assert m.extra["reference"]["drift"] > LEVEL_SHIFT and m.extra["reference"]["level_shift"]
    c = combine_passes([m, Measurement.from_samples([1.1], warmup_runs=0, env={})])
    assert c.extra["level_shift"] is True
    st.close()


def test_passes_must_be_positive():
    with pytest.raises(DeviceError, match="passes"):
        CampaignSettings(passes=0)


def test_lat_profile_resume_with_more_passes_adds_only_the_missing_ones(tmp_path, capsys):
    from latkit.cli import main

    out = tmp_path / "lut"
    base = ["profile", "--device", "cpu", "--space", SPACE.name, "--resolutions", "224",
            "--limit", "2", "--quick", "--out", str(out), "--json", "--quiet"]
    assert main(base) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (first["measured"], first["entries"]) == (2, 2)  # --quick: one pass
    assert main(["profile", "--resume", "--out", str(out), "--passes", "3", "--json",
                 "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (again["measured"], again["skipped"], again["entries"]) == (4, 2, 2)
    assert LookupTable.load(out).meta["passes"] == 3


def test_a_cpu_campaign_pairs_every_pass_and_scales_its_figures_by_one_level(tmp_path, cache):
    from latkit.devices import levels

    archs = sample_archs(SPACE, 2, 1, [128])
    out = tmp_path / "e2e.csv"
    res = run_e2e_campaign(SPACE, archs, ["cpu"], tmp_path / "store.sqlite", out,
                           settings=passes(2, reference=True), cache_dir=cache)
    assert res.complete and res.measured == 4
    with MeasurementStore(tmp_path / "store.sqlite") as st:
        rows = list(st.records("network"))
    ms = [r.to_measurement() for r in rows]
    assert all(m.extra["paired"]["ratio"] > 0 and m.extra["paired"]["pairs"] >= 5 for m in ms)
    assert {r.settings["paired_reference"] for r in rows} == {1}  # part of the identity
    level = levels.level_of(ms[0])["level_ms"]
    figures = {}
    for r, m in zip(rows, ms, strict=True):
        figures.setdefault(r.key, []).append(m.extra["paired"]["ratio"] * level)
    for row in csv.DictReader(open(out)):
        assert float(row["latency_ms"]) == pytest.approx(sorted(figures[row["arch"]])[0] / 2
                                                         + sorted(figures[row["arch"]])[1] / 2)
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["reference"]["cpu"]["paired_level"]["level_ms"] == pytest.approx(level)
