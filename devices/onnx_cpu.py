"""The ``cpu`` device: onnxruntime's CPUExecutionProvider on this machine.

One intra-op thread and one inter-op thread by default, sequential execution, spinning off, the
graph optimisation level recorded. The session is built by ``ort_session`` (shared with the ``cuda``
device); onnxruntime is imported inside the functions that need it, so importing this module loads
no runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from latkit.devices.base import ProtocolSettings
from latkit.devices.local import LocalDevice, Prepared, one_line, random_input, resolve_shape
from latkit.errors import DeviceError

__all__ = ["GRAPH_OPT_LEVELS", "OnnxCpuDevice", "graph_opt_level_name", "onnx_dtype", "ort_session"]

#: onnxruntime graph optimisation levels by their short names
GRAPH_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}


def onnx_dtype(type_name: str) -> str:
    """numpy dtype name of an onnxruntime type string such as ``tensor(float)``."""
    table = {
        "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
        "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
        "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
    }
    if type_name not in table:
        raise DeviceError(f"cannot feed an input of type {type_name}; supported: {', '.join(table)}")
    return table[type_name]


def graph_opt_level_name(level: str | int | None) -> str:
    """The onnxruntime enum name of a level given as ``all``/``basic``/..., the enum name, or 0/1/2/99."""
    if level is None:
        return "ORT_ENABLE_ALL"
    by_int = {0: "ORT_DISABLE_ALL", 1: "ORT_ENABLE_BASIC", 2: "ORT_ENABLE_EXTENDED", 99: "ORT_ENABLE_ALL"}
    if isinstance(level, int) and level in by_int:
        return by_int[level]
    text = str(level).strip()
    if text.lower() in GRAPH_OPT_LEVELS:
        return GRAPH_OPT_LEVELS[text.lower()]
    if text.upper() in GRAPH_OPT_LEVELS.values():
        return text.upper()
    raise DeviceError(
        f"unknown graph optimisation level {level!r}; choose one of {', '.join(GRAPH_OPT_LEVELS)}"
    )


def ort_session(path: Path, device: str, *, threads: int, graph_opt_level: str, spinning: bool,
                providers: list[Any]) -> Any:
    """An onnxruntime session with steady settings; a file that is not a model -> ``DeviceError``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, graph_opt_level)
    so.log_severity_level = 3  # errors only: warnings would break the one-line CLI contract
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # noqa: BLE001 -- onnxruntime's pybind errors derive from Exception
        raise DeviceError(
            f"{device}: {path.name} is not a loadable ONNX model ({one_line(exc)}); re-export it "
            f"with `lat export`"
        ) from None


class OnnxCpuDevice(LocalDevice):
    """onnxruntime's CPUExecutionProvider, single-threaded and sequential unless told otherwise."""

    #: a CPU of this host: samples pair with the reference model (``devices/reference.py``)
    pairs_with_reference = True  # as its LOCAL_DEVICES entry says (paired=True)
    name = "cpu"
    formats = ("onnx",)
    suffix = ".onnx"

    def __init__(self, *, threads: int = 1, affinity: Any = None, batch: int | None = None,
                 graph_opt_level: str | int | None = None, spinning: bool = False,
                 delegate: str | None = None, seed: int = 0, protocol: ProtocolSettings | None = None,
                 cache_size: int = 8) -> None:
        if delegate not in (None, "cpu"):
            raise DeviceError(
                f"cpu: runs onnxruntime's CPU provider; delegate {delegate!r} is for android devices "
                f"(for a GPU use --device cuda)"
            )
        super().__init__(threads=threads, affinity=affinity, batch=batch, seed=seed,
                         protocol=protocol, cache_size=cache_size)
        self.graph_opt_level = graph_opt_level_name(graph_opt_level)
        self.spinning = bool(spinning)

    def _load(self, path: Path, sha: str) -> Prepared:
        session = ort_session(path, self.name, threads=self.threads, graph_opt_level=self.graph_opt_level,
                              spinning=self.spinning, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(self.seed)
        feeds = {}
        for arg in session.get_inputs():
            shape = resolve_shape(self.name, arg.name, arg.shape, self.batch)
            feeds[arg.name] = random_input(shape, onnx_dtype(arg.type), rng)
        outputs = [o.name for o in session.get_outputs()]

        def run_once() -> None:
            session.run(outputs, feeds)

        return Prepared(path=path, sha256=sha, run_once=run_once, handle=session,
                        inputs={k: list(v.shape) for k, v in feeds.items()},
                        info={"batch": _batch_of(feeds.values())})

    def _runtime_env(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "execution_provider": "CPUExecutionProvider",
            "delegate": None,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": self.spinning,
            "graph_opt_level": self.graph_opt_level,
            "seed": self.seed,
        }


def _batch_of(arrays: Iterable[Any]) -> int | None:
    for a in arrays:
        if getattr(a, "ndim", 0) >= 1:
            return int(a.shape[0])
    return None
