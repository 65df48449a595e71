"""Synthetic devices for the predictor tests: per-layer costs, a lookup table and measurements.

A synthetic device's layer latency is ``launch_ms + macs / throughput`` (depthwise 7x7 a bit slower);
its end-to-end latency is ``1.1 * sum(layers) + 0.3 ms`` plus per-block overhead and 1% noise, so a
lookup table needs calibration and a learned model has something to learn.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from latkit.profiler.lut import LookupTable, LutEntry
from latkit.supernet.space import get_space

SPACE = "ofa-mbv3-w1.0"
RESOLUTIONS = [160, 192, 224]
COLUMNS = "arch,latency_ms,space,device,p10_ms,p90_ms,mean_ms,std_ms,cv,runs".split(",")


def layer_ms(spec, launch_ms=0.02, gmacs_per_s=30.0, k7=1.3):
    slow = k7 if spec.kernel == 7 else 1.0
    return launch_ms + spec.macs / (gmacs_per_s * 1e6) * slow


def device_ms(space, arch, rng=None, noise=0.01, **kw):
    layers = space.layers(arch)
    base = 1.1 * sum(layer_ms(l, **kw) for l in layers) + 0.3 + 0.01 * len(layers)
    return base * (float(np.exp(rng.normal(0, noise))) if rng is not None else 1.0)


def make_table(space, resolutions, **kw):
    entries = []
    for spec in space.unique_layers(resolutions):
        v = layer_ms(spec, **kw)
        entries.append(LutEntry(spec.key, spec.kind, v, v * 0.95, v * 1.05, v, v * 0.02, 0.02, 20))
    return LookupTable.from_entries(entries, {"space": space.name, "resolutions": list(resolutions),
                                              "device": "synthetic", "env": {"runtime": "none"}})


def write_measurements(path, space, archs, y, device="synthetic", ofa_dict_every=0):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i, (a, v) in enumerate(zip(archs, y)):
            key = json.dumps(a.to_ofa_dict(space.max_depth)) if ofa_dict_every and i % ofa_dict_every == 0 else str(a)
            w.writerow([key, repr(float(v)), space.name, device, v, v, v, 0.0, 0.0, 20])
    return Path(path)


@pytest.fixture(scope="session")
def space():
    return get_space(SPACE)


@pytest.fixture(scope="session")
def table(space):
    return make_table(space, RESOLUTIONS)


@pytest.fixture(scope="session")
def data(space):
    """240 distinct archs at 3 resolutions and their synthetic latencies (ms)."""
    rng = random.Random(0)
    archs, seen = [], set()
    while len(archs) < 240:
        a = space.sample(rng, RESOLUTIONS)
        if a not in seen:
            seen.add(a)
            archs.append(a)
    nrng = np.random.default_rng(0)
    y = np.array([device_ms(space, a, nrng) for a in archs])
    return archs, y


@pytest.fixture()
def lut_dir(tmp_path, table):
    return table.save(tmp_path / "lut", command="synthetic")


@pytest.fixture()
def measurements_csv(tmp_path, space, data):
    archs, y = data
    return write_measurements(tmp_path / "m.csv", space, archs, y, ofa_dict_every=5)


@pytest.fixture(scope="session")
def synthetic_device():
    """The synthetic device's end-to-end latency function (space, arch, rng, **layer_cost_kw)."""
    return device_ms
