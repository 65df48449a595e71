"""Fixtures shared by the Android agent tests."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mid_model(tmp_path_factory) -> Path:
    """A conv net of about 60M MACs (~1 ms per run): long enough to compare two runtimes."""
    litert_torch = pytest.importorskip("litert_torch")
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
    ).eval()
    path = tmp_path_factory.mktemp("android") / "mid.tflite"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        litert_torch.convert(net, (torch.randn(1, 3, 64, 64),)).export(str(path))
    return path
