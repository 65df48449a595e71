"""The reference model a local device measures beside every sample (the paired protocol).

A small MobileNet-like network (a 3x3 stem, six inverted-residual blocks, pooling), built with
``onnx.helper`` from seeded weights so that its bytes, and so its sha256, are the same on every
machine, with no export and no torch. It runs on ONNX Runtime's CPU provider with the measuring
device's threads, on the CPUs the device is pinned to, right after each sample of the artifact:
a LiteRT artifact is paired with it as an ONNX one is, since what the pairing follows is the
machine (its neighbours, frequency, cache and memory traffic), not the runtime. About 2 ms a run on
this project's 2-core VM, so a pair costs a network sample about 20% more, a layer sample 2x.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

#: bump when the network changes: its sha256 is part of every level's identity
VERSION = 1
RESOLUTION = 224
#: (expanded channels, output channels, stride) of the six blocks after the 16-channel stem
_BLOCKS = ((64, 24, 2), (72, 24, 1), (96, 40, 2), (120, 40, 1), (240, 80, 2), (320, 80, 1))

__all__ = ["VERSION", "reference_bytes", "reference_runner", "reference_sha256"]


@functools.lru_cache(maxsize=1)
def reference_bytes() -> bytes:
    """The serialized ONNX model (opset 13, IR 7: fixed so the bytes do not move with onnx)."""
    import numpy as np  # noqa: PLC0415 -- numpy and onnx load only where a reference is run
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415 -- see above

    rng = np.random.default_rng(20261201)
    inits: list[Any] = []
    nodes: list[Any] = []

    def conv(x: str, cin: int, cout: int, k: int, stride: int, group: int, act: bool, name: str) -> str:
        w = (rng.standard_normal((cout, cin // group, k, k)) * (2.0 / (cin // group * k * k)) ** 0.5)
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"{name}.w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.b"))
        out = f"{name}.y"
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=group))
        if not act:
            return out
        nodes.append(helper.make_node("Relu", [out], [f"{name}.a"]))
        return f"{name}.a"

    x = conv("input", 3, 16, 3, 2, 1, True, "stem")
    cin = 16
    for i, (mid, cout, stride) in enumerate(_BLOCKS):
        h = conv(x, cin, mid, 1, 1, 1, True, f"b{i}.expand")
        h = conv(h, mid, mid, 3, stride, mid, True, f"b{i}.dw")
        h = conv(h, mid, cout, 1, 1, 1, False, f"b{i}.project")
        if stride == 1 and cin == cout:
            nodes.append(helper.make_node("Add", [x, h], [f"b{i}.sum"]))
            h = f"b{i}.sum"
        x, cin = h, cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["output"]))
    graph = helper.make_graph(
        nodes, f"latkit-reference-v{VERSION}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, RESOLUTION, RESOLUTION])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, cin, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7,
                              producer_name="latkit", producer_version=str(VERSION))
    return model.SerializeToString()


def reference_sha256() -> str:
    return hashlib.sha256(reference_bytes()).hexdigest()


def reference_runner(threads: int) -> Any:
    """``run_once`` for the reference on ONNX Runtime's CPU provider with ``threads`` threads."""
    import numpy as np  # noqa: PLC0415 -- see reference_bytes
    import onnxruntime as ort  # noqa: PLC0415 -- the runtime loads only where a reference is run

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if threads > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(reference_bytes(), so, providers=["CPUExecutionProvider"])
    feeds = {"input": np.random.default_rng(0).random((1, 3, RESOLUTION, RESOLUTION),
                                                       dtype=np.float32)}

    def run_once() -> None:
        session.run(None, feeds)

    run_once()
    return run_once
