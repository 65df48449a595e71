"""The numeric precision of a model file, read from the file itself (not from its name).

- TFLite: the LiteRT interpreter's tensor details. A model with int8 tensors is full-integer int8
  (the exporter's int8 quantizes weights and activations); otherwise float16 tensors (the weights of
  an fp16 export, dequantized to float32 at load) make it fp16; otherwise fp32.
- ONNX: the graph. ``QuantizeLinear``/``QLinear*`` nodes (static QDQ) or int8/uint8 initializers make
  it int8; float16 initializers make it fp16; otherwise fp32.

``check_precision(path, expected)`` refuses a file whose precision contradicts what the user said
(``--precision``): one ``DeviceError`` line naming both.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from latkit.cli_args import PRECISIONS
from latkit.errors import DeviceError

_ONNX_INT8_OPS = ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def _tflite_precision(path: Path) -> str:
    import numpy as np  # noqa: PLC0415 -- numpy: keeps lat --help fast

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 -- the tflite extra
        except ImportError:
            raise DeviceError("reading a .tflite file's precision needs the tflite extra: "
                              "pip install 'latkit[tflite]'") from None
        try:
            it = Interpreter(model_path=str(path))
        except (ValueError, RuntimeError) as exc:
            raise DeviceError(f"{path} is not a readable TFLite model: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
                              ) from None
        dtypes = {np.dtype(d["dtype"]) for d in it.get_tensor_details()}
    if np.dtype(np.int8) in dtypes or np.dtype(np.uint8) in dtypes:
        return "int8"
    return "fp16" if np.dtype(np.float16) in dtypes else "fp32"


def _onnx_precision(path: Path) -> str:
    import onnx  # noqa: PLC0415 -- onnx: keeps lat --help fast

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 -- protobuf raises its own private types
        raise DeviceError(f"{path} is not a readable ONNX model: {type(exc).__name__}") from None
    g = model.graph
    types = {t.data_type for t in g.initializer}
    T = onnx.TensorProto
    if any(n.op_type in _ONNX_INT8_OPS for n in g.node) or types & {T.INT8, T.UINT8}:
        return "int8"
    return "fp16" if T.FLOAT16 in types else "fp32"


def detect_precision(path: str | Path) -> str:
    """``fp32``, ``fp16`` or ``int8``: what the model file at ``path`` holds."""
    path = Path(path)
    if not path.is_file():
        raise DeviceError(f"model file {path} does not exist")
    if path.suffix == ".tflite":
        return _tflite_precision(path)
    if path.suffix == ".onnx":
        return _onnx_precision(path)
    raise DeviceError(f"cannot tell the precision of {path}: expected a .onnx or .tflite file")


def check_precision(path: str | Path, expected: str | None) -> str:
    """The file's precision; a ``DeviceError`` if ``expected`` is given and differs."""
    if expected is not None and expected not in PRECISIONS:
        raise DeviceError(f"unknown precision {expected!r}; choose one of {', '.join(PRECISIONS)}")
    found = detect_precision(path)
    if expected is not None and found != expected:
        raise DeviceError(f"{Path(path).name} is an {found} model, not {expected} (--precision "
                          f"{expected}); export it with `lat export --precision {expected}`, or "
                          f"pass --precision {found}")
    return found
