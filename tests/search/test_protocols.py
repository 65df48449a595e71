"""Latency and accuracy sources: adapters, space checks, caches, spec parsing."""

import json

import numpy as np
import pytest

from latkit.errors import LatkitError, PredictorError
from latkit.profiler.lut import LookupTable
from latkit.search.protocols import (
    AccuracySource,
    AccuracyTable,
    LatencySource,
    MeasuredLatency,
    PredictedAccuracy,
    PredictorLatency,
    TableLatency,
    accuracy_source,
    latency_source,
    parse_latency_specs,
)
from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"


def test_table_latency_is_the_sum_plus_calibration(tmp_path, fakes):
    sp = get_space(SPACE)
    archs = list(sp.enumerate(160))[:20]
    d = fakes.make_lut(tmp_path / "lut", SPACE, [160])
    src = latency_source("cpu", f"lut:{d}", SPACE)
    assert isinstance(src, LatencySource) and isinstance(src, TableLatency)
    table = LookupTable.load(d)
    want = np.array([table.predict_arch_sum(sp, a) for a in archs])
    assert np.allclose(src.predict_ms(archs), want)
    d2 = fakes.make_lut(tmp_path / "lut2", SPACE, [160], calibration={"scale": 1.5, "offset_ms": 0.2})
    assert np.allclose(latency_source("cpu", f"lut:{d2}", SPACE).predict_ms(archs), 1.5 * want + 0.2)


def test_table_for_another_space_is_refused(tmp_path, fakes):
    d = fakes.make_lut(tmp_path / "lut", SPACE, [160], meta_space="ofa-mbv3-w1.0")
    with pytest.raises(PredictorError, match=f"is for space ofa-mbv3-w1.0, not {SPACE}"):
        latency_source("cpu", f"lut:{d}", SPACE)


def test_predictor_adapters_check_space_and_target(fakes):
    lat = fakes.Predictor({"space": SPACE, "target": "latency_ms", "device": "cpu"}, fakes.ms)
    src = PredictorLatency(lat, SPACE, "cpu", source="predictor a.json")
    archs = list(get_space(SPACE).enumerate(128))[:5]
    assert src.predict_ms(archs).shape == (5,)
    with pytest.raises(PredictorError) as e:
        PredictorLatency(fakes.Predictor({"space": "ofa-mbv3-w1.0", "target": "latency_ms"}),
                         SPACE, "cpu", source="predictor b.json")
    assert str(e.value).startswith(f"predictor b.json is for space ofa-mbv3-w1.0, not {SPACE}")
    with pytest.raises(PredictorError, match="not latency_ms"):
        PredictorLatency(fakes.Predictor({"space": SPACE, "target": "top1"}), SPACE, "cpu")
    with pytest.raises(PredictorError, match="not top1"):
        PredictedAccuracy(fakes.Predictor({"space": SPACE, "target": "latency_ms"}), SPACE)
    acc = PredictedAccuracy(fakes.Predictor({"space": SPACE, "target": "top1"}, fakes.top1), SPACE)
    assert isinstance(acc, AccuracySource) and acc.candidates() is None
    bad = PredictedAccuracy(fakes.Predictor({"space": SPACE, "target": "top1"},
                                            lambda sp, a: float("nan")), SPACE)
    with pytest.raises(PredictorError, match="non-finite"):
        bad.top1(archs)


def test_accuracy_table(tmp_path, fakes):
    sp = get_space(SPACE)
    archs = list(sp.enumerate(160))[:10]
    p = fakes.write_acc_csv(tmp_path / "acc.csv", SPACE, archs)
    src = accuracy_source(str(p), SPACE)
    assert isinstance(src, AccuracyTable) and src.candidates() == archs
    assert np.allclose(src.top1(archs), [fakes.top1(sp, a) for a in archs], atol=1e-4)
    missing = list(sp.enumerate(128))[0]
    with pytest.raises(LatkitError, match=f"{missing} is not in accuracy table"):
        src.top1([missing])
    with pytest.raises(PredictorError, match=f"is for space {SPACE}, not ofa-mbv3-w1.0"):
        accuracy_source(str(p), "ofa-mbv3-w1.0")
    (tmp_path / "bad.csv").write_text("key,acc\nx,1\n")
    with pytest.raises(LatkitError, match="needs columns arch,top1"):
        accuracy_source(str(tmp_path / "bad.csv"), SPACE)
    (tmp_path / "pct.csv").write_text(f"arch,top1\n{archs[0]},0.71\n{archs[1]},171\n")
    with pytest.raises(LatkitError, match="percentage"):
        accuracy_source(str(tmp_path / "pct.csv"), SPACE)
    with pytest.raises(LatkitError, match="--accuracy takes"):
        accuracy_source("acc.txt", SPACE)


def test_latency_spec_parsing():
    assert parse_latency_specs("cpu=a.json, pixel4=lut:/x,cuda=measure") == [
        ("cpu", "a.json"), ("pixel4", "lut:/x"), ("cuda", "measure")]
    for bad in ("cpu", "=a.json", "cpu=", "", "cpu=a.json,cpu=b.json"):
        with pytest.raises(LatkitError):
            parse_latency_specs(bad)


def test_measured_latency_caches_by_full_key(tmp_path, fakes, monkeypatch):
    import latkit.profiler.export as export

    monkeypatch.setattr(export, "export_arch", lambda space, arch, fmt, **kw: fakes.export(arch, fmt))
    sp = get_space(SPACE)
    a128, a160 = sp.min_arch(128), sp.min_arch(160)  # same blocks, different resolution
    dev = fakes.Device(space=SPACE)
    src = MeasuredLatency(dev, SPACE, tmp_path / "cache")
    ms = src.predict_ms([a128, a160, a128])
    assert ms[0] == ms[2] and ms[0] < ms[1] and dev.benchmarked == [str(a128), str(a160)]
    assert np.array_equal(src.predict_ms([a160, a128, a160]), ms[[1, 0, 1]])  # from the cache
    assert dev.benchmarked == [str(a128), str(a160)] and src.predict_ms([]).shape == (0,)
    again = MeasuredLatency(fakes.Device(space=SPACE), SPACE, tmp_path / "cache")
    assert np.array_equal(again.predict_ms([a160, a128]), ms[[1, 0]])
    assert again.device_obj.benchmarked == []
    lines = (tmp_path / "cache" / "measured-cpu.jsonl").read_text().splitlines()
    assert [json.loads(l)["arch"] for l in lines] == [str(a128), str(a160)]
