"""The ``cpu-tflite`` device: the LiteRT interpreter (``ai_edge_litert``) on this machine's CPU.

XNNPACK (LiteRT's default delegate) unless ``delegate="none"``; dynamic input dimensions are
resized to the asked batch; LiteRT's INFO chatter on stderr is silenced while loading. LiteRT is the
``tflite`` extra and is imported when a model is first loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latkit.devices.base import ProtocolSettings
from latkit.devices.local import (
    LocalDevice,
    Prepared,
    dist_version,
    native_stderr_silenced,
    one_line,
    random_input,
    resolve_shape,
)
from latkit.errors import DeviceError

__all__ = ["LiteRtCpuDevice"]


class LiteRtCpuDevice(LocalDevice):
    """``ai_edge_litert``'s interpreter with its default XNNPACK delegate (``delegate="none"``: without)."""

    #: a CPU of this host: samples pair with the reference model (``devices/reference.py``)
    pairs_with_reference = True  # as its LOCAL_DEVICES entry says (paired=True)
    name = "cpu-tflite"
    formats = ("tflite",)
    suffix = ".tflite"

    def __init__(self, *, threads: int = 1, affinity: Any = None, batch: int | None = None,
                 delegate: str | None = None, seed: int = 0, protocol: ProtocolSettings | None = None,
                 cache_size: int = 8) -> None:
        if delegate in (None, "cpu", "xnnpack"):
            self.delegate = "xnnpack"
        elif delegate == "none":
            self.delegate = "none"
        else:
            raise DeviceError(
                f"cpu-tflite: delegate {delegate!r} needs a phone; use an android device "
                f"(`lat device list`) or delegate cpu/xnnpack/none here"
            )
        super().__init__(threads=threads, affinity=affinity, batch=batch, seed=seed,
                         protocol=protocol, cache_size=cache_size)

    def _load(self, path: Path, sha: str) -> Prepared:
        rng = np.random.default_rng(self.seed)
        try:
            with native_stderr_silenced():  # LiteRT logs "INFO: Created ... XNNPACK delegate"
                interpreter = self._interpreter(path)
                details = interpreter.get_input_details()
                resized = False
                for d in details:
                    signature = [int(x) if x > 0 else None for x in d.get("shape_signature", d["shape"])]
                    shape = resolve_shape(self.name, d["name"], signature, self.batch)
                    if list(shape) != list(d["shape"]):
                        interpreter.resize_tensor_input(d["index"], list(shape))
                        resized = True
                interpreter.allocate_tensors()
                inputs = {}
                for d in interpreter.get_input_details():
                    value = random_input(tuple(int(x) for x in d["shape"]), d["dtype"], rng)
                    interpreter.set_tensor(d["index"], value)
                    inputs[d["name"]] = [int(x) for x in d["shape"]]
        except (ValueError, RuntimeError) as exc:  # what LiteRT raises for a model it cannot set up
            raise DeviceError(f"cpu-tflite: cannot set up {path.name}: {one_line(exc)}") from None
        invoke = interpreter.invoke

        def run_once() -> None:
            invoke()

        batches = [shape[0] for shape in inputs.values() if shape]
        return Prepared(path=path, sha256=sha, run_once=run_once, handle=interpreter, inputs=inputs,
                        info={"batch": batches[0] if batches else None, "resized_inputs": resized})

    def _interpreter(self, path: Path) -> Any:
        _check_tflite_header(path)
        try:
            from ai_edge_litert import interpreter as litert
        except ImportError:
            raise DeviceError(
                "cpu-tflite: needs the tflite extra (ai-edge-litert); install it with "
                "pip install 'latkit[tflite]'"
            ) from None

        resolver = (litert.OpResolverType.AUTO if self.delegate == "xnnpack"
                    else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            return litert.Interpreter(model_path=str(path), num_threads=self.threads,
                                      experimental_op_resolver_type=resolver)
        except (ValueError, RuntimeError) as exc:  # LiteRT's errors for a file it cannot load
            raise DeviceError(
                f"cpu-tflite: {path.name} is not a loadable TFLite model ({one_line(exc)}); re-export "
                f"it with `lat export --format tflite`"
            ) from None

    def _runtime_env(self) -> dict[str, Any]:
        return {
            "runtime": "litert",
            "runtime_version": dist_version("ai-edge-litert"),
            "execution_provider": None,
            "delegate": self.delegate,
            "threads": self.threads,
            "seed": self.seed,
        }


def _check_tflite_header(path: Path) -> None:
    """Reject files without the TFLite flatbuffer identifier before handing them to the C++ loader."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise DeviceError(
            f"cpu-tflite: {path.name} is not a TFLite model (no 'TFL3' flatbuffer identifier); "
            f"re-export it with `lat export --format tflite`"
        )
