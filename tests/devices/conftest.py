"""Shared fixtures for the device tests: tiny models built once per session, and a fast protocol."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import pytest

from latkit.devices.base import ProtocolSettings


def _tiny_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.ReLU(),
    ).eval()


def _export_onnx(path: Path, dynamic_batch: bool) -> Path:
    import torch

    kwargs = {"dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}} if dynamic_batch else {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_tiny_model(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], **kwargs)
    return path


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    """A tiny conv net as ONNX with a fixed batch of 1 (input 1x3x16x16)."""
    return _export_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx", dynamic_batch=False)


@pytest.fixture(scope="session")
def onnx_dynamic_model(tmp_path_factory) -> Path:
    """The same net with a dynamic batch axis."""
    return _export_onnx(tmp_path_factory.mktemp("onnx_dyn") / "tiny_dyn.onnx", dynamic_batch=True)


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory) -> Path:
    """The same net converted to TFLite with litert-torch (converted once per session)."""
    litert_torch = pytest.importorskip("litert_torch")
    import torch

    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        litert_torch.convert(_tiny_model(), (torch.randn(1, 3, 16, 16),)).export(str(path))
    return path


@pytest.fixture
def artifact_for(request):
    """A function format -> artifact path, building the session fixture only for the format used."""
    names = {"onnx": "onnx_model", "tflite": "tflite_model"}
    return lambda fmt: request.getfixturevalue(names[fmt])


@pytest.fixture
def fast() -> ProtocolSettings:
    """A short protocol: enough runs to check the contract, quick on 2 shared cores."""
    return ProtocolSettings(warmup_runs=2, warmup_s=0.0, min_runs=8, min_time_s=0.01, max_time_s=5.0)


@pytest.fixture
def not_a_model(tmp_path) -> Path:
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a model\n")
    return path
