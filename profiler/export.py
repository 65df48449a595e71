"""Export subnets and single layers to ONNX (onnxruntime) and TFLite (litert-torch), with a cache.

File names come from the canonical key (arch key or once-for-all layer key). The cache never serves
a stale file: an entry is reused only when its fingerprint (key, format, space, weights identity,
batch, dynamic spatial axes, latkit/torch/exporter versions) matches and the file's sha256 still
equals the one recorded when it was written. Files are written through ``latkit.fileio`` (to a
temporary name, then renamed), so a killed export never leaves a half-written model behind.

Without a checkpoint, weights are a seeded random initialisation: latency does not depend on the
weight values, and the seed is part of the fingerprint.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latkit.errors import ExportError
from latkit.fileio import atomic_path, sha256_file, write_text
from latkit.profiler.quantize import Calibration, calibration_inputs, check_precision_name, quantize_file
from latkit.profiler.quantize import quiet as _quiet
from latkit.provenance import versions
from latkit.supernet.space import get_space

FORMATS = ("onnx", "tflite")
ONNX_OPSET = 17


def safe_name(key: str) -> str:
    """A file-name-safe rendering of a canonical key (``:`` and other specials become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._=-]", "_", key)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def _writable_target(path: Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create directory {path.parent}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise ExportError(f"cannot write to {path.parent}: permission denied")
    if path.is_dir():
        raise ExportError(f"output path {path} is a directory; give a file name")
    return path


def export_onnx(module: Any, input_shape: tuple[int, ...], path: str | Path,
                dynamic_hw: bool = False, opset: int = ONNX_OPSET) -> Path:
    """Export ``module`` (eval mode) to ONNX at ``path``; input ``input``, output ``output``.

    With ``dynamic_hw`` the spatial axes are dynamic, so one file serves every resolution of a
    layer shape family (onnxruntime accepts that; TFLite does not).
    """
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    path = _writable_target(Path(path))
    module = module.eval()
    sample = torch.zeros(input_shape)
    axes = {"input": {2: "height", 3: "width"}} if dynamic_hw and len(input_shape) == 4 else None
    with atomic_path(path) as tmp:
        try:
            with _quiet(), torch.no_grad():
                torch.onnx.export(
                    module, (sample,), str(tmp), dynamo=False, opset_version=opset,
                    input_names=["input"], output_names=["output"], dynamic_axes=axes,
                    do_constant_folding=True,
                )
        except Exception as exc:  # noqa: BLE001 -- exporter errors are many and private
            raise ExportError(f"ONNX export to {path} failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    return path


def export_tflite(module: Any, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """Export ``module`` to TFLite with litert-torch (the ``tflite`` extra)."""
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    try:
        with _quiet():
            import litert_torch
    except ImportError:
        raise ExportError("TFLite export needs the tflite extra: pip install 'latkit[tflite]'") from None
    path = _writable_target(Path(path))
    module = module.eval()
    sample = torch.zeros(input_shape)
    with atomic_path(path) as tmp:
        try:
            with _quiet(), torch.no_grad():
                litert_torch.convert(module, (sample,)).export(str(tmp))
        except Exception as exc:  # noqa: BLE001 -- converter errors are many and private
            raise ExportError(f"TFLite export to {path} failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    return path


def _export_fp32(module: Any, input_shape: tuple[int, ...], path: str | Path, fmt: str,
                 dynamic_hw: bool) -> Path:
    if fmt == "onnx":
        return export_onnx(module, input_shape, path, dynamic_hw=dynamic_hw)
    if dynamic_hw:
        raise ExportError("TFLite models have static shapes; export one file per resolution")
    return export_tflite(module, input_shape, path)


def export_module(module: Any, input_shape: tuple[int, ...], path: str | Path, fmt: str,
                  dynamic_hw: bool = False, precision: str = "fp32",
                  calibration: Calibration | None = None, seed: int = 0) -> Path:
    """Export ``module`` to ``path`` in ``fmt`` and ``precision`` (``profiler/quantize.py``: fp16
    weights, or int8 calibrated on ``calibration``'s images, the built-in data by default)."""
    _check_format(fmt)
    precision = check_precision_name(precision)
    if precision == "fp32":
        return _export_fp32(module, input_shape, path, fmt, dynamic_hw)
    if dynamic_hw:
        raise ExportError(f"{precision} models are calibrated at one size; export static shapes")
    path = _writable_target(Path(path))
    inputs = calibration_inputs(calibration or Calibration(), tuple(input_shape), seed) \
        if precision == "int8" else []
    with tempfile.TemporaryDirectory(prefix=".fp32-", dir=path.parent) as tmp:
        src = _export_fp32(module, input_shape, Path(tmp) / f"model.{fmt}", fmt, False)
        return quantize_file(src, path, fmt, precision, inputs)


def run_exported(path: str | Path, x: Any) -> Any:
    """Run an exported file once on the host CPU (numpy in, numpy out); used to verify exports."""
    import numpy as np  # noqa: PLC0415 -- numpy: only to verify an export; keeps lat --help fast

    path = Path(path)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if path.suffix == ".tflite":
        with _quiet():
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_path=str(path), num_threads=1)
            it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        if np.issubdtype(inp["dtype"], np.integer):  # a full-integer model: int8 in, int8 out
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])
        if np.issubdtype(out["dtype"], np.integer):
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y
    raise ExportError(f"cannot run {path}: expected a .onnx or .tflite file")


def max_abs_diff(module: Any, path: str | Path, input_shape: tuple[int, ...], seed: int = 0) -> float:
    """Max |torch - exported| on a seeded random input."""
    import numpy as np  # noqa: PLC0415 -- numpy: only to verify an export; keeps lat --help fast
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(input_shape, generator=g)
    with torch.no_grad():
        ref = module.eval()(x).numpy()
    got = run_exported(path, x.numpy())
    return float(np.abs(np.asarray(got).reshape(ref.shape) - ref).max())


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------


@functools.cache
def _versions() -> dict[str, str]:
    """``provenance.versions()``, read once per process: every cached file's fingerprint has it."""
    return versions()


@dataclass
class ExportCache:
    """A directory of exported models keyed by fingerprint; never serves a stale or damaged file."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def get_or_export(self, key: str, fmt: str, input_shape: tuple[int, ...],
                      build: Callable[[], Any], identity: dict[str, Any],
                      dynamic_hw: bool = False, precision: str = "fp32",
                      calibration: Calibration | None = None) -> Path:
        """Return a file for (key, fmt, identity, precision), exporting ``build()`` only when
        needed (an fp32 file's fingerprint is what it was before precisions existed)."""
        _check_format(fmt)
        precision = check_precision_name(precision)
        shape = [*input_shape[:2], -1, -1] if dynamic_hw else list(input_shape)
        meta = {"key": key, "format": fmt, "input_shape": shape,
                "dynamic_hw": dynamic_hw, **identity, "versions": dict(_versions())}
        if fmt == "onnx":
            meta["opset"] = ONNX_OPSET
        if precision != "fp32":
            meta["precision"] = precision
        if precision == "int8":
            calibration = calibration or Calibration()
            meta["calibration"] = calibration.identity()
        fp = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
        tag = "" if precision == "fp32" else f".{precision}"
        path = self.root / f"{safe_name(key)}{tag}.{fp[:12]}.{fmt}"
        side = path.with_name(path.name + ".json")
        if path.is_file() and side.is_file():
            try:
                rec = json.loads(side.read_text())
                if rec.get("fingerprint") == fp and rec.get("sha256") == sha256_file(path):
                    return path
            except (OSError, json.JSONDecodeError):
                pass
        if precision == "fp32":
            export_module(build(), input_shape, path, fmt, dynamic_hw=dynamic_hw)
        elif dynamic_hw:
            raise ExportError(f"{precision} models are calibrated at one size; export static shapes")
        else:  # quantized from the cached fp32 file: one torch export serves every precision
            src = self.get_or_export(key, fmt, input_shape, build, identity)
            inputs = calibration_inputs(calibration or Calibration(), tuple(input_shape)) \
                if precision == "int8" else []
            quantize_file(src, path, fmt, precision, inputs)
        rec = {"fingerprint": fp, "sha256": sha256_file(path), **meta}
        write_text(side, json.dumps(rec, indent=1, sort_keys=True))
        return path


# ----------------------------------------------------------------------------------------------
# Subnets and layers
# ----------------------------------------------------------------------------------------------


def _seeded(seed: int):
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    return torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()


def build_subnet(space: Any, arch: Any, supernet: Any = None, seed: int = 0) -> Any:
    """A static subnet module: extracted from ``supernet`` if given, else seeded random weights."""
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    from latkit.supernet.model import StaticMobileNetV3  # noqa: PLC0415 -- imports torch

    if supernet is not None:
        return supernet.extract(arch).eval()
    with _seeded(seed):
        torch.manual_seed(seed)
        return StaticMobileNetV3(space.layers(arch)).eval()


def export_arch(space: Any, arch: Any, fmt: str, path: str | Path | None = None, *,
                supernet: Any = None, weights_id: str | None = None, cache: ExportCache | None = None,
                seed: int = 0, batch: int = 1, precision: str = "fp32",
                calibration: Calibration | None = None) -> Path:
    """Export subnet ``arch`` of ``space``: to ``path`` directly, or through ``cache``.

    ``weights_id`` identifies the supernet weights (e.g. the checkpoint's sha256) for the cache.
    """
    space = get_space(space) if isinstance(space, str) else space
    arch = space.validate(arch)
    shape = (batch, 3, arch.r, arch.r)

    def build() -> Any:
        return build_subnet(space, arch, supernet, seed)

    if path is not None:
        return export_module(build(), shape, path, _check_format(fmt), precision=precision,
                             calibration=calibration, seed=seed)
    if cache is None:
        raise ExportError("export_arch needs a path or a cache")
    if supernet is not None and weights_id is None:
        raise ExportError("caching an export of trained weights needs their weights_id")
    identity = {"space": space.name, "weights": weights_id or f"seed{seed}", "batch": batch}
    return cache.get_or_export(str(arch), fmt, shape, build, identity, precision=precision,
                               calibration=calibration)


def export_layer(spec: Any, fmt: str, cache: ExportCache, *, seed: int = 0,
                 dynamic_hw: bool = False, batch: int = 1, precision: str = "fp32",
                 calibration: Calibration | None = None) -> Path:
    """Export one layer (``build_layer(spec)``) through ``cache``.

    With ``dynamic_hw`` (ONNX only) the file is shared by the layer's shape family: every
    resolution of the same channels/kernel/stride/SE/activation; its cache key drops the sizes.
    ``precision``: the layer quantized as a subnet is (``export_module``; ``profiler/quantize.py``).
    """
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    from latkit.supernet.model import build_layer, layer_input_shape  # noqa: PLC0415 -- imports torch

    shape = layer_input_shape(spec, batch)
    key = spec.key
    if dynamic_hw:
        key = family_key(spec)

    def build() -> Any:
        with _seeded(seed):
            torch.manual_seed(seed)
            return build_layer(spec).eval()

    identity = {"weights": f"seed{seed}", "batch": batch}
    return cache.get_or_export(key, fmt, shape, build, identity, dynamic_hw=dynamic_hw,
                               precision=precision, calibration=calibration)


def family_key(spec: Any) -> str:
    """The layer key with spatial sizes replaced by H/W placeholders (one ONNX file per family)."""
    return re.sub(r"(input|output):\d+x\d+x", r"\1:HxWx", spec.key)
