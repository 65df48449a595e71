"""The model files a campaign measures: one per layer (or subnet), per format, cached.

Layers in ONNX are exported once per shape *family* (every resolution of the same channels, kernel,
stride, SE and activation) with dynamic spatial axes (``export_layer(..., dynamic_hw=True)``), then
specialised to each concrete spatial size by fixing the graph's input dimensions and re-running ONNX
shape inference. That costs milliseconds instead of a torch export per resolution, and the
specialised file is an ordinary static model: onnxruntime measures it exactly as it measures a
static export of the same layer (benchmarks/lut_campaign.py checks this) and devices that need fixed
input shapes accept it. TFLite has no dynamic shapes: one export per layer.

Exports run under one process-wide lock: torch's exporters are not thread-safe, and several device
workers may ask for files at once.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from latkit.errors import ExportError
from latkit.fileio import atomic_path, sha256_file, write_text
from latkit.profiler.export import export_arch, export_layer, safe_name

_EXPORT_LOCK = threading.Lock()
#: layer kinds whose spatial size varies with resolution (the others are 1x1 after pooling)
SPATIAL_KINDS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D")


def specialise_onnx(src: Path, hw: int, dst: Path, expect_out: tuple[int, ...] | None = None) -> Path:
    """Copy the dynamic-spatial ONNX model ``src`` to ``dst`` with input H = W = ``hw`` fixed.

    ``expect_out`` (the static output shape) is checked against ONNX shape inference; a mismatch
    means the family export does not generalise across sizes and is an ``ExportError``.
    """
    import onnx  # noqa: PLC0415 -- onnx: keeps lat --help fast

    model = onnx.load(str(src))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ExportError(f"{src.name}: expected a 4-d input to specialise, found {len(dims)}-d")
        dims[2].Clear()
        dims[2].dim_value = hw
        dims[3].Clear()
        dims[3].dim_value = hw
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 -- onnx raises its own private types
        raise ExportError(f"cannot specialise {src.name} to {hw}x{hw}: {str(exc).splitlines()[0]}") from None
    if expect_out is not None:
        got = tuple(d.dim_value if d.HasField("dim_value") else -1
                    for d in model.graph.output[0].type.tensor_type.shape.dim)
        if got != tuple(expect_out):
            raise ExportError(f"{src.name} specialised to {hw}x{hw} gives output shape {got}, "
                              f"expected {tuple(expect_out)}; export this layer statically")
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def _expected_out_shape(spec: Any, batch: int) -> tuple[int, ...]:
    if spec.kind == "Logits":
        return (batch, spec.out_c)
    return (batch, spec.out_c, spec.out_hw, spec.out_hw)


class ArtifactMaker:
    """Export (or reuse) the file a device measures for a layer or a subnet.

    ``cache`` is an ``ExportCache``; ``dynamic_hw`` applies to ONNX layers of ``SPATIAL_KINDS``.
    """

    def __init__(self, cache: Any, *, seed: int = 0, batch: int = 1, dynamic_hw: bool = True,
                 supernet: Any = None, weights_id: str | None = None, precision: str = "fp32",
                 calibration: Any = None) -> None:
        self.cache = cache
        self.seed = seed
        self.batch = batch
        self.dynamic_hw = dynamic_hw
        self.supernet = supernet
        self.weights_id = weights_id
        self.precision = precision
        self.calibration = calibration

    def uses_family(self, spec: Any, fmt: str) -> bool:
        # quantized layers are calibrated at their own size: one static export each
        return self.dynamic_hw and fmt == "onnx" and spec.kind in SPATIAL_KINDS \
            and self.precision == "fp32"

    def layer(self, spec: Any, fmt: str) -> Path:
        if not self.uses_family(spec, fmt):
            with _EXPORT_LOCK:
                return export_layer(spec, fmt, self.cache, seed=self.seed, batch=self.batch,
                                    precision=self.precision, calibration=self.calibration)
        with _EXPORT_LOCK:
            family = export_layer(spec, fmt, self.cache, seed=self.seed, dynamic_hw=True,
                                  batch=self.batch)
            fam_sha = sha256_file(family)
            dst = Path(self.cache.root) / "specialised" / f"{safe_name(spec.key)}.{fam_sha[:12]}.onnx"
            side = dst.with_name(dst.name + ".json")
            if dst.is_file() and side.is_file():
                try:
                    rec = json.loads(side.read_text())
                    if rec.get("family_sha256") == fam_sha and rec.get("sha256") == sha256_file(dst):
                        return dst
                except (OSError, json.JSONDecodeError):
                    pass
            specialise_onnx(family, spec.in_hw, dst, _expected_out_shape(spec, self.batch))
            rec = {"key": spec.key, "family": family.name, "family_sha256": fam_sha,
                   "hw": spec.in_hw, "sha256": sha256_file(dst)}
            write_text(side, json.dumps(rec, indent=1, sort_keys=True))
            return dst

    def network(self, space: Any, arch: Any, fmt: str) -> Path:
        with _EXPORT_LOCK:
            return export_arch(space, arch, fmt, cache=self.cache, supernet=self.supernet,
                               weights_id=self.weights_id, seed=self.seed, batch=self.batch,
                               precision=self.precision, calibration=self.calibration)
