"""Stand-ins for search tests: synthetic latency/accuracy sources, a fake device, a LUT maker.

Synthetic numbers are fine here (they test the search, not the numbers); the product path never
uses them.
"""

from __future__ import annotations

import csv
import hashlib
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from latkit.devices.base import Measurement
from latkit.supernet.space import get_space


def synthetic_ms(space, arch) -> float:
    """Latency-like: MACs plus a per-layer overhead, in 'ms'."""
    layers = space.layers(arch)
    return sum(l.macs for l in layers) / 2e7 + 0.01 * len(layers)


def synthetic_top1(space, arch) -> float:
    """Accuracy-like: grows with MACs and resolution, with a deterministic per-arch wobble."""
    h = int(hashlib.sha256(str(arch).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 60 + 4 * np.log(space.macs(arch) / 1e8) + 0.02 * (arch.r - 128) + 0.8 * h


@dataclass
class FakeLatency:
    space: str
    device: str
    scale: float = 1.0
    calls: int = 0
    archs_seen: int = 0

    def predict_ms(self, archs):
        self.calls += 1
        self.archs_seen += len(archs)
        sp = get_space(self.space)
        return np.array([self.scale * synthetic_ms(sp, a) for a in archs])

    def describe(self):
        return {"kind": "fake"}


@dataclass
class FakeAccuracy:
    space: str
    table: list | None = None

    def top1(self, archs):
        sp = get_space(self.space)
        return np.array([synthetic_top1(sp, a) for a in archs])

    def candidates(self):
        return self.table

    def describe(self):
        return {"kind": "fake"}


@dataclass
class FakePredictor:
    """Quacks like a latkit predictor: .predict(archs) and .meta_."""

    meta_: dict
    fn: object = None

    def predict(self, archs):
        sp = get_space(self.meta_["space"])
        return np.array([self.fn(sp, a) for a in archs])


@dataclass
class FakeDevice:
    """Measures 'artifacts' named after arch keys: ``ms_by_key`` or synthetic x ``factor``."""

    name: str = "cpu"
    formats: tuple = ("onnx",)
    space: str = "compofa-w1.0"
    factor: float = 1.0
    ms_by_key: dict = field(default_factory=dict)
    benchmarked: list = field(default_factory=list)
    seq_by_key: dict = field(default_factory=dict)  # key -> medians of successive measurements

    def benchmark(self, path, settings=None):
        key = Path(path).stem
        self.benchmarked.append(key)
        sp = get_space(self.space)
        ms = self.ms_by_key.get(key)
        if self.seq_by_key.get(key):
            ms = self.seq_by_key[key].pop(0)
        if ms is None:
            ms = self.factor * synthetic_ms(sp, sp.parse(key))
        return Measurement.from_samples([ms] * 5, warmup_runs=1, env={"device": self.name})

    def environment(self):
        return {"device": self.name}

    def close(self):
        pass


def fake_export(arch, fmt):
    """An 'exporter' for verify tests: the path is the arch key."""
    return Path(f"{arch}.{fmt}")


def make_lut(directory: Path, space: str, resolutions, device="cpu", meta_space=None,
             calibration=None):
    from latkit.profiler.lut import LookupTable, LutEntry

    sp = get_space(space)
    entries = []
    for spec in sp.unique_layers(resolutions):
        ms = spec.macs / 2e7 + 0.01
        entries.append(LutEntry(spec.key, spec.kind, ms, ms, ms, ms, 0.0, 0.0, 10))
    meta = {"space": meta_space or sp.name, "resolutions": list(resolutions), "device": device}
    if calibration:
        meta["calibration"] = calibration
    LookupTable.from_entries(entries, meta).save(directory)
    return directory


def write_acc_csv(path: Path, space: str, archs):
    sp = get_space(space)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "top1", "space"])
        for a in archs:
            w.writerow([str(a), f"{synthetic_top1(sp, a):.4f}", sp.name])
    return path


@pytest.fixture(scope="session")
def fakes():
    return types.SimpleNamespace(
        Latency=FakeLatency, Accuracy=FakeAccuracy, Predictor=FakePredictor, Device=FakeDevice,
        export=fake_export, make_lut=make_lut, write_acc_csv=write_acc_csv,
        ms=synthetic_ms, top1=synthetic_top1,
    )
