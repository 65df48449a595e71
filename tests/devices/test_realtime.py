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


def _fifo_permitted() -> bool:
    try:
        with host.realtime(1):
            return True
    except DeviceError:
        return False


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler") or not _fifo_permitted(),
                    reason="SCHED_FIFO is not permitted here (needs root or CAP_SYS_NICE)")
def test_realtime_raises_the_runtimes_pool_threads_and_puts_them_back():
    ort = pytest.importorskip("onnxruntime")
    import threading

    import numpy as np
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(helper.make_model(g).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    sess.run(None, {"x": np.zeros((1, 64), np.float32)})
    pool = host.runtime_thread_ids()
    assert pool, "a 2-thread ONNX Runtime session has a pool thread Python did not start"
    py_thread = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    py_thread.start()
    assert py_thread.native_id not in host.runtime_thread_ids()  # another Python thread keeps its own
    with host.realtime(3) as sched:
        assert sched["policy"] == "SCHED_FIFO" and sched["threads"] == 1 + len(pool)
        assert all(os.sched_getscheduler(t) == os.SCHED_FIFO for t in pool)
        assert os.sched_getscheduler(py_thread.native_id) == os.SCHED_OTHER
    assert all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in pool)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
