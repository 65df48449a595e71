"""The cuda device. Without a CUDA provider only its error is tested; the rest is marked gpu."""

from __future__ import annotations

import pytest

from latkit.devices.cuda import CudaDevice, cuda_provider_available, gpu_snapshot
from latkit.errors import DeviceError
from latkit.fileio import sha256_file

CUDA, PROVIDERS = cuda_provider_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason=f"no CUDA provider here (onnxruntime providers: {PROVIDERS})")


@pytest.mark.skipif(CUDA, reason="a CUDA provider is available here")
def test_no_cuda_is_a_clear_error():
    with pytest.raises(DeviceError) as info:
        CudaDevice()
    msg = str(info.value)
    assert "no CUDA GPU/provider" in msg and "CPUExecutionProvider" in msg and "--device cpu" in msg


def test_gpu_snapshot_never_fails():
    assert isinstance(gpu_snapshot(0), dict)


@pytest.mark.gpu
@needs_cuda
def test_cuda_benchmark(onnx_model, fast):
    with CudaDevice() as dev:
        m = dev.benchmark(onnx_model, fast)
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.runs >= fast.min_runs
    env = m.env
    assert env["execution_provider"] == "CUDAExecutionProvider" and env["io_binding"] is True
    assert env["timer"] in ("events", "wall") and env["artifact_sha256"] == sha256_file(onnx_model)


@pytest.mark.gpu
@needs_cuda
def test_cuda_wall_timer(onnx_model, fast):
    m = CudaDevice(timer="wall").benchmark(onnx_model, fast)
    assert m.env["timer"] == "wall" and m.median_ms > 0


@pytest.mark.gpu
@needs_cuda
def test_cuda_dynamic_batch(onnx_dynamic_model, fast):
    m = CudaDevice(batch=8).benchmark(onnx_dynamic_model, fast)
    assert m.env["input_shapes"] == {"x": [8, 3, 16, 16]} and m.env["batch"] == 8


@pytest.mark.gpu
@needs_cuda
def test_cuda_fixed_batch_needs_reexport(onnx_model):
    with pytest.raises(DeviceError, match="export the model with --batch 8"):
        CudaDevice(batch=8).prepare(onnx_model)


@pytest.mark.gpu
@needs_cuda
def test_cuda_non_model(not_a_model):
    with pytest.raises(DeviceError, match="not a loadable ONNX model"):
        CudaDevice().prepare(not_a_model)
