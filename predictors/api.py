"""The library entry points behind ``lat fit`` and ``lat predict`` (accuracy predictors: ``accuracy.py``).

- ``read_measurements(path, space)``: ``lat measure``'s CSV -> archs, latencies, provenance;
- ``fit_arch_regressor(space, archs, y, model, target, seed, table)``: one fitted predictor with its
  metadata (training and cross-validated metrics);
- ``fit_latency(...)``: ``lat fit --space``: read, optionally hold out, fit, describe;
- ``fit_fewshot(...)``: ``lat fit --base``: adapt other devices' predictors with k measurements;
- ``fit_table(...)``: ``lat fit --table``: a user's own feature table;
- ``read_feature_rows(path, columns)``: the rows ``lat predict --table`` predicts;
- ``evaluate(pred, archs, y)``: metrics of a predictor on measurements.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latkit.errors import ArchError, PredictorError
from latkit.predictors import defaults
from latkit.predictors.io import load_predictor
from latkit.predictors.metrics import regression_metrics
from latkit.predictors.models import LATENCY, make_predictor, unit_of
from latkit.predictors.ranges import merge_ranges
from latkit.predictors.table_model import TablePredictor
from latkit.predictors.transfer import FewShotPredictor
from latkit.profiler.lut import LookupTable
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.space import ArchConfig, SearchSpace, get_space


@dataclass
class Measurements:
    """End-to-end measurements read from a CSV: archs, values, and what the file says about them."""

    archs: list[ArchConfig]
    values: np.ndarray
    devices: list[str] = field(default_factory=list)
    spaces: list[str] = field(default_factory=list)
    path: str = ""
    space: str = ""

    @property
    def device(self) -> str | None:
        return self.devices[0] if len(self.devices) == 1 else None


#: the largest latency a measurement may report (an hour per inference): above it is a unit or
#: parse error (1e308 ms once gave predictions of 4.9e58 ms)
MAX_LATENCY_MS = 3.6e6


def _open_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    header, rows = _open_csv_lines(path)
    return header, [row for _, row in rows]


def _open_csv_lines(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and (line number, row) pairs of a CSV (lines starting with ``#`` skipped)."""
    p = Path(path)
    if not p.is_file():
        raise PredictorError(f"measurement file {p} does not exist (write one with lat measure)")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            lines = [(i, ln) for i, ln in enumerate(f, start=1) if not ln.startswith("#")]
        reader = csv.DictReader(ln for _, ln in lines)
        rows = [(lines[reader.line_num - 1][0], row) for row in reader]
        return list(reader.fieldnames or []), rows
    except UnicodeDecodeError:
        raise PredictorError(f"{p} is not UTF-8 text (a binary or differently encoded file?); "
                             "give the CSV lat measure wrote") from None
    except (OSError, csv.Error) as exc:
        raise PredictorError(f"{p} is not a readable CSV file ({exc})") from None


def _check_value(path: str | Path, i: int, target: str, text: Any) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise PredictorError(f"{path}:{i}: {target} {text!r} is not a number") from None
    if target == LATENCY and not (np.isfinite(v) and 0 < v <= MAX_LATENCY_MS):
        raise PredictorError(f"{path}:{i}: {target} must be a positive finite number of ms up to "
                             f"{MAX_LATENCY_MS:g} (an hour), found {v}; fix or drop that row")
    if target == "top1" and not (np.isfinite(v) and 0 <= v <= 100):
        raise PredictorError(f"{path}:{i}: top1 is a percentage (0..100), found {v}")
    if not np.isfinite(v):
        raise PredictorError(f"{path}:{i}: {target} must be a finite number, found {v}")
    return v


def read_measurements(path: str | Path, space: SearchSpace | str | None = None,
                      target: str = LATENCY) -> Measurements:
    """Rows of ``arch,<target>[,space,device,...]``; the arch is a key or a once-for-all JSON dict.

    ``space`` None takes it from the file's ``space`` column (which must then name one space); a
    row whose ``space`` names another space is an error (it is never dropped without a word). An
    arch measured twice on one device must have the same value both times (an exact repeat is
    read once). Extra columns are ignored. A bad row raises an error naming the file and line.
    """
    if target == "top1":  # an accuracy table: its one strict reader
        return _read_top1(path, space)
    header, rows = _open_csv_lines(path)
    for col in ("arch", target):
        if col not in header:
            raise PredictorError(f"{path} has no {col!r} column (header: {','.join(header)}); "
                                 f"expected arch,{target},... as written by lat measure")
    spaces = sorted({r.get("space") or "" for _, r in rows} - {""})
    if space is None:
        if len(spaces) != 1:
            raise PredictorError(f"{path} names spaces {spaces or 'none'}; pass --space")
        space = spaces[0]
    sp = get_space(space) if isinstance(space, str) else space
    archs, vals = [], []
    seen: dict[tuple[str, str], tuple[float, int]] = {}
    for i, row in rows:
        if row.get("space") and row["space"] != sp.name:
            raise PredictorError(f"{path}:{i}: a measurement of space {row['space']}, not "
                                 f"{sp.name}; pass --space {row['space']} or keep one space per file")
        try:
            arch = sp.parse(row["arch"])
        except ArchError as exc:
            raise PredictorError(f"{path}:{i}: {exc}") from None
        except (TypeError, ValueError) as exc:  # a short row: arch is None
            raise PredictorError(f"{path}:{i}: arch {row.get('arch')!r} is not an arch ({exc})") from None
        v = _check_value(path, i, target, row.get(target))
        key = (str(arch), row.get("device") or "")
        if key in seen:
            if seen[key][0] != v:
                raise PredictorError(
                    f"{path}:{i}: {key[0]} is measured twice" + (f" on {key[1]}" if key[1] else "")
                    + f" with different {target} ({seen[key][0]} on line {seen[key][1]}, {v}); keep "
                    "one row per arch and device")
            continue
        seen[key] = (v, i)
        archs.append(arch)
        vals.append(v)
    if not archs:
        raise PredictorError(f"{path} holds no measurements" + (f" of {sp.name}" if spaces else ""))
    devices = sorted({r.get("device") or "" for _, r in rows} - {""})
    return Measurements(archs, np.asarray(vals), devices, spaces, str(path), sp.name)


def _read_top1(path: str | Path, space: SearchSpace | str | None) -> Measurements:
    if space is None:
        spaces = sorted({r.fields.get("space") or "" for r in read_accuracy_csv(path)} - {""})
        if len(spaces) != 1:
            raise PredictorError(f"{path} names spaces {spaces or 'none'}; pass --space")
        space = spaces[0]
    sp = get_space(space) if isinstance(space, str) else space
    rows = list({str(r.arch): r for r in read_accuracy_csv(path, sp)}.values())  # repeats once
    return Measurements([r.arch for r in rows], np.asarray([r.top1 for r in rows]), [], [sp.name],
                        str(path), sp.name)


def cv_metrics(make: Any, archs: Sequence[Any], y: np.ndarray, folds: int, seed: int,
               unit: str = "ms") -> dict[str, Any] | None:
    """k-fold cross-validated metrics of a fresh predictor from ``make()`` (None if too few rows)."""
    n = len(archs)
    if n < 2 * folds:
        return None
    order = list(range(n))
    random.Random(seed).shuffle(order)
    pred = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        test_set = set(test)
        train = [i for i in order if i not in test_set]
        model = make().fit([archs[i] for i in train], y[train])
        pred[test] = model.predict([archs[i] for i in test])
    return regression_metrics(y, pred, unit)


def fit_arch_regressor(space: SearchSpace | str, archs: Sequence[Any], y: Sequence[float],
                       model: str = "xgb", target: str = "top1", seed: int = 0, table: Any = None,
                       cv: bool = True) -> Any:
    """A fitted predictor of ``target`` over archs of ``space`` with metadata (train and CV metrics).

    ``target`` is ``latency_ms`` or any per-arch number (``top1`` accuracy in percent for
    ``lat train fit-accuracy``). ``model`` is one of ``defaults.MODELS``.
    """
    sp = get_space(space) if isinstance(space, str) else space
    y = np.asarray(y, dtype=float)

    def make() -> Any:
        return make_predictor(model, sp.name, table, target=target, seed=seed)

    pred = make().fit(list(archs), y)
    if cv:
        m = cv_metrics(make, list(archs), y, defaults.CV_FOLDS, seed, unit_of(target))
        if m is not None:
            pred.meta_["metrics"]["cv"] = m
    return pred


def split_train(n: int, train_n: int | None, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a seeded random training subset of size ``train_n`` (all if None) and the rest."""
    if train_n is None or train_n >= n:
        return list(range(n)), []
    if train_n < 1:
        raise PredictorError(f"--train-n must be at least 1, got {train_n}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[:train_n]), sorted(order[train_n:])


def fit_latency(space: str | None, measurements: str | Path, model: str, *, lut: str | Path | None = None,
                train_n: int | None = None, seed: int = 0, command: str = "") -> Any:
    """``lat fit --space``: fit on (a seeded subset of) the measurements; the rest is held out."""
    table = load_table(lut) if lut else None
    meas = read_measurements(measurements, space)
    train, held = split_train(len(meas.archs), train_n, seed)
    y = meas.values
    pred = fit_arch_regressor(meas.space, [meas.archs[i] for i in train], y[train], model=model,
                              target=LATENCY, seed=seed, table=table)
    if held:
        pred.meta_["metrics"]["holdout"] = regression_metrics(
            y[held], pred.predict([meas.archs[i] for i in held]))
    _provenance(pred, meas, command, table)
    return pred


def fit_fewshot(space: str | None, measurements: str | Path, bases: Sequence[str | Path], *,
                method: str = "auto", seed: int = 0, command: str = "") -> Any:
    """``lat fit --base A.json,B.json``: transfer other devices' predictors with k measurements."""
    sources = [load_predictor(b) for b in bases]
    space = space or sources[0].meta_.get("space")
    meas = read_measurements(measurements, space)
    pred = FewShotPredictor(meas.space, sources, method=method,
                            random_state=seed).fit(meas.archs, meas.values)
    pred.meta_["metrics"]["loo_rmse_log"] = dict(pred.loo_)
    pred.meta_["sources"] = [{"path": str(b), "device": s.meta_.get("device"), "kind": s.kind}
                             for b, s in zip(bases, sources, strict=True)]
    pred.meta_["chosen"] = pred.candidate_
    pred.meta_["fit_range"] = merge_ranges(pred.meta_.get("fit_range"),
                                           *(s.meta_.get("fit_range") for s in sources))
    _provenance(pred, meas, command, None)
    return pred


def _provenance(pred: Any, meas: Measurements, command: str, table: Any) -> None:
    pred.meta_["device"] = meas.device or pred.meta_.get("device")
    pred.meta_["measurements"] = {"path": meas.path, "n": len(meas.archs), "devices": meas.devices}
    pred.meta_["arch_keys"] = [str(a) for a in meas.archs] if len(meas.archs) <= 2000 else None
    if table is not None:
        pred.meta_["env"] = dict(table.meta.get("env") or {})
    pred.meta_["command"] = command


def load_table(path: str | Path) -> Any:
    return LookupTable.load(path)


def read_feature_table(path: str | Path, target: str, features: Sequence[str] | None
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric feature columns and the target column of a user's CSV."""
    header, rows = _open_csv(path)
    if target not in header:
        raise PredictorError(f"{path} has no target column {target!r} (columns: {','.join(header)})")
    if features:
        missing = [c for c in features if c not in header]
        if missing:
            raise PredictorError(f"{path} lacks feature columns {missing} (columns: {','.join(header)})")
        cols = list(features)
    else:
        cols = [c for c in header if c != target and _numeric_column(rows, c)]
        if not cols:
            raise PredictorError(f"{path} has no numeric feature columns besides {target}; "
                                 "name them with --features")
    X = np.empty((len(rows), len(cols)))
    y = np.empty(len(rows))
    for i, row in enumerate(rows):
        try:
            X[i] = [float(row[c]) for c in cols]
            y[i] = float(row[target])
        except (TypeError, ValueError):
            raise PredictorError(f"{path}:{i + 2}: a feature or the target is not a number") from None
    if not len(rows):
        raise PredictorError(f"{path} holds no rows")
    return X, y, cols


def read_feature_rows(path: str | Path, columns: Sequence[str]) -> np.ndarray:
    """The (rows, len(columns)) matrix of a feature table's ``columns`` (``lat predict --table``)."""
    header, rows = _open_csv(path)
    cols = list(columns)
    missing = [c for c in cols if c not in header]
    if missing:
        raise PredictorError(f"{path} lacks the predictor's feature columns {missing}")
    try:
        X = np.array([[float(r[c]) for c in cols] for r in rows], dtype=float)
    except (TypeError, ValueError):
        raise PredictorError(f"{path}: a feature value is not a number") from None
    return X.reshape(len(rows), len(cols))


def _numeric_column(rows: list[dict[str, str]], col: str) -> bool:
    try:
        for r in rows:
            float(r[col])
        return True
    except (TypeError, ValueError):
        return False


def fit_table(path: str | Path, target: str, features: Sequence[str] | None, model: str, *,
              seed: int = 0, command: str = "") -> Any:
    """``lat fit --table FILE.csv --target COL``: a predictor over a user's own feature table."""
    if model not in ("xgb", "rf", "ridge"):
        raise PredictorError(f"--model {model} needs arch features; a feature table takes xgb, rf or ridge")
    X, y, cols = read_feature_table(path, target, features)
    pred = TablePredictor(model, feature_names=cols, target=target, random_state=seed).fit(X, y)
    pred.meta_["command"] = command
    pred.meta_["measurements"] = {"path": str(path), "n": int(len(y))}
    return pred


def evaluate(pred: Any, archs: Sequence[Any], y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """(metrics, predictions) of ``pred`` on measured archs."""
    p = pred.predict(list(archs))
    return regression_metrics(y, p, unit_of(getattr(pred, "target", LATENCY))), p
