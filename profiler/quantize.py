"""fp16 and int8 models: an fp32 export quantized after the fact, calibrated on images.

One code path for subnets and single layers: ``quantize_file(fp32_path, out, fmt, precision,
inputs)`` with the calibration inputs of ``calibration_inputs(calib, shape)``.

- TFLite (ai-edge-quantizer, which litert-torch depends on): ``int8`` is full-integer, the recipe
  ``static_wi8_ai8`` (int8 channel-wise weights, int8 activations, int8 input and output tensors)
  calibrated on the inputs; ``fp16`` is fp16 weights (``FLOAT_CASTING`` weight-only: computed in
  float32, or in fp16 where the delegate runs fp16, as the GPU delegate does).
- ONNX (``onnxruntime.quantization``): ``int8`` is static QDQ (``quantize_static``, int8 weights per
  channel and int8 activations) with a ``CalibrationDataReader`` over the same inputs; ``fp16`` is
  onnxruntime's float16 conversion (``onnxruntime.transformers.float16``, float32 input and output).

Calibration: a model whose input is an image (3 channels) is calibrated on images, centre-cropped to
its resolution and normalised as in training: the built-in data set by default, or ``--calib-data``
(a folder of images, searched recursively, or ``builtin:NAME``). A single layer deeper in a network
takes feature maps, not images: it is calibrated on seeded standard-normal inputs of its shape (its
latency does not depend on the values; its quantized graph is the one the recipe makes inside a
subnet). ``Calibration.identity()`` goes into the export cache's fingerprint.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latkit.cli_args import PRECISIONS
from latkit.errors import ExportError
from latkit.fileio import atomic_path

DEFAULT_CALIB_DATA = "builtin:gratings"
DEFAULT_CALIB_IMAGES = 16
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif")


def check_precision_name(precision: str | None) -> str:
    p = precision or "fp32"
    if p not in PRECISIONS:
        raise ExportError(f"unknown precision {p!r}; choose one of {', '.join(PRECISIONS)}")
    return p


@dataclass(frozen=True)
class Calibration:
    """What int8 is calibrated on: ``data`` (``builtin:NAME`` or a folder) and ``n`` images."""

    data: str = DEFAULT_CALIB_DATA
    n: int = DEFAULT_CALIB_IMAGES

    def __post_init__(self) -> None:
        if not self.data.startswith("builtin:") and not Path(self.data).is_dir():
            raise ExportError(f"--calib-data {self.data}: not a folder of images (or builtin:NAME)")
        if self.n < 1:
            raise ExportError(f"calibration needs at least one image, got {self.n}")

    def identity(self) -> str:
        data = self.data if self.data.startswith("builtin:") else os.path.abspath(self.data)
        return f"{data}#{self.n}"


def _folder_images(root: Path, n: int) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ExportError(f"--calib-data {root}: no image files ({', '.join(_IMAGE_SUFFIXES[:4])}...) "
                          "in it or below it")
    return files[:n]


def calibration_images(calib: Calibration, r: int) -> Any:
    """N x 3 x r x r float32 (numpy), normalised as the training data are (read once per process
    for a built-in set; a folder is read each time, so that changed files are seen)."""
    if calib.data.startswith("builtin:"):
        return _builtin_images(calib.data, calib.n, r).copy()
    return _images(calib, r)


@functools.lru_cache(maxsize=8)
def _builtin_images(data: str, n: int, r: int) -> Any:
    return _images(Calibration(data, n), r)


def _images(calib: Calibration, r: int) -> Any:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 -- Pillow: keeps lat --help fast

    from latkit.supernet.data import (  # noqa: PLC0415 -- imports torch
        Augment,
        calibration_indices,
        eval_transform,
        load_eval_images,
        open_data,
        to_tensor,
    )

    if calib.data.startswith("builtin:"):
        data = open_data(calib.data)
        arrays, _ = load_eval_images(data.train, calibration_indices(data, calib.n), r, data.augment)
    else:
        out = []
        for f in _folder_images(Path(calib.data), calib.n):
            try:
                with Image.open(f) as im:
                    out.append(eval_transform(im.convert("RGB"), r, Augment()))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ExportError(f"--calib-data: cannot read image {f} ({type(exc).__name__})") from None
        import numpy as np  # noqa: PLC0415 -- numpy: keeps lat --help fast

        arrays = np.stack(out)
    return to_tensor(arrays).numpy()


def calibration_inputs(calib: Calibration, shape: tuple[int, ...], seed: int = 0) -> list[Any]:
    """The calibration batches (each of ``shape``) for a model whose input has ``shape``."""
    import numpy as np  # noqa: PLC0415 -- numpy: keeps lat --help fast

    batch = shape[0]
    if len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3]:
        images = calibration_images(calib, shape[2])
        reps = -(-max(batch, len(images)) // len(images))
        images = np.concatenate([images] * reps)
        n = max(1, len(images) // batch)
        return [np.ascontiguousarray(images[i * batch:(i + 1) * batch]) for i in range(n)]
    rng = np.random.default_rng([seed, 15])
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(calib.n)]


def score_int8(subnet: Any, arch: Any, images: Any, data_spec: str, fmt: str = "tflite") -> float:
    """Held-out top-1 (percent) of ``subnet``'s int8 export (``fmt``: LiteRT or ONNX Runtime runs
    it), calibrated on ``data_spec``'s training images; ``images`` is an ``EvalImages``."""
    import tempfile  # noqa: PLC0415 -- only here

    import numpy as np  # noqa: PLC0415 -- numpy: keeps lat --help fast
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast

    from latkit.profiler.export import export_module, run_exported  # noqa: PLC0415 -- a cycle
    from latkit.supernet.accuracy import normalise_images  # noqa: PLC0415 -- imports torch

    x = normalise_images(images.images, torch.device("cpu")).numpy()
    labels = images.labels.numpy()
    with tempfile.TemporaryDirectory(prefix="latkit-int8-") as tmp:
        path = export_module(subnet, (1, 3, arch.r, arch.r), Path(tmp) / f"m.{fmt}", fmt,
                             precision="int8", calibration=Calibration(data_spec))
        pred = [int(np.asarray(run_exported(path, x[i:i + 1])).reshape(-1).argmax())
                for i in range(len(x))]
    return float(100.0 * np.mean(np.asarray(pred) == labels))


@contextlib.contextmanager
def quiet():
    """Silence exporter and quantizer chatter (warnings, progress on stdout/stderr) unless an error
    escapes; ``profiler/export.py`` uses it too."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _quantize_tflite(src: Path, dst: Path, precision: str, inputs: list[Any]) -> None:
    with quiet():
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 -- the tflite extra
        from ai_edge_quantizer import quantizer, recipe  # noqa: PLC0415 -- the tflite extra
        from ai_edge_quantizer.algorithm_manager import AlgorithmName  # noqa: PLC0415 -- as above
        from ai_edge_quantizer.qtyping import TFLOperationName  # noqa: PLC0415 -- as above

        if precision == "int8":
            sigs = Interpreter(model_path=str(src)).get_signature_list()
            sig = next(iter(sigs))
            name = sigs[sig]["inputs"][0]
            q = quantizer.Quantizer(str(src), recipe.static_wi8_ai8())
            qsv = q.calibrate({sig: [{name: x} for x in inputs]}, num_threads=1)
            result = q.quantize(qsv, enable_progress_report=False)
        else:
            q = quantizer.Quantizer(str(src))
            q.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                                     num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
            result = q.quantize(enable_progress_report=False)
    with atomic_path(dst) as tmp:
        Path(tmp).write_bytes(bytes(result.quantized_model))


def _quantize_onnx(src: Path, dst: Path, precision: str, inputs: list[Any]) -> None:
    import onnx  # noqa: PLC0415 -- onnx: keeps lat --help fast

    with quiet():
        if precision == "fp16":
            try:
                from onnxruntime.transformers.float16 import (  # noqa: PLC0415 -- optional part
                    convert_float_to_float16,
                )
            except ImportError:
                raise ExportError("this onnxruntime has no float16 conversion "
                                  "(onnxruntime.transformers.float16); ONNX fp16 is not available: "
                                  "use --precision fp32 or int8, or a .tflite file") from None
            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
            with atomic_path(dst) as tmp:
                onnx.save(model, str(tmp))
            return
        import onnxruntime  # noqa: PLC0415 -- onnxruntime: keeps lat --help fast
        from onnxruntime.quantization import (  # noqa: PLC0415 -- onnxruntime: lat --help fast
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter([{"input": x} for x in inputs])

            def get_next(self) -> dict[str, Any] | None:
                return next(self._it, None)

        onnxruntime.set_default_logger_severity(3)  # its C++ warnings bypass Python's streams
        with atomic_path(dst) as tmp:
            quantize_static(str(src), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            per_channel=True)


def quantize_file(src: str | Path, dst: str | Path, fmt: str, precision: str,
                  inputs: list[Any]) -> Path:
    """Write ``dst``: the fp32 model ``src`` (format ``fmt``) in ``precision`` (fp16 or int8),
    int8 calibrated on ``inputs`` (numpy batches of the model's input shape)."""
    precision = check_precision_name(precision)
    if precision == "fp32":
        raise ExportError("quantize_file makes fp16 or int8 models; an fp32 model is the export")
    src, dst = Path(src), Path(dst)
    try:
        if fmt == "tflite":
            _quantize_tflite(src, dst, precision, inputs)
        elif fmt == "onnx":
            _quantize_onnx(src, dst, precision, inputs)
        else:
            raise ExportError(f"unknown export format {fmt!r}")
    except ImportError:
        raise ExportError(f"{precision} {fmt} export needs the tflite extra: "
                          "pip install 'latkit[tflite]'") from None
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 -- quantizer errors are many and private
        raise ExportError(f"{precision} quantization of {src.name} failed: {_first_line(exc)}") from None
    return dst
