"""The paired protocol: every sample beside a run of the reference model, the figure their ratio
times the device's level, so that a level shift of the machine leaves the figure where it was."""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
import time

import pytest

from latkit.devices import get_device, levels
from latkit.devices.base import (
    Measurement,
    ProtocolSettings,
    apply_level,
    combine_passes,
    measure_with_protocol,
)
from latkit.devices.host import realtime
from latkit.devices.reference import reference_bytes, reference_sha256

PROTOCOL = ProtocolSettings(warmup_runs=2, warmup_s=0.0, min_runs=15, min_time_s=0.0,
                            remeasure_on_high_cv=False)


class Machine:
    """Work that takes ``base_ms`` times the machine's current slowness (busy-waiting, on the wall
    clock the protocol reads), as a shared core, a neighbour or a frequency change makes it."""

    def __init__(self) -> None:
        self.slow = 1.0

    def work(self, base_ms: float):
        def run_once() -> None:
            end = time.perf_counter() + base_ms * self.slow / 1e3
            while time.perf_counter() < end:
                pass
        return run_once


def test_a_level_shift_moves_the_measured_figure_and_not_the_paired_one():
    machine = Machine()
    subnet, ref = machine.work(1.0), machine.work(0.4)
    passes = []
    for slow in (1.0, 1.35, 0.85, 1.2):  # a machine drifting by up to 35% between passes
        machine.slow = slow
        with realtime(10, required=False):  # busy-waits a loaded test machine would preempt
            passes.append(measure_with_protocol(subnet, PROTOCOL, {"device": "m"},
                                                reference_once=ref, reference={"sha256": "x"}))
    raw = [m.median_ms for m in passes]
    assert (max(raw) - min(raw)) / statistics.median(raw) > 0.3  # the shift is in what was measured
    for m in passes:
        paired = m.extra["paired"]
        assert paired["pairs"] == len(m.samples_ms) == len(paired["ref_samples_ms"]) >= 15
        assert paired["ratio"] == pytest.approx(2.5, rel=0.08)
    level = statistics.median(m.extra["paired"]["ref_ms"] for m in passes)
    c = combine_passes(passes, level)
    assert c.extra["pass_spread"] < 0.1  # and hardly in the figure
    assert c.extra["raw_pass_medians_ms"] == raw
    assert c.median_ms == pytest.approx(2.5 * level, rel=0.08)
    assert combine_passes(passes).median_ms == statistics.median(raw)  # no level: as measured


def test_apply_level_scales_every_statistic_and_keeps_what_was_measured():
    m = Measurement.from_samples([2.0, 2.2, 2.4], warmup_runs=1, env={})
    assert apply_level(m, 1.0) is m  # a pass without a pairing is the figure as measured
    m.extra["paired"] = {"ratio": 4.0, "ref_ms": 0.5, "sha256": "x"}
    assert apply_level(m, None) is m
    f = apply_level(m, 0.6)
    assert f.median_ms == pytest.approx(2.4) and f.extra["raw_median_ms"] == pytest.approx(2.2)
    k = 2.4 / 2.2
    assert f.p10_ms == pytest.approx(m.p10_ms * k) and f.mean_ms == pytest.approx(m.mean_ms * k)
    assert f.samples_ms == pytest.approx([v * k for v in m.samples_ms]) and f.cv == m.cv
    assert m.median_ms == pytest.approx(2.2)  # the pass itself is left alone


def test_the_level_book_is_the_median_of_its_readings_per_identity(tmp_path):
    ident = {"device": "cpu", "threads": 1, "reference_sha256": "a"}
    book = levels.LevelBook(ident, tmp_path)
    assert book.level() is None
    book.add([2.0, 2.2, float("nan"), -1.0, 1.8, 20.0])  # not finite or not positive: dropped
    lv = book.level()
    assert lv["readings"] == 4 and lv["level_ms"] == pytest.approx(2.1)
    again = levels.LevelBook(dict(ident), tmp_path)  # another process reads the same level
    assert again.path == book.path and again.level()["level_ms"] == pytest.approx(2.1)
    other = levels.LevelBook({**ident, "threads": 2}, tmp_path)  # other settings: another level
    assert other.path != book.path and other.level() is None
    book.path.write_text("{not json")  # damaged: counts as empty, replaced by the next readings
    assert book.level() is None
    book.add([3.0])
    assert book.level()["level_ms"] == 3.0 and json.loads(book.path.read_text())["version"] == 1
    book.add([1.0] * (levels.KEEP + 5))
    assert book.level()["readings"] == levels.KEEP


def test_the_reference_model_is_the_same_bytes_everywhere():
    # its sha256 is part of every level's identity: it must not move with numpy's or onnx's version
    assert reference_sha256() == hashlib.sha256(reference_bytes()).hexdigest()
    import onnx

    model = onnx.load_from_string(reference_bytes())
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 13 and model.ir_version == 7
    assert reference_sha256() == "975106ef276dc719986a3941ddc79372fdf240a2679adf66a0b70f1ff2d20a6a"


def test_the_cpu_device_pairs_and_records_its_level(onnx_model):
    with get_device("cpu") as dev:
        m = dev.benchmark(onnx_model, PROTOCOL, reference=True)
        alone = dev.benchmark(onnx_model, PROTOCOL)
    p = m.extra["paired"]
    assert p["sha256"] == reference_sha256() and p["pairs"] >= 15 and p["ratio"] > 0
    assert p["ref_ms"] > 0 and m.extra["loops"] >= 1
    assert "paired" not in alone.extra
    lv = levels.level_of(m)
    assert lv["readings"] == 1 and lv["level_ms"] == pytest.approx(p["ref_ms"])
    assert apply_level(m, lv["level_ms"]).median_ms == pytest.approx(p["ratio"] * p["ref_ms"])


def test_lat_bench_pairs_by_default_and_says_so(onnx_model):
    fast = ["--warmup-runs", "1", "--min-runs", "5", "--min-time", "0.01"]

    def bench(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "latkit", "bench", str(onnx_model), *fast, *extra],
                              capture_output=True, text=True, timeout=120)

    data = json.loads(bench("--json").stdout)
    paired, level = data["extra"]["paired"], data["extra"]["level"]
    assert level["readings"] == 3  # one reading per pass, kept in $LATKIT_HOME/levels
    assert data["median_ms"] == pytest.approx(statistics.median(data["extra"]["pass_medians_ms"]))
    assert len(data["extra"]["raw_pass_medians_ms"]) == 3 and paired["ratio"] > 0
    table = bench()
    assert table.returncode == 0 and "reference   ratio" in table.stdout and "6 readings" in table.stdout
    alone = json.loads(bench("--json", "--no-reference").stdout)
    assert "paired" not in alone["extra"] and "level" not in alone["extra"]
