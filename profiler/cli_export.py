"""``lat export``: one subnet to ONNX or TFLite, with trained weights when a checkpoint is given."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from latkit import cli_args
from latkit.devices.precision import check_precision
from latkit.errors import ExportError
from latkit.fileio import check_writable
from latkit.profiler.export import build_subnet, export_module, max_abs_diff
from latkit.profiler.quantize import Calibration
from latkit.supernet.space import get_space


def _cmd_export(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    arch = space.parse(args.arch)
    suffix = Path(args.output).suffix.lstrip(".").lower()
    fmt = args.format or suffix
    if fmt not in ("onnx", "tflite"):
        raise ExportError(f"cannot tell the format from {args.output!r}; pass --format onnx|tflite")
    if suffix in ("onnx", "tflite") and suffix != fmt:
        raise ExportError(f"--format {fmt} does not match the output name {args.output!r} (a .{suffix} "
                          f"file); name it .{fmt}, or leave --format out")
    check_writable(args.output)  # before the export: a FIFO, device node or symlink is refused
    supernet = None
    if args.checkpoint:
        from latkit.supernet.model import load_supernet  # noqa: PLC0415 -- torch: keeps lat --help fast

        supernet, _ = load_supernet(args.checkpoint, space=space.name)
    precision = args.precision or "fp32"
    if args.calib_data and precision != "int8":
        raise ExportError(f"--calib-data calibrates int8 models; this export is {precision} "
                          "(add --precision int8, or leave --calib-data out)")
    calib = Calibration(args.calib_data) if args.calib_data else Calibration()
    module = build_subnet(space, arch, supernet, seed=args.seed)
    shape = (args.batch, 3, arch.r, arch.r)
    path = export_module(module, shape, args.output, fmt, precision=precision, calibration=calib)
    check_precision(path, precision)  # what was written holds what was asked
    result = {"path": str(path), "arch": str(arch), "space": space.name, "format": fmt,
              "precision": precision, "bytes": path.stat().st_size,
              "weights": args.checkpoint or f"random (seed {args.seed})"}
    if precision == "int8":
        result["calibration"] = calib.identity()
    if args.verify:
        result["max_abs_diff"] = max_abs_diff(module, path, shape)
    if args.json:
        print(json.dumps(result))
    else:
        extra = f", max |torch - {fmt}| = {result['max_abs_diff']:.2e}" if args.verify else ""
        print(f"wrote {path} ({result['bytes'] / 1e6:.2f} MB, {precision}, {arch}, weights: "
              f"{result['weights']}{extra})")
    return 0


def register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a subnet to ONNX or TFLite",
                       description="Export one subnet as a standalone model file. Without "
                       "--checkpoint the weights are a seeded random initialisation (fine for "
                       "latency); with it, the subnet's trained weights are extracted.")
    cli_args.add_space(p, required=True)
    p.add_argument("--arch", required=True, help="canonical key or once-for-all JSON dict")
    p.add_argument("--format", choices=["onnx", "tflite"], help="default: from the file suffix")
    p.add_argument("-o", "--output", required=True, help="output file (.onnx or .tflite)")
    p.add_argument("--checkpoint", help="supernet checkpoint (from lat-train) for trained weights")
    cli_args.add_batch(p, default=1)
    cli_args.add_precision(p, calib=True)
    cli_args.add_seed(p, default=0, what="weight seed when no checkpoint is given")
    p.add_argument("--verify", action="store_true", help="compare the file's output with torch")
    cli_args.add_json(p)
    p.set_defaults(func=_cmd_export)
