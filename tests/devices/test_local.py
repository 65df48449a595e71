"""Local CPU devices: onnxruntime (cpu) and LiteRT (cpu-tflite); their helpers and their errors."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from latkit.devices.host import cpu_mask, host_snapshot, parse_affinity, pinned
from latkit.devices.local import one_line, random_input, resolve_shape
from latkit.devices.onnx_cpu import OnnxCpuDevice, graph_opt_level_name
from latkit.devices.tflite_cpu import LiteRtCpuDevice
from latkit.errors import DeviceError
from latkit.fileio import sha256_file

ALLOWED = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
needs_affinity = pytest.mark.skipif(ALLOWED is None, reason="CPU affinity needs Linux")


# --- helpers -------------------------------------------------------------------------------------


@needs_affinity
@pytest.mark.parametrize("given", ["1", "0x1", "0X1", 1, [0], (0,)])
def test_parse_affinity_forms(given):
    assert parse_affinity(given) == (0,)


@needs_affinity
def test_parse_affinity_all_allowed_cpus():
    mask = cpu_mask(ALLOWED)
    assert parse_affinity(mask) == tuple(ALLOWED)
    assert parse_affinity(list(reversed(ALLOWED))) == tuple(ALLOWED)


@pytest.mark.parametrize("bad", ["zz", "0", 0, [], [-1], "0x"])
def test_parse_affinity_rejects(bad):
    with pytest.raises(DeviceError):
        parse_affinity(bad)


@needs_affinity
def test_parse_affinity_rejects_cpus_not_allowed():
    outside = max(ALLOWED) + 1
    with pytest.raises(DeviceError, match="may not use"):
        parse_affinity([outside])


def test_cpu_mask_is_taskset_style():
    assert cpu_mask([4, 5, 6]) == "70"
    assert cpu_mask([7]) == "80"
    assert cpu_mask([0, 1]) == "3"


@needs_affinity
def test_pinned_applies_and_restores():
    before = os.sched_getaffinity(0)
    with pinned((ALLOWED[0],)):
        assert os.sched_getaffinity(0) == {ALLOWED[0]}
    assert os.sched_getaffinity(0) == before


@needs_affinity
def test_pinned_restores_after_an_error():
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError):
        with pinned((ALLOWED[-1],)):
            raise RuntimeError("boom")
    assert os.sched_getaffinity(0) == before


def test_resolve_shape():
    assert resolve_shape("cpu", "x", [1, 3, 8, 8], None) == (1, 3, 8, 8)
    assert resolve_shape("cpu", "x", ["n", 3, 8, 8], None) == (1, 3, 8, 8)
    assert resolve_shape("cpu", "x", [None, 3, 8, 8], 4) == (4, 3, 8, 8)
    assert resolve_shape("cpu", "x", [4, 3], 4) == (4, 3)
    with pytest.raises(DeviceError, match="--batch 4"):
        resolve_shape("cpu", "x", [1, 3, 8, 8], 4)
    with pytest.raises(DeviceError, match="dynamic dimension 'h'"):
        resolve_shape("cpu", "x", [1, 3, "h", 8], None)


def test_random_input_is_seeded_and_typed():
    a = random_input((2, 3), "float32", np.random.default_rng(7))
    b = random_input((2, 3), "float32", np.random.default_rng(7))
    assert a.dtype == np.float32 and a.shape == (2, 3) and np.array_equal(a, b)
    assert random_input((4,), "int8", np.random.default_rng(0)).dtype == np.int8
    assert random_input((4,), "bool", np.random.default_rng(0)).dtype == np.bool_


@pytest.mark.parametrize("given,name", [(None, "ORT_ENABLE_ALL"), ("all", "ORT_ENABLE_ALL"),
                                        ("basic", "ORT_ENABLE_BASIC"), ("ORT_DISABLE_ALL", "ORT_DISABLE_ALL"),
                                        (2, "ORT_ENABLE_EXTENDED"), ("disable", "ORT_DISABLE_ALL")])
def test_graph_opt_level_names(given, name):
    assert graph_opt_level_name(given) == name


def test_graph_opt_level_unknown():
    with pytest.raises(DeviceError, match="choose one of"):
        graph_opt_level_name("max")


def test_one_line_cuts_long_messages():
    msg = one_line(RuntimeError("first line " + "x" * 500 + "\nsecond line"))
    assert "\n" not in msg and len(msg) <= 200 and msg.startswith("first line")


def test_host_snapshot_keys():
    snap = host_snapshot(None)
    assert {"cpu_model", "affinity_mask", "affinity_cpus", "affinity_pinned", "cpu_freq_mhz",
            "temperatures_c"} <= set(snap)
    assert snap["affinity_pinned"] is False and snap["cpu_model"]


# --- onnxruntime cpu -----------------------------------------------------------------------------


def test_cpu_benchmark_records_environment(onnx_model, fast):
    with OnnxCpuDevice() as dev:
        m = dev.benchmark(onnx_model, fast)
    env = m.env
    assert m.median_ms > 0 and m.runs >= fast.min_runs
    assert env["device"] == "cpu" and env["runtime"] == "onnxruntime"
    assert env["threads"] == 1 and env["inter_op_threads"] == 1
    assert env["execution_mode"] == "sequential"
    assert env["graph_opt_level"] == "ORT_ENABLE_ALL"
    assert env["execution_provider"] == "CPUExecutionProvider"
    assert env["artifact_sha256"] == sha256_file(onnx_model)
    assert env["input_shapes"] == {"x": [1, 3, 16, 16]} and env["batch"] == 1


@needs_affinity
def test_cpu_affinity_is_recorded_and_restored(onnx_model, fast):
    before = os.sched_getaffinity(0)
    seen = []
    dev = OnnxCpuDevice(affinity=cpu_mask([ALLOWED[-1]]))
    item = dev.prepare(onnx_model)
    inner = item.run_once

    def spy():
        seen.append(os.sched_getaffinity(0))
        return inner()

    item.run_once = spy  # the cached item is what benchmark uses
    m = dev.benchmark(onnx_model, fast)
    assert seen and all(s == {ALLOWED[-1]} for s in seen)
    assert os.sched_getaffinity(0) == before
    assert m.env["affinity_mask"] == cpu_mask([ALLOWED[-1]]) and m.env["affinity_pinned"] is True


def test_cpu_options_are_recorded(onnx_model, fast):
    m = OnnxCpuDevice(threads=2, graph_opt_level="basic", spinning=True).benchmark(onnx_model, fast)
    assert m.env["threads"] == 2 and m.env["graph_opt_level"] == "ORT_ENABLE_BASIC"
    assert m.env["allow_spinning"] is True


def test_cpu_caches_sessions_by_sha256(onnx_model, tmp_path):
    dev = OnnxCpuDevice(cache_size=2)
    first = dev.prepare(onnx_model)
    assert dev.prepare(onnx_model) is first
    copy = tmp_path / "same_bytes.onnx"
    shutil.copy(onnx_model, copy)
    again = dev.prepare(copy)
    assert again.handle is first.handle and again.path == copy


def test_cpu_cache_evicts_least_recent(onnx_model, onnx_dynamic_model):
    dev = OnnxCpuDevice(cache_size=1)
    a = dev.prepare(onnx_model)
    dev.prepare(onnx_dynamic_model)
    assert dev.prepare(onnx_model) is not a
    dev.close()


def test_cpu_dynamic_batch(onnx_dynamic_model, fast):
    m = OnnxCpuDevice(batch=3).benchmark(onnx_dynamic_model, fast)
    assert m.env["input_shapes"] == {"x": [3, 3, 16, 16]} and m.env["batch"] == 3


def test_cpu_fixed_batch_cannot_change(onnx_model):
    with pytest.raises(DeviceError, match="export the model with --batch 4"):
        OnnxCpuDevice(batch=4).prepare(onnx_model)


def test_cpu_missing_file(tmp_path):
    with pytest.raises(DeviceError, match="does not exist"):
        OnnxCpuDevice().prepare(tmp_path / "nope.onnx")


def test_cpu_directory(tmp_path):
    d = tmp_path / "dir.onnx"
    d.mkdir()
    with pytest.raises(DeviceError, match="not a file"):
        OnnxCpuDevice().prepare(d)


def test_cpu_text_file(not_a_model):
    with pytest.raises(DeviceError, match="not a loadable ONNX model") as info:
        OnnxCpuDevice().prepare(not_a_model)
    assert "\n" not in str(info.value)


def test_cpu_truncated_file(onnx_model, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_model.read_bytes()[: onnx_model.stat().st_size // 2])
    with pytest.raises(DeviceError, match="not a loadable ONNX model"):
        OnnxCpuDevice().prepare(cut)


def test_cpu_wrong_extension_names_the_right_device(tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"\0" * 16)
    with pytest.raises(DeviceError, match="--device cpu-tflite"):
        OnnxCpuDevice().prepare(f)


@pytest.mark.parametrize("kw", [{"threads": 0}, {"batch": 0}, {"delegate": "gpu"}, {"cache_size": 0}])
def test_cpu_rejects_bad_options(kw):
    with pytest.raises(DeviceError):
        OnnxCpuDevice(**kw)


# --- LiteRT cpu-tflite ---------------------------------------------------------------------------


@pytest.mark.tflite
def test_tflite_benchmark_records_environment(tflite_model, fast):
    m = LiteRtCpuDevice().benchmark(tflite_model, fast)
    env = m.env
    assert m.median_ms > 0 and m.runs >= fast.min_runs
    assert env["device"] == "cpu-tflite" and env["runtime"] == "litert"
    assert env["delegate"] == "xnnpack" and env["threads"] == 1
    assert env["artifact_sha256"] == sha256_file(tflite_model)
    assert list(env["input_shapes"].values()) == [[1, 3, 16, 16]]


@pytest.mark.tflite
def test_tflite_without_delegate(tflite_model, fast):
    m = LiteRtCpuDevice(delegate="none", threads=2).benchmark(tflite_model, fast)
    assert m.env["delegate"] == "none" and m.env["threads"] == 2


@pytest.mark.tflite
def test_tflite_caches_interpreters(tflite_model):
    dev = LiteRtCpuDevice()
    assert dev.prepare(tflite_model) is dev.prepare(tflite_model)


@pytest.mark.tflite
def test_tflite_truncated_file(tflite_model, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tflite_model.read_bytes()[: tflite_model.stat().st_size // 2])
    with pytest.raises(DeviceError, match="not a loadable TFLite model"):
        LiteRtCpuDevice().prepare(cut)


def test_tflite_text_file(tmp_path):
    f = tmp_path / "notes.tflite"
    f.write_text("hello, not a flatbuffer")
    with pytest.raises(DeviceError, match="not a TFLite model"):
        LiteRtCpuDevice().prepare(f)


def test_tflite_wrong_extension_names_the_right_device(onnx_model):
    with pytest.raises(DeviceError, match="--device cpu$"):
        LiteRtCpuDevice().prepare(onnx_model)


@pytest.mark.parametrize("delegate", ["gpu", "nnapi"])
def test_tflite_phone_delegates_are_refused(delegate):
    with pytest.raises(DeviceError, match="android"):
        LiteRtCpuDevice(delegate=delegate)
