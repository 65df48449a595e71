"""The contract every registered local device keeps (STYLE 14): prepare, benchmark, environment.

Parametrised over the registry itself, so a new local device is covered as soon as it is registered;
devices that cannot run here (no GPU, no tflite extra) are skipped with the reason.
"""

from __future__ import annotations

import json

import pytest

from latkit.devices.base import Device, Measurement
from latkit.devices.registry import get_device, list_devices
from latkit.fileio import sha256_file

#: every environment snapshot has these; a benchmark adds the artifact's
ENV_KEYS = {"device", "runtime", "runtime_version", "threads", "affinity_mask", "cpu_model",
            "execution_provider", "delegate", "tool", "tool_version", "timestamp", "host"}
ARTIFACT_KEYS = {"artifact", "artifact_sha256", "input_shapes"}


def _cuda_ready() -> bool:
    from latkit.devices.cuda import cuda_provider_available

    return cuda_provider_available()[0]


def _params():
    marks = {
        "cpu-tflite": [pytest.mark.tflite],
        "cuda": [pytest.mark.gpu, pytest.mark.skipif(not _cuda_ready(), reason="no CUDA provider/GPU here")],
    }
    return [pytest.param(r["name"], marks=marks.get(r["name"], []), id=r["name"])
            for r in list_devices() if r["kind"] == "local"]


@pytest.fixture(params=_params())
def device_and_artifact(request, artifact_for):
    device = get_device(request.param)
    yield device, artifact_for(device.formats[0])
    device.close()


def test_is_a_device(device_and_artifact):
    device, _ = device_and_artifact
    assert isinstance(device, Device)
    assert device.name in {r["name"] for r in list_devices()}
    assert device.formats and all(f in ("onnx", "tflite") for f in device.formats)


def test_prepare_returns_a_handle(device_and_artifact):
    device, artifact = device_and_artifact
    assert device.prepare(artifact) is not None


def test_benchmark_keeps_the_measurement_contract(device_and_artifact, fast):
    device, artifact = device_and_artifact
    m = device.benchmark(artifact, fast)
    assert isinstance(m, Measurement)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.runs >= fast.min_runs and len(m.samples_ms) == m.runs
    assert m.warmup_runs >= fast.warmup_runs
    assert m.cv >= 0 and m.std_ms >= 0 and m.mean_ms > 0
    assert m.protocol == fast.to_dict()
    assert ENV_KEYS | ARTIFACT_KEYS <= set(m.env)
    assert m.env["device"] == device.name
    assert m.env["artifact_sha256"] == sha256_file(artifact)
    assert Measurement.from_json(m.to_json()) == m
    assert json.loads(m.to_json())["median_ms"] == m.median_ms


def test_environment_snapshot(device_and_artifact):
    device, _ = device_and_artifact
    env = device.environment()
    assert ENV_KEYS <= set(env)
    json.dumps(env)  # JSON-serialisable as recorded


def test_close_is_idempotent(device_and_artifact):
    device, artifact = device_and_artifact
    device.prepare(artifact)
    device.close()
    device.close()
