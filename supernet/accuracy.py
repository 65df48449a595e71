"""Accuracy sources for search: the top-1 of many subnets (BN-recalibrated), and a predictor of it.

``evaluate_subnets`` gives the held-out top-1 of each subnet after recalibrating its BatchNorm
statistics on a fixed subset of training images. It is exactly what "recalibrate, then evaluate"
gives for every subnet one at a time, but it shares work between subnets with a common prefix: the
stem once per resolution; stage 1 once per choice of stage 1; stage 2 once per choice of stages 1-2;
and so on (a depth-first walk of the prefix tree). BN statistics of stage s depend only on what
enters stage s, so recalibrating stage s once per prefix and keeping the calibration and evaluation
activations along the current path reproduces the one-at-a-time results (same batches, same
operations). For CompOFA's 243 subnets this evaluates 3 + 9 + 27 + 81 + 243 stage instances instead
of 5 x 243.

``accuracy_table`` runs it from a checkpoint and writes the accuracy CSV (``arch,top1,space,
resolution,checkpoint``, top-1 in percent) row by row, keeping the rows of an interrupted run (read
back with ``latkit.supernet.accuracy_csv.read_accuracy_csv``, the one reader of such tables;
``lat fit --target top1`` fits an accuracy predictor on such a table).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latkit.errors import TrainError
from latkit.fileio import check_writable, sha256_file, write_text
from latkit.provenance import now_iso
from latkit.supernet.accuracy_csv import accuracy_frame, read_accuracy_csv
from latkit.supernet.arch import ArchConfig
from latkit.supernet.bn_calib import calibration_mode, recalibrate_bn
from latkit.supernet.checkpoint import load_checkpoint
from latkit.supernet.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    calibration_indices,
    heldout_indices,
    load_eval_images,
    open_data,
)
from latkit.supernet.model import supernet_from_checkpoint
from latkit.supernet.space import SearchSpace, get_space
from latkit.tables import append_rows, header_line

ACC_HEADER = ["arch", "top1", "space", "resolution", "checkpoint"]


@dataclass
class EvalImages:
    """Pre-transformed calibration and held-out images at one resolution (uint8, N x 3 x r x r)."""

    r: int
    calib: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def make_eval_images(data, r: int, n_calib: int = 256, n_eval: int | None = None,
                     workers: int = 0, on_progress: Callable[[int], None] | None = None) -> EvalImages:
    """The calibration subset of the training split and the held-out images, decoded once at r
    (``workers`` processes; ``on_progress(n)`` as images are decoded)."""
    c, _ = load_eval_images(data.train, calibration_indices(data, n_calib), r, data.augment,
                            workers, on_progress)
    x, y = load_eval_images(data.heldout, heldout_indices(data, n_eval), r, data.augment,
                            workers, on_progress)
    return EvalImages(r, _nchw(c), _nchw(x), torch.from_numpy(y))


def normalise_images(chunk_u8: torch.Tensor, device: torch.device, channels_last: bool = False
                     ) -> torch.Tensor:
    x = chunk_u8.to(device).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on a CUDA device or on a CPU with native bfloat16, else fp32."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise TrainError(f"precision must be fp32, bf16 or auto, got {precision!r}")
    return precision


def _chunks(t: torch.Tensor, n: int) -> list[torch.Tensor]:
    return [t[i:i + n] for i in range(0, t.shape[0], n)]


class _Walker:
    """Depth-first evaluation of the prefix tree of a list of archs at one resolution."""

    def __init__(self, model, ev: EvalImages, batch_size: int, device: torch.device,
                 on_result: Callable[[ArchConfig, float], None]) -> None:
        self.model, self.ev, self.on_result = model, ev, on_result
        self.bs, self.device = batch_size, device

    def _calib_then_eval(self, fn, calib: list[torch.Tensor], evals: list[torch.Tensor]):
        with calibration_mode(self.model):
            new_calib = [fn(a) for a in calib]
        self.model.eval()
        with torch.no_grad():
            new_eval = [fn(a) for a in evals]
        return new_calib, new_eval

    def run(self, archs: Sequence[ArchConfig]) -> None:
        m = self.model
        cl = self.device.type == "cpu"  # NHWC: ~1.4x faster convolutions on a CPU
        calib = [normalise_images(c, self.device, cl) for c in _chunks(self.ev.calib, self.bs)]
        evals = [normalise_images(c, self.device, cl) for c in _chunks(self.ev.images, self.bs)]
        calib, evals = self._calib_then_eval(lambda a: m.first_block(m.stem(a)), calib, evals)
        self._descend(0, list(archs), calib, evals)

    def _descend(self, s: int, group: list[ArchConfig], calib, evals) -> None:
        m = self.model
        if s == len(m.stages):
            self._head(group, calib, evals)
            return
        by_choice: dict[tuple, list[ArchConfig]] = {}
        for a in group:
            by_choice.setdefault((a.ks[s], a.e[s]), []).append(a)
        blocks = m.stages[s]
        for (ks, es), sub in by_choice.items():
            def stage(x: torch.Tensor, ks=ks, es=es) -> torch.Tensor:
                for block, k, e in zip(blocks, ks, es, strict=False):
                    x = block(x, k, e)
                return x
            c2, e2 = self._calib_then_eval(stage, calib, evals)
            self._descend(s + 1, sub, c2, e2)

    def _head(self, group: list[ArchConfig], calib, evals) -> None:
        m = self.model
        with calibration_mode(m):
            for a in calib:
                m.final_expand(a)
        m.eval()
        correct = 0
        with torch.no_grad():
            for a, y in zip(evals, _chunks(self.ev.labels, self.bs), strict=False):
                logits = m.classifier(m.feature_mix(m.pool(m.final_expand(a))))
                correct += int((logits.argmax(1).cpu() == y).sum())
        top1 = 100.0 * correct / max(1, self.ev.labels.shape[0])
        for a in group:
            self.on_result(a, top1)


def evaluate_subnets(model, archs: Iterable[ArchConfig], images: dict[int, EvalImages], *,
                     batch_size: int = 128, precision: str = "fp32",
                     on_result: Callable[[ArchConfig, float], None] | None = None
                     ) -> dict[ArchConfig, float]:
    """Held-out top-1 (percent) of every arch after BN recalibration (prefix-shared, see module).

    ``precision="bf16"`` runs the convolutions under bfloat16 autocast (about 2x faster on a CPU
    with AVX512-BF16; top-1 within a held-out image or two of fp32); ``"auto"`` picks bf16 where
    the hardware has it (``resolve_precision``). On a CPU the activations and the weights are
    kept channels-last (NHWC) while evaluating, which is faster for depthwise convolutions; the
    model is given back in its own memory format.
    """
    archs = list(dict.fromkeys(archs))
    device = next(model.parameters()).device
    out: dict[ArchConfig, float] = {}

    def record(a: ArchConfig, top1: float) -> None:
        out[a] = top1
        if on_result is not None:
            on_result(a, top1)

    by_r: dict[int, list[ArchConfig]] = {}
    for a in archs:
        by_r.setdefault(a.r, []).append(a)
    precision = resolve_precision(precision, device)
    was_training = model.training
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for r, group in by_r.items():
                if r not in images:
                    raise TrainError(f"no evaluation images prepared at resolution {r}")
                _Walker(model, images[r], batch_size, device, record).run(group)
    finally:
        model.train(was_training)
        if device.type == "cpu":
            model.to(memory_format=torch.contiguous_format)
    return out


# --------------------------------------------------------------------------------------------
# The accuracy table from a checkpoint
# --------------------------------------------------------------------------------------------


@dataclass
class AccuracyTable:
    path: Path
    n_evaluated: int
    n_kept: int
    elapsed_s: float
    top1: dict[ArchConfig, float]

    def frame(self) -> Any:
        """The accuracy table at ``path`` as a DataFrame (``accuracy_frame``)."""
        return accuracy_frame(self.path)


def _same_checkpoint(recorded: str, checkpoint: str | Path, sha: dict[str, str | None]) -> bool:
    """Whether a row's ``checkpoint`` names ``checkpoint``: the same resolved path or the same bytes."""
    if os.path.abspath(recorded) == os.path.abspath(checkpoint):
        return True
    for p in (recorded, str(checkpoint)):
        if p not in sha:
            sha[p] = sha256_file(p) if os.path.isfile(p) else None
    return sha[recorded] is not None and sha[recorded] == sha[str(checkpoint)]


def _rows_of_checkpoint(out: Path, checkpoint: str | Path) -> dict[ArchConfig, float]:
    """The rows of the table at ``out`` (all of them from ``checkpoint``), or a ``TrainError``.

    A table that holds rows of another checkpoint is never rewritten or mixed: the user gives
    another ``--out`` or ``--overwrite``.
    """
    done: dict[ArchConfig, float] = {}
    sha: dict[str, str | None] = {}
    for a, top1, row in read_accuracy_csv(out, allow_empty=True):
        recorded = row.get("checkpoint") or ""
        if not _same_checkpoint(recorded, checkpoint, sha):
            raise TrainError(f"{out} holds rows evaluated from checkpoint {recorded or '(none)'}, "
                             f"not {checkpoint} (another file); give another --out, or "
                             "--overwrite to replace the table")
        done[a] = top1
    return done


def accuracy_table(checkpoint: str | Path, space: SearchSpace | str, archs: Sequence[ArchConfig] | Any,
                   out: str | Path, *, data_spec: str | None = None, n_calib: int = 256,
                   n_eval: int | None = 500, batch_size: int = 128, overwrite: bool = False,
                   device: str = "cpu", precision: str = "fp32", command: str = "",
                   on_result: Callable[[ArchConfig, float], None] | None = None,
                   log: Callable[[str], None] | None = None, workers: int = 0,
                   on_decode: Callable[[int, int], None] | None = None,
                   export_scorer: Callable[..., float] | None = None) -> AccuracyTable:
    """Evaluate ``archs`` of the supernet in ``checkpoint`` and write the accuracy CSV at ``out``.

    ``space`` is a ``SearchSpace`` or its name; ``archs`` are ``ArchConfig``s, arch keys, or a
    DataFrame with an ``arch`` column. The result's ``frame()`` is the table as a DataFrame.

    The CSV is appended row by row as results come (an interrupted run keeps them, and a rerun
    without ``overwrite`` evaluates only the archs it lacks); ``out.meta.json`` beside it records
    how it was made, with ``command``. Images are decoded once per resolution in ``workers``
    processes; ``on_decode(n, total)`` reports their progress.

    ``precision="int8"`` scores what ships: each subnet, BatchNorm recalibrated, is handed to
    ``export_scorer(subnet, arch, images, data_spec)`` (``latkit.profiler.quantize.score_int8``,
    given by ``lat train eval``: this package sits below the exporter), which exports it in int8
    calibrated on the data's training images and returns the export's held-out top-1.
    """
    t0 = time.perf_counter()
    space = get_space(space) if isinstance(space, str) else space
    if hasattr(archs, "columns"):  # a DataFrame with an arch column
        archs = archs["arch"]
    archs = [a if isinstance(a, ArchConfig) else space.parse(a) for a in archs]
    out = check_writable(out)  # before the work: a FIFO, device node or symlink is refused
    ckpt = load_checkpoint(checkpoint, space.name)  # a released file: converted for this space
    model = supernet_from_checkpoint(ckpt, checkpoint)
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:  # a diverged run's weights: every "top-1" would be the share of one class
        raise TrainError(f"checkpoint {checkpoint} has non-finite weights ({len(bad)} tensors, e.g. "
                         f"{bad[0]}): its training diverged; evaluate an earlier checkpoint")
    for a in archs:
        model.space.validate(a)
    spec = data_spec or (ckpt.get("config") or {}).get("data")
    if not spec:
        raise TrainError(f"checkpoint {checkpoint} names no data set; pass --data")
    data = open_data(spec, warn=log)
    if data.n_classes != model.n_classes:
        raise TrainError(f"data {spec} has {data.n_classes} classes but the checkpoint "
                         f"{model.n_classes}; pass the --data it was trained on")
    if precision == "int8" and export_scorer is None:
        raise TrainError("int8 evaluation scores the int8 export: it needs an export_scorer "
                         "(lat train eval --precision int8 passes latkit.profiler's)")
    if out.is_file() and not overwrite:
        try:
            before = json.loads(out.with_suffix(".meta.json").read_text()).get("precision", "fp32")
        except (OSError, ValueError, AttributeError):
            before = None
        want = precision if precision == "int8" else resolve_precision(precision, torch.device(device))
        if before is not None and (before == "int8") != (want == "int8"):
            raise TrainError(f"{out} holds {before} top-1; this evaluation is {want}: give another "
                             "--out, or --overwrite")
    model.to(torch.device(device))
    done: dict[ArchConfig, float] = {}
    ckpt_id = os.path.abspath(checkpoint)  # rows record it; a resume from elsewhere still matches
    if out.is_file() and not overwrite:
        done = _rows_of_checkpoint(out, checkpoint)
    todo = [a for a in dict.fromkeys(archs) if a not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = overwrite or not out.is_file() or not done
    f = out.open("w" if fresh else "a", newline="", encoding="utf-8")

    def row(a: ArchConfig, top1: float) -> dict[str, Any]:
        return dict(zip(ACC_HEADER, (str(a), f"{top1:.3f}", space.name, a.r, ckpt_id), strict=True))

    if fresh:
        f.write(header_line(ACC_HEADER))
        append_rows(f, [row(a, top1) for a, top1 in done.items()], ACC_HEADER)

    def record(a: ArchConfig, top1: float) -> None:
        append_rows(f, [row(a, top1)], ACC_HEADER)
        if on_result is not None:
            on_result(a, top1)

    try:
        resolutions = sorted({a.r for a in todo})
        total = len(resolutions) * (min(n_calib, len(data.train)) + len(heldout_indices(data, n_eval)))

        def decoded(n: int) -> None:
            if on_decode is not None:
                on_decode(n, total)

        images = {r: make_eval_images(data, r, n_calib, n_eval, workers, decoded)
                  for r in resolutions}
        if precision == "int8":
            results = {}
            for a in todo:
                im = images[a.r]
                recalibrate_bn(model, a, normalise_images(im.calib, next(model.parameters()).device),
                               batch_size=batch_size)
                results[a] = float(export_scorer(model.extract(a).cpu().eval(), a, im, spec))
                record(a, results[a])
        else:
            results = evaluate_subnets(model, todo, images, batch_size=batch_size,
                                       precision=precision, on_result=record)
    finally:
        f.close()
    elapsed = time.perf_counter() - t0
    meta = {
        "format": "latkit-accuracy", "space": space.name, "checkpoint": ckpt_id,
        "checkpoint_space": model.space.name, "data": data.name, "data_origin": data.origin,
        "calibration_images": n_calib,
        "precision": precision if precision == "int8" else resolve_precision(precision,
                                                                               torch.device(device)),
        "heldout_images": int(images[resolutions[0]].labels.shape[0]) if resolutions else None,
        "resolutions": resolutions, "n_archs": len(archs),
        "elapsed_s": round(elapsed, 3), "command": command,
        "created": now_iso(),
    }
    write_text(out.with_suffix(".meta.json"), json.dumps(meta, indent=1) + "\n")
    return AccuracyTable(out, len(todo), len(done), elapsed, {**done, **results})
