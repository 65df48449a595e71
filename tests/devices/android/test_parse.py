"""The benchmark_model parser on captured-style output of every known variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from latkit.devices.android.parse import BenchmarkCrashError, BenchmarkFlagError, parse_benchmark_output
from latkit.devices.android.parse_ops import NodeTypeRow, OpRow
from latkit.devices.android.parse_stats import parse_stats_line
from latkit.errors import DeviceError, ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_modern_with_percentiles():
    r = parse_benchmark_output(fixture("modern_percentiles.txt"))
    assert r.summary_format == "modern"
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.inference_avg_us) == (
        41872, 31877, 20433.2, 19804.4)
    s = r.stats
    assert (s.count, s.first_us, s.curr_us, s.min_us, s.max_us, s.avg_us, s.std_us) == (
        51, 19790, 19702, 19488, 20911, 19804.4, 262)
    assert (s.p5_us, s.median_us, s.p95_us) == (19521, 19742, 20385)
    assert not s.all_same
    assert r.warmup_stats.count == 25 and r.warmup_stats.median_us == 19850
    assert r.num_threads == 1
    assert r.graph == "/data/local/tmp/latkit/ofa-mbv3-w1.0_min_r224.tflite"
    assert r.model_size_mb == pytest.approx(13.6437)
    assert (r.init_mem_mb, r.overall_mem_mb) == (24.6289, 31.4531)
    assert r.op_profile is None and r.op_rows == () and r.warnings == ()


def test_modern_without_percentiles():
    r = parse_benchmark_output(fixture("modern.txt"))
    assert r.summary_format == "modern"
    assert r.stats.count == 70 and r.stats.avg_us == 14290.9 and r.stats.std_us == 452
    assert r.stats.median_us is None and r.stats.p5_us is None
    assert r.warmup_stats.count == 35
    assert r.num_threads == 4
    assert r.stats.cv == pytest.approx(452 / 14290.9)


def test_all_same():
    r = parse_benchmark_output(fixture("all_same.txt"))
    s = r.stats
    assert s.all_same and s.count == 50
    assert s.min_us == s.max_us == s.avg_us == s.curr_us == 1000 and s.std_us == 0
    assert s.first_us is None
    assert r.warmup_stats.count == 1 and r.warmup_stats.curr_us == 1203
    assert r.inference_avg_us == 1000


def test_legacy_average():
    r = parse_benchmark_output(fixture("legacy_average.txt"))
    assert r.summary_format == "legacy"
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.inference_avg_us) == (
        3215, None, 36625.4, 36205.7)
    assert r.stats.count == 50 and r.stats.min_us == 35712 and r.stats.max_us == 37990
    assert r.num_threads == 4


def test_no_stats():
    r = parse_benchmark_output(fixture("no_stats.txt"))
    assert r.summary_format == "no_stats"
    assert r.inference_avg_us == 151022 and r.init_us == 1933
    assert r.stats.count == 50 and r.stats.avg_us == 151022


def test_op_profiling_newer_without_start_column():
    r = parse_benchmark_output(fixture("op_profiling.txt"))
    assert r.stats.count == 937
    rows = r.op_rows
    assert len(rows) == 9 and all(isinstance(x, OpRow) for x in rows)
    first = rows[0]
    assert first.node_type == "Convolution (NHWC, F32) GEMM"  # spaces kept: split on tabs
    assert (first.first_ms, first.avg_ms, first.times_called) == (0.402, 0.371, 1)
    assert first.name == "Delegate/Convolution (NHWC, F32) GEMM:0"
    assert first.start_ms is None
    assert rows[-1].cdf_pct == pytest.approx(100.0)
    assert [x.node_type for x in rows].count("Hardswish (NC, F32)") == 2
    by_type = r.node_type_rows
    assert all(isinstance(x, NodeTypeRow) for x in by_type)
    conv = next(x for x in by_type if x.node_type == "Convolution (NHWC, F32) GEMM")
    assert conv.count == 2 and conv.avg_ms == pytest.approx(0.668)
    fc = next(x for x in by_type if x.node_type == "Fully Connected (NC, F32) GEMM")
    assert fc.times_called == 2
    assert r.op_profile.nodes_executed == 9
    assert r.op_profile.timings.count == 937
    assert len(r.op_profile.top_by_time) == 9
    assert r.op_profile.top_by_time[0].avg_ms == max(x.avg_ms for x in rows)
    init = r.init_profile
    assert [x.node_type for x in init.run_order] == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert init.run_order[1].times_called == 2 and init.timings.curr_us == 2603


def test_op_profiling_older_with_start_column():
    r = parse_benchmark_output(fixture("op_profiling_start.txt"))
    rows = r.op_rows
    assert len(rows) == 10
    assert rows[0].start_ms == 0.004 and rows[0].node_type == "CONV_2D"
    assert rows[2].node_type == "DEPTHWISE_CONV_2D" and rows[2].start_ms == 0.398
    assert rows[2].name == "[model/depthwise/depthwise]:2"
    assert {x.node_type for x in r.node_type_rows} >= {"CONV_2D", "HARD_SWISH", "FULLY_CONNECTED"}
    assert r.init_profile.run_order[0].node_type == "AllocateTensors"


def test_unconsumed_flags_is_an_error_naming_the_flags():
    with pytest.raises(BenchmarkFlagError) as info:
        parse_benchmark_output(fixture("unconsumed_flags.txt"))
    assert info.value.flags == ("--use_hexagon=true", "--hexagon_profiling=false")
    assert "--use_hexagon=true" in str(info.value)
    assert isinstance(info.value, ParseError)


@pytest.mark.parametrize("name, needle", [
    ("crash_segfault.txt", "Segmentation fault"),
    ("crash_model_load.txt", "Failed to mmap model /data/local/tmp/latkit/missing.tflite"),
    ("crash_aborted.txt", "Cannot find the corresponding input_layer"),
])
def test_crashes_raise_with_the_line(name, needle):
    with pytest.raises(BenchmarkCrashError) as info:
        parse_benchmark_output(fixture(name))
    assert needle in str(info.value)
    assert isinstance(info.value, DeviceError)


def test_truncated_output_raises_with_last_lines():
    with pytest.raises(ParseError) as info:
        parse_benchmark_output(fixture("truncated.txt"))
    msg = str(info.value)
    assert "no summary line" in msg
    assert "Running benchmark for at least 50 iterations" in msg


def _replace(name: str, old: str, new: str) -> str:
    text = fixture(name)
    assert old in text
    return text.replace(old, new)


def test_malformed_summary_number_raises_with_the_line():
    text = _replace("modern.txt", "Inference (avg): 14290.9", "Inference (avg): 14.29.0")
    with pytest.raises(ParseError, match=r"Inference \(avg\).*14\.29\.0"):
        parse_benchmark_output(text)


def test_malformed_stats_number_raises():
    text = _replace("modern.txt", "min=13728", "min=13x728")
    with pytest.raises(ParseError, match="min=13x728"):
        parse_benchmark_output(text)


def test_summary_inconsistent_with_stats_raises():
    text = _replace("modern.txt", "Inference (avg): 14290.9", "Inference (avg): 0")
    with pytest.raises(ParseError, match="Inference \\(avg\\) 0 us"):
        parse_benchmark_output(text)


def test_unknown_summary_form_raises():
    text = _replace("modern.txt", "Inference timings in us: Init: 52687,",
                    "Inference timings in us: Start: 52687,")
    with pytest.raises(ParseError, match="unknown form"):
        parse_benchmark_output(text)


def test_missing_timed_stats_line_raises():
    text = _replace("modern.txt", "INFO: count=70 first=14941 curr=14066 min=13728 max=16145 "
                    "avg=14290.9 std=452\n", "")
    with pytest.raises(ParseError, match="no statistics line"):
        parse_benchmark_output(text)


def test_empty_and_non_text_raise():
    with pytest.raises(ParseError):
        parse_benchmark_output("")
    with pytest.raises(ParseError):
        parse_benchmark_output(b"bytes")  # type: ignore[arg-type]


def test_error_lines_without_crash_are_kept_as_warnings():
    text = fixture("modern.txt").replace(
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "ERROR: NN API returned error ANEURALNETWORKS_OP_FAILED at line 4350 while running "
        "computation.")
    r = parse_benchmark_output(text)
    assert r.warnings and "ANEURALNETWORKS_OP_FAILED" in r.warnings[0]


def test_op_table_split_on_spaces_is_rejected():
    text = fixture("op_profiling.txt").replace("\t", "    ")
    with pytest.raises(ParseError, match="tab"):
        parse_benchmark_output(text)


def test_op_row_with_missing_cells_raises():
    text = fixture("op_profiling.txt")
    row = next(ln for ln in text.splitlines() if "Delegate/Add (ND, F32):8" in ln)
    broken = "\t".join(row.split("\t")[:4])
    with pytest.raises(ParseError, match="cells"):
        parse_benchmark_output(text.replace(row, broken))


@pytest.mark.parametrize("line, expected", [
    ("count=5 first=10 curr=12 min=9 max=14 avg=11.4 std=1.7", (5, 9, 14, 11.4, None)),
    ("INFO: count=3 curr=812(all same)", (3, 812, 812, 812, None)),
    ("count=1 curr=812", (1, 812, 812, 812, None)),
    ("count=50 curr=7(all same) p5=7 median=7 p95=7", (50, 7, 7, 7, 7)),
    ("count=70 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798",
     (70, 2727568, 3189954, 2950340, None)),
    ("curr=12 count=5 min=9 max=14 avg=11.4 std=1.7", (5, 9, 14, 11.4, None)),  # oldest order
])
def test_stats_line_variants(line, expected):
    s = parse_stats_line(line)
    assert (s.count, s.min_us, s.max_us, s.avg_us, s.median_us) == expected


def test_stats_line_count_zero_is_none():
    assert parse_stats_line("count=0") is None


@pytest.mark.parametrize("line", [
    "count=5 first=10 curr=12 min=9 max=14 avg=11.4",            # no std
    "count=5 first=10 curr=12 min=9 max=14 avg=11.4 std=1.7 p5=9",  # partial percentiles
    "count=5 first=10 curr=12 min=9 max=14 avg=20 std=1.7",      # avg above max
    "count=5 first=10 curr=12 min=9 max=14 avg=nan std=1.7",
    "count=5 first=10 curr=12 min=9 max=14 avg=11 std=1 bogus=3",
    "count=-1 curr=3",
    "count=5 curr=3",                                            # neither all same nor full
    "count=5 first=10 curr=12(all same) min=9 max=14 avg=11.4 std=1.7",
])
def test_bad_stats_lines_raise(line):
    with pytest.raises(ParseError):
        parse_stats_line(line)


def test_long_lines_are_truncated_in_messages():
    text = fixture("modern.txt").replace("Inference (avg): 14290.9",
                                         "Inference (avg): 14290.9x" + "y" * 5000)
    with pytest.raises(ParseError) as info:
        parse_benchmark_output(text)
    assert len(str(info.value)) < 800
