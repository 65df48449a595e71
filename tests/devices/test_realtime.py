"""Realtime scheduling and pinning "where available": used when permitted, recorded either way."""

from __future__ import annotations

import os

import pytest

from latkit.devices import host
from latkit.errors import DeviceError


def refuse(*args):
    raise PermissionError(1, "Operation not permitted")


def test_realtime_falls_back_unless_required(monkeypatch):
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with host.realtime(10, required=False) as sched:
        pass
    assert sched["policy"] == "normal" and "not permitted" in sched["reason"]
    with pytest.raises(DeviceError, match="CAP_SYS_NICE"), host.realtime(10):
        pass
    with host.realtime(None) as sched:
        assert sched == {"policy": "normal", "reason": "not asked"}


def test_realtime_rests_every_few_bursts_not_after_each(monkeypatch):
    slept = []
    monkeypatch.setattr(host.time, "sleep", slept.append)
    monkeypatch.setattr(host, "rt_rest_s", lambda: 0.06)
    monkeypatch.setattr(host, "_rt_budget_s", lambda: 0.855)
    for _ in range(9):
        host._rest_if_needed(0.25)
    assert len(slept) == 3  # 0.25 s bursts: a rest after every third


def test_default_affinity_pins_one_thread_to_one_cpu(monkeypatch):
    monkeypatch.setattr(host, "_allowed_cpus", lambda: {0, 1, 2, 3})
    assert host.default_affinity(1) == (3,) and host.default_affinity(None) == (3,)
    assert host.default_affinity(2) is None
    monkeypatch.setattr(host, "_allowed_cpus", lambda: {0})
    assert host.default_affinity(1) is None
