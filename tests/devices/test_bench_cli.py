"""`lat bench` and `lat device list` end to end, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FAST = ["--warmup-runs", "1", "--min-runs", "5", "--min-time", "0.01"]


def lat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latkit", *args], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]
    assert proc.stdout == ""
    return lines[0]


def test_bench_prints_a_table(onnx_model):
    proc = lat("bench", "--device", "cpu", str(onnx_model), *FAST)
    assert proc.returncode == 0, proc.stderr
    for word in ("median", "p10 / p90", "cv", "onnxruntime", "tiny.onnx"):
        assert word in proc.stdout


def test_bench_json(onnx_model):
    proc = lat("bench", str(onnx_model), "--json", "--threads", "1", *FAST)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv", "runs", "env", "samples_ms"):
        assert key in data
    assert data["runs"] >= 5 and data["p10_ms"] <= data["median_ms"] <= data["p90_ms"]
    assert data["env"]["device"] == "cpu" and data["env"]["threads"] == 1
    assert data["protocol"]["min_runs"] == 5 and data["protocol"]["warmup_runs"] == 1


def test_bench_passes_report_their_median_pinned_and_scheduled(onnx_model):
    proc = lat("bench", str(onnx_model), "--json", "--passes", "3", *FAST)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    meds = data["extra"]["pass_medians_ms"]
    assert data["extra"]["passes"] == 3 and len(meds) == 3
    assert data["median_ms"] == sorted(meds)[1] and data["runs"] >= 15
    assert data["env"]["scheduling"]["policy"] in ("SCHED_FIFO", "normal")
    if len(os.sched_getaffinity(0)) > 1:  # pinned to one CPU by default where there is a choice
        assert data["env"]["affinity_pinned"] and len(data["env"]["affinity_cpus"]) == 1
    table = lat("bench", str(onnx_model), "--passes", "2", *FAST)
    assert table.returncode == 0 and "passes" in table.stdout and "scheduling" in table.stdout
    assert_one_line_error(lat("bench", str(onnx_model), "--passes", "0"), "--passes")


def test_bench_affinity(onnx_model):
    proc = lat("bench", str(onnx_model), "--json", "--affinity", "0x1", *FAST)
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)["env"]
    assert env["affinity_mask"] == "1" and env["affinity_pinned"] is True


@pytest.mark.tflite
def test_bench_tflite(tflite_model):
    proc = lat("bench", "--device", "cpu-tflite", str(tflite_model), "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["env"]["delegate"] == "xnnpack"
    assert proc.stderr == ""  # the runtime's INFO chatter is kept off the terminal


def test_unknown_device_lists_known_ones(onnx_model):
    assert_one_line_error(lat("bench", "--device", "pixel99", str(onnx_model)),
                          "unknown device 'pixel99'", "cpu, cpu-tflite, cuda")


def test_missing_file(tmp_path):
    assert_one_line_error(lat("bench", str(tmp_path / "nope.onnx")), "does not exist")


def test_non_model_file(not_a_model):
    assert_one_line_error(lat("bench", str(not_a_model)), "not a loadable ONNX model")


def test_wrong_format_for_device(tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"\0" * 64)
    assert_one_line_error(lat("bench", "--device", "cpu", str(f)), "--device cpu-tflite")


def test_option_the_device_does_not_take(onnx_model):
    assert_one_line_error(lat("bench", str(onnx_model), "--serial", "emulator-5554"), "serial")


def test_bad_affinity(onnx_model):
    assert_one_line_error(lat("bench", str(onnx_model), "--affinity", "zz"), "hex CPU mask")


def test_device_list():
    proc = lat("device", "list")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert {"cpu", "cpu-tflite", "cuda"} <= set(names)


def test_device_list_json():
    proc = lat("device", "list", "--json")
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} >= {"cpu", "cpu-tflite", "cuda"}


def test_devices_cli_imports_no_runtime():
    code = (
        "import argparse, sys\n"
        "from latkit.devices import cli, list_devices\n"
        "sub = argparse.ArgumentParser().add_subparsers()\n"
        "cli.register_bench(sub); cli.register_device(sub); list_devices()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('onnxruntime', 'torch', 'ai_edge_litert', 'numpy')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
