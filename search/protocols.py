"""What search needs from the rest of latkit: a latency source per device and one accuracy source.

Search never cares where a number comes from. A latency source answers "how many milliseconds does
each of these subnets take on device D?" and an accuracy source "what top-1 (percent) does each of
these subnets reach?", both for a whole batch at once (numpy arrays, one value per arch, in order):

=====================  ===========================================================================
``PredictorLatency``   a fitted latency predictor (``lat fit`` JSON, via ``load_predictor``)
``TableLatency``       a per-layer lookup table (``lat profile`` directory): sum of the layers' medians,
                       plus the table's calibration (``meta.json`` "calibration") when it has one
``MeasuredLatency``    live measurement on the device, cached in memory and on disk by the full arch
                       key (resolution included)
``AccuracyTable``      the ``arch,top1`` CSV written by ``lat train eval``; a missing arch is an error
``PredictedAccuracy``  an accuracy predictor (``lat train fit-accuracy`` JSON, target "top1")
=====================  ===========================================================================

Every source is checked against the search space when it is built: a predictor fitted for another
space is a one-line ``PredictorError`` ("predictor X.json is for space A, not B").

Command-line specs (``--latency DEV=SPEC``): ``cpu=pred.json`` (a predictor file), ``cpu=lut:DIR``
(a lookup table) or ``cpu=measure`` (live); ``--accuracy acc.csv`` or ``--accuracy acc.json``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from latkit.cli_args import PRECISIONS
from latkit.devices import levels
from latkit.devices.registry import get_device
from latkit.errors import LatkitError, PredictorError
from latkit.fileio import check_writable
from latkit.profiler import export
from latkit.profiler.lut import LookupTable
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.family import FamilySpace
from latkit.supernet.space import ArchConfig, SearchSpace, get_space


@runtime_checkable
class LatencySource(Protocol):
    """Predicted (or measured) latency of subnets on one device, in milliseconds."""

    device: str
    space: str

    def predict_ms(self, archs: Sequence[ArchConfig]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class AccuracySource(Protocol):
    """Top-1 accuracy (percent) of subnets. ``candidates()`` is the finite set it knows, or None."""

    space: str

    def top1(self, archs: Sequence[ArchConfig]) -> np.ndarray: ...

    def candidates(self) -> list[ArchConfig] | None: ...

    def describe(self) -> dict[str, Any]: ...


def _single_threaded() -> Any:
    """Predictor calls from search are many small batches: run xgboost on one thread.

    xgboost's default (every core, OpenMP) costs ~20 ms per call on a busy 2-core machine against
    ~3 ms single-threaded, for 100 archs; even 6,000 archs predict faster on one thread. Only
    touches xgboost if the predictor already imported it.
    """
    xgb = sys.modules.get("xgboost")
    return xgb.config_context(nthread=1) if xgb is not None else contextlib.nullcontext()


def _checked(values: Any, n: int, what: str) -> np.ndarray:
    """A float array of length ``n`` with finite values, else PredictorError naming the source."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise PredictorError(f"{what} returned {arr.shape[0]} values for {n} subnets")
    if not np.all(np.isfinite(arr)):
        raise PredictorError(f"{what} returned non-finite values (NaN or inf) for some subnets")
    return arr


def _check_arch_predictor(predictor: Any, what: str) -> None:
    if getattr(predictor, "kind", None) == "table":
        raise PredictorError(f"{what} is a feature-table predictor (lat fit --table): it predicts "
                             "from numeric columns, not subnets; fit one on archs (lat fit --space)")


def _check_space(meta_space: Any, space: SearchSpace, what: str) -> None:
    if meta_space is not None and str(meta_space) != space.name:
        raise PredictorError(f"{what} is for space {meta_space}, not {space.name}; fit one for "
                             f"{space.name} (lat fit --space {space.name} ...)")


# ----------------------------------------------------------------------------------------------
# Latency sources
# ----------------------------------------------------------------------------------------------


def split_target(target: str, default_precision: str = "fp32") -> tuple[str, str]:
    """``"pixel4:int8"`` -> ``("pixel4", "int8")``; a target without a precision is
    ``default_precision`` (fp32 unless ``--precision`` says otherwise). One search may hold the same
    device in several precisions: each is its own target, with its own frontier and choices."""
    device, sep, precision = target.partition(":")
    precision = precision if sep else default_precision
    if precision not in PRECISIONS or not device:
        raise LatkitError(f"--latency target {target!r}: write DEV or DEV:PRECISION with PRECISION "
                          f"one of {', '.join(PRECISIONS)} (e.g. pixel4:int8)")
    return device, precision


def _check_latency_precision(meta_precision: Any, precision: str, source: str, target: str) -> None:
    have = str(meta_precision or "fp32")
    if have != precision:
        raise PredictorError(f"{source} holds {have} latency, but target {target} is {precision}: "
                             f"give {precision} latencies (lat fit/profile --precision {precision})"
                             f", or name the target {target.partition(':')[0]}:{have}")


def _check_predictor(predictor: Any, space: str, source: str, target: str, give: str) -> str:
    """The space's canonical name, once ``predictor`` is an arch predictor of ``target`` for it."""
    meta = getattr(predictor, "meta_", None) or {}
    sp = get_space(space)
    _check_arch_predictor(predictor, source)
    _check_space(meta.get("space"), sp, source)
    got = meta.get("target", target)
    if got != target:
        raise PredictorError(f"{source} predicts {got!r}, not {target}; give {give}")
    return sp.name


@dataclass
class PredictorLatency:
    """A fitted latency predictor (anything with ``.predict(archs)`` and ``.meta_``)."""

    predictor: Any
    space: str
    device: str
    source: str = "predictor"

    def __post_init__(self) -> None:
        self.space = _check_predictor(self.predictor, self.space, self.source, "latency_ms",
                                      "a latency predictor (lat fit) to --latency")

    @property
    def fitted_device(self) -> str | None:
        meta = getattr(self.predictor, "meta_", None) or {}
        return meta.get("device")

    def predict_ms(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        with _single_threaded():
            ms = _checked(self.predictor.predict(list(archs)), len(archs), self.source)
        if not np.all(ms > 0):
            raise PredictorError(f"{self.source} predicts a latency of {ms.min()!r} ms for some "
                                 "subnets; latencies are positive: refit it (lat fit)")
        return ms

    def describe(self) -> dict[str, Any]:
        meta = getattr(self.predictor, "meta_", None) or {}
        keep = ("kind", "space", "target", "device", "precision", "n_train", "metrics", "created",
                "fit_range")
        return {"kind": "predictor", "source": self.source,
                **{k: meta[k] for k in keep if k in meta}}


@dataclass
class TableLatency:
    """Sum of per-layer medians from a lookup table, plus its calibration when it has one.

    The calibration, if ``table.meta["calibration"]`` exists, is ``{"scale": a, "offset_ms": b}``
    and gives ``a * sum + b`` (what ``lat fit`` learns from end-to-end measurements).
    """

    table: Any  # latkit.profiler.lut.LookupTable
    space: str
    device: str
    source: str = "lookup table"

    def __post_init__(self) -> None:
        sp = get_space(self.space)
        self.space = sp.name
        _check_space(self.table.meta.get("space"), sp, self.source)

    def predict_ms(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        sums = np.asarray(self.table.sums_ms(get_space(self.space), archs), dtype=np.float64)
        cal = self.table.meta.get("calibration") or {}
        return sums * float(cal.get("scale", 1.0)) + float(cal.get("offset_ms", 0.0))

    def predict_genes_ms(self, genes: Any) -> np.ndarray:
        """``predict_ms`` of gene rows (``latkit.search.genes.Genes``), equal to the last digit.

        The table sum straight from the integer arrays (``LookupTable.sums_ms_arrays``): no
        ``ArchConfig`` is built. A row the table cannot sum takes ``predict_ms``, which raises.
        """
        sums = self.table.sums_ms_arrays(get_space(self.space), genes.r, genes.d, genes.k, genes.e)
        bad = np.flatnonzero(~np.isfinite(sums))
        if bad.size:
            from latkit.search.genes import GeneSpace  # noqa: PLC0415 -- only on a table gap

            self.predict_ms(GeneSpace(get_space(self.space)).decode(genes, bad[:1].tolist()))
        cal = self.table.meta.get("calibration") or {}
        return sums * float(cal.get("scale", 1.0)) + float(cal.get("offset_ms", 0.0))

    def describe(self) -> dict[str, Any]:
        m = self.table.meta
        return {"kind": "lookup-table", "source": self.source, "entries": len(self.table),
                "device": m.get("device"), "resolutions": m.get("resolutions"),
                "precision": self.table.precision, "calibration": m.get("calibration")}


@dataclass
class MeasuredLatency:
    """Live end-to-end measurement on ``device`` (a ``Device``), cached by the full arch key.

    The on-disk cache is ``cache_dir/measured-<device>.jsonl`` (one measurement per line, keyed by
    space, device and arch key, the resolution being part of the key); exports go through an
    ``ExportCache`` in ``cache_dir/exports``. ``supernet``/``weights_id`` export trained weights.
    """

    device_obj: Any
    space: str
    cache_dir: Path
    supernet: Any = None
    weights_id: str | None = None
    on_measure: Callable[[ArchConfig, float], None] | None = None
    precision: str = "fp32"
    device: str = field(init=False, default="")
    _memo: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.space = get_space(self.space).name
        self.device = self.device_obj.name + ("" if self.precision == "fp32" else f":{self.precision}")
        self.cache_dir = Path(self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._file = self.cache_dir / f"measured-{self.device.replace(':', '-')}.jsonl"
        if self._file.is_file():
            for line in self._file.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: measure that arch again
                if rec.get("space") == self.space and rec.get("device") == self.device:
                    self._memo[rec["arch"]] = float(rec["median_ms"])

    def measure(self, arch: ArchConfig) -> float:
        key = str(arch)
        if key in self._memo:
            return self._memo[key]
        path = export.export_arch(self.space, arch, self.device_obj.formats[0],
                                  cache=export.ExportCache(self.cache_dir / "exports"),
                                  supernet=self.supernet, weights_id=self.weights_id,
                                  precision=self.precision)
        m = levels.benchmark_scaled(self.device_obj, path)  # on the predictors' scale
        ms = float(m.median_ms)
        if not ms > 0:
            raise LatkitError(f"device {self.device} reported {ms} ms for {key}; refusing it")
        self._memo[key] = ms
        # appended one line per measurement on purpose (a killed search keeps what it measured)
        with open(check_writable(self._file), "a") as f:
            f.write(json.dumps({"space": self.space, "device": self.device, "arch": key,
                                "median_ms": ms, "measurement": m.to_dict()}) + "\n")
        if self.on_measure is not None:
            self.on_measure(arch, ms)
        return ms

    def predict_ms(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        """One array from the cache; each distinct arch it lacks is measured once, in order."""
        keys = [str(a) for a in archs]
        memo = self._memo
        for a, k in zip(archs, keys, strict=True):
            if k not in memo:
                self.measure(a)
        return np.fromiter((memo[k] for k in keys), dtype=np.float64, count=len(keys))

    def describe(self) -> dict[str, Any]:
        return {"kind": "measured", "device": self.device, "cache": str(self._file),
                "cached": len(self._memo)}


# ----------------------------------------------------------------------------------------------
# Accuracy sources
# ----------------------------------------------------------------------------------------------


@dataclass
class AccuracyTable:
    """Top-1 per arch key, from the ``arch,top1`` CSV (``lat train eval``)."""

    top1_by_key: dict[str, float]
    space: str
    source: str = "accuracy table"
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, space: str | SearchSpace) -> AccuracyTable:
        """The table at ``path``, read and checked by ``read_accuracy_csv``.

        For a family (``supernet.family``) the table is read as its parent's and only the
        members' rows are kept: a table of the whole parent space serves any family of it.
        """
        sp = get_space(space)
        family = isinstance(sp, FamilySpace)
        table: dict[str, float] = {}
        checkpoints: set[str] = set()
        for row in read_accuracy_csv(path, sp.parent if family else sp):
            if family and row.arch not in sp.members_set:
                continue
            table[str(row.arch)] = row.top1
            if row.fields.get("checkpoint"):
                checkpoints.add(row.fields["checkpoint"])
        if family and not table:
            raise LatkitError(f"accuracy table {path} has none of the {len(sp.members)} subnets of "
                              f"{sp.label}; evaluate them with lat train eval --space {sp.source}")
        return cls(table, sp.name, source=str(Path(path)), meta={"checkpoints": sorted(checkpoints)})

    def top1(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        out = np.empty(len(archs), dtype=np.float64)
        for i, a in enumerate(archs):
            v = self.top1_by_key.get(str(a))
            if v is None:
                raise LatkitError(f"{a} is not in accuracy table {self.source} "
                                  f"({len(self.top1_by_key)} subnets); evaluate it with lat train "
                                  "eval, or search only the table's subnets")
            out[i] = v
        return out

    def candidates(self) -> list[ArchConfig]:
        return [ArchConfig.parse(k) for k in self.top1_by_key]

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "source": self.source, "subnets": len(self.top1_by_key), **self.meta}


@dataclass
class PredictedAccuracy:
    """An accuracy predictor (``.predict(archs)`` in percent top-1, ``meta_['target'] == 'top1'``)."""

    predictor: Any
    space: str
    source: str = "accuracy predictor"

    def __post_init__(self) -> None:
        self.space = _check_predictor(self.predictor, self.space, self.source, "top1",
                                      "an accuracy predictor (lat train fit-accuracy) or an "
                                      "arch,top1 CSV to --accuracy")

    def top1(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        with _single_threaded():
            return _checked(self.predictor.predict(list(archs)), len(archs), self.source)

    def candidates(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        meta = getattr(self.predictor, "meta_", None) or {}
        keep = ("kind", "space", "target", "n_train", "metrics", "created", "checkpoint",
                "fit_range")
        return {"kind": "predictor", "source": self.source,
                **{k: meta[k] for k in keep if k in meta}}


# ----------------------------------------------------------------------------------------------
# Building sources from command-line specs
# ----------------------------------------------------------------------------------------------


def _load_predictor(path: Path) -> Any:
    if not path.is_file():
        raise PredictorError(f"predictor file {path} does not exist; fit one with lat fit")
    # only predictor files need scikit-learn and xgboost: a search over tables starts in 0.3 s
    from latkit.predictors.io import load_predictor  # noqa: PLC0415 -- sklearn/xgboost: start-up

    return load_predictor(path)


def parse_latency_specs(text: str) -> list[tuple[str, str]]:
    """``"cpu=a.json,pixel4=lut:DIR"`` -> [("cpu", "a.json"), ("pixel4", "lut:DIR")]."""
    out: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        dev, sep, spec = part.partition("=")
        if not sep or not dev.strip() or not spec.strip():
            raise LatkitError(f"--latency takes DEV=PRED.json (or DEV=lut:DIR, DEV=measure), "
                              f"comma-separated; got {part!r}")
        out.append((dev.strip(), spec.strip()))
    if not out:
        raise LatkitError("--latency is empty; give DEV=PRED.json[,DEV=...]")
    names = [d for d, _ in out]
    dup = sorted({d for d in names if names.count(d) > 1})
    if dup:
        raise LatkitError(f"--latency names device(s) {', '.join(dup)} more than once")
    return out


def latency_source(device: str, spec: str, space: str | SearchSpace, *,
                   cache_dir: str | Path | None = None, device_obj: Any = None,
                   supernet: Any = None, weights_id: str | None = None,
                   precision: str = "fp32") -> LatencySource:
    """One latency source from its spec: a predictor JSON, ``lut:DIR`` or ``measure``.

    ``device`` is the target (``pixel4`` or ``pixel4:int8``, ``split_target``); a predictor or
    table of another precision than the target's is refused.
    """
    sp = get_space(space)
    base, prec = split_target(device, precision)
    if spec == "measure":
        if device_obj is None:
            device_obj = get_device(base)
        return MeasuredLatency(device_obj, sp.name, Path(cache_dir or ".latkit-cache"),
                               supernet=supernet, weights_id=weights_id, precision=prec)
    if spec.startswith("lut:"):
        directory = spec[4:]
        table = LookupTable.load(directory)
        _check_latency_precision(table.precision, prec, f"lookup table {directory}", device)
        return TableLatency(table, sp.name, device, source=f"lookup table {directory}")
    path = Path(spec)
    pred = _load_predictor(path)
    _check_latency_precision((getattr(pred, "meta_", None) or {}).get("precision"), prec,
                             f"predictor {path.name}", device)
    return PredictorLatency(pred, sp.name, device, source=f"predictor {path.name}")


def accuracy_source(spec: str, space: str | SearchSpace) -> AccuracySource:
    """An ``arch,top1`` table (CSV or Parquet) or an accuracy predictor JSON."""
    path = Path(spec)
    if path.suffix.lower() in (".csv", ".parquet", ".pq"):
        return AccuracyTable.load(path, space)
    if path.suffix.lower() == ".json":
        return PredictedAccuracy(_load_predictor(path), get_space(space).name,
                                 source=f"predictor {path.name}")
    raise LatkitError(f"--accuracy takes an arch,top1 CSV (lat train eval) or an accuracy "
                      f"predictor JSON (lat train fit-accuracy); got {spec!r}")
