"""The shared measurement protocol (devices/base.py): minimums, bounds, CV re-measure, statistics."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from latkit.devices.base import (
    Measurement,
    ProtocolSettings,
    measure_with_protocol,
    run_protocol,
    summarize,
)
from latkit.errors import DeviceError


class FakeClock:
    """A clock that advances ``step_s`` every time it is read."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def _counter():
    calls = {"n": 0}

    def run_once():
        calls["n"] += 1
        return None

    return calls, run_once


def test_run_count_minimum_when_runs_are_fast():
    s = ProtocolSettings(warmup_runs=3, warmup_s=0.0, min_runs=50, min_time_s=1e-5)
    calls, run_once = _counter()
    samples, warm = run_protocol(run_once, s, clock=FakeClock(1e-6))
    assert len(samples) == 50
    assert warm == 3
    assert calls["n"] == 53


def test_time_minimum_when_runs_are_slow():
    # each timed run spans two clock reads 10 ms apart (20 ms per loop): 1 s needs 50 runs, not 5
    s = ProtocolSettings(warmup_runs=1, warmup_s=0.0, min_runs=5, min_time_s=1.0)
    _, run_once = _counter()
    samples, _ = run_protocol(run_once, s, clock=FakeClock(0.010))
    assert 49 <= len(samples) <= 51
    assert all(v == pytest.approx(10.0) for v in samples)  # wall time in ms around each call


def test_warmup_time_minimum():
    s = ProtocolSettings(warmup_runs=1, warmup_s=0.5, min_runs=1, min_time_s=0.0)
    _, run_once = _counter()
    _, warm = run_protocol(run_once, s, clock=FakeClock(0.1))
    assert warm >= 3


def test_max_runs_bounds_the_measurement():
    s = ProtocolSettings(warmup_runs=0, warmup_s=0.0, min_runs=10, min_time_s=100.0, max_runs=25)
    _, run_once = _counter()
    samples, _ = run_protocol(run_once, s, clock=FakeClock(1e-6))
    assert len(samples) == 25


def test_own_clock_samples_are_used():
    s = ProtocolSettings(warmup_runs=0, warmup_s=0.0, min_runs=4, min_time_s=0.0)
    samples, _ = run_protocol(lambda: 2.5, s, clock=FakeClock(1.0))
    assert samples == [2.5] * 4


def _fast(**kw) -> ProtocolSettings:
    base = dict(warmup_runs=0, warmup_s=0.0, min_runs=10, min_time_s=0.0, cv_threshold=0.05)
    base.update(kw)
    return ProtocolSettings(**base)


def test_high_cv_remeasures_and_keeps_the_steadier_round():
    noisy = itertools.cycle([1.0, 10.0])
    values = itertools.chain([next(noisy) for _ in range(10)], itertools.repeat(3.0))
    m = measure_with_protocol(lambda: next(values), _fast(), env={"device": "fake"})
    assert m.remeasured
    assert m.first_round_cv is not None and m.first_round_cv > 0.5
    assert m.samples_ms == [3.0] * 10
    assert m.cv == 0.0 and m.median_ms == 3.0


def test_remeasure_keeps_first_round_when_second_is_worse():
    first = [1.0, 1.2] * 5
    second = [1.0, 20.0] * 5
    values = iter(first + second)
    m = measure_with_protocol(lambda: next(values), _fast(), env={})
    assert m.remeasured
    assert m.samples_ms == first


def test_low_cv_does_not_remeasure():
    m = measure_with_protocol(lambda: 2.0, _fast(), env={})
    assert not m.remeasured and m.first_round_cv is None and m.runs == 10


def test_remeasure_can_be_switched_off():
    noisy = itertools.cycle([1.0, 10.0])
    m = measure_with_protocol(lambda: next(noisy), _fast(remeasure_on_high_cv=False), env={})
    assert not m.remeasured and m.cv > 0.5


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_summarize_matches_numpy(n):
    rng = np.random.default_rng(n)
    samples = rng.lognormal(0.0, 0.3, size=n).tolist()
    st = summarize(samples)
    assert st.median_ms == pytest.approx(np.median(samples))
    assert st.p10_ms == pytest.approx(np.percentile(samples, 10))
    assert st.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert st.mean_ms == pytest.approx(np.mean(samples))
    assert st.std_ms == pytest.approx(np.std(samples))
    assert st.min_ms == min(samples) and st.max_ms == max(samples) and st.runs == n
    assert st.p10_ms <= st.median_ms <= st.p90_ms


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [float("inf")]])
def test_summarize_rejects_bad_samples(bad):
    with pytest.raises(DeviceError):
        summarize(bad)


def test_settings_are_validated():
    with pytest.raises(DeviceError):
        ProtocolSettings(min_runs=0)
    with pytest.raises(DeviceError):
        ProtocolSettings(min_runs=10, max_runs=5)


def test_measurement_json_round_trip():
    m = Measurement.from_samples([1.0, 2.0, 3.0], warmup_runs=2, env={"device": "x"},
                                 protocol=ProtocolSettings())
    again = Measurement.from_json(m.to_json())
    assert again == m
    assert json.loads(m.to_json())["median_ms"] == 2.0
    with pytest.raises(DeviceError):
        Measurement.from_dict({**m.to_dict(), "bogus": 1})


def test_loops_per_sample_average_back_to_back_runs():
    # a warm-up run spans two clock reads 0.1 ms apart: 2 ms samples -> 20 loops
    s = ProtocolSettings(warmup_runs=5, warmup_s=0.0, min_runs=6, min_time_s=0.0, min_sample_ms=2.0)
    calls, run_once = _counter()
    clock = FakeClock(1e-4)
    samples, warm = run_protocol(run_once, s, clock=clock)
    assert warm == 5 and len(samples) == 6 and calls["n"] == 5 + 6 * 20
    assert all(v == pytest.approx(0.1 / 20) for v in samples)  # one pair of reads spans 20 runs
    # own-clock devices: the mean of the runs' own times
    m = measure_with_protocol(lambda: 0.25, replace(s, max_loops=4), env={})
    assert m.samples_ms == [0.25] * 6 and m.extra["loops"] == 4
    assert m.protocol["min_sample_ms"] == 2.0


def test_single_run_protocol_keeps_its_settings_dict():
    # settings without loops serialise (and hash) exactly as before loops existed
    d = ProtocolSettings().to_dict()
    assert "min_sample_ms" not in d and "max_loops" not in d
    assert ProtocolSettings(min_sample_ms=1.0).loops_for(0.15) == 7
    assert ProtocolSettings().loops_for(0.15) == 1
    with pytest.raises(DeviceError, match="min_sample_ms"):
        ProtocolSettings(min_sample_ms=-1)
