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

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latkit.errors import ArchError, PredictorError
from latkit.predictors import defaults
from latkit.predictors.io import load_predictor
from latkit.predictors.metrics import noise_floor, predictions_figure, regression_metrics
from latkit.predictors.models import LATENCY, LutPredictor, make_predictor, unit_of
from latkit.predictors.ranges import merge_ranges
from latkit.predictors.table_model import TablePredictor
from latkit.predictors.transfer import FewShotPredictor
from latkit.profiler.lut import LookupTable
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.space import ArchConfig, SearchSpace, get_space
from latkit.tables import LINE, numeric_columns, read_table


@dataclass
class Measurements:
    """End-to-end measurements read from a CSV: archs, values, and what the file says about them."""

    archs: list[ArchConfig]
    values: np.ndarray
    devices: list[str] = field(default_factory=list)
    spaces: list[str] = field(default_factory=list)
    path: str = ""
    space: str = ""
    #: per arch, the medians of its passes (the CSV's ``pass_ms``), or None where the file has none
    passes: list[list[float]] | None = None
    #: the provenance beside the CSV (``FILE.csv.meta.json``), or {} where there is none
    meta: dict[str, Any] = field(default_factory=dict)
    #: the line (a DataFrame's: the position) of each kept row, in ``archs`` order
    lines: list[int] | None = None
    #: the precisions the rows were measured in (the ``precision`` column; fp32 where it is absent)
    precisions: list[str] = field(default_factory=lambda: ["fp32"])

    @property
    def device(self) -> str | None:
        return self.devices[0] if len(self.devices) == 1 else None


#: the largest latency a measurement may report (an hour per inference): above it is a unit or
#: parse error (1e308 ms once gave predictions of 4.9e58 ms)
MAX_LATENCY_MS = 3.6e6


def _is_frame(obj: Any) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "to_dict") and not isinstance(obj, (str, Path))


def _open_csv(source: Any, what: str = "measurement file",
              hint: str = "write one with lat measure") -> tuple[list[str], list[dict[str, Any]]]:
    """(header, rows) of a table file (``latkit.tables.read_table``) or of a pandas DataFrame.

    Each row carries its line number in ``LINE`` (a DataFrame's: its position, from 0).
    """
    if _is_frame(source):
        frame = source.reset_index(drop=True)
        rows = frame.to_dict("records")
        for i, r in enumerate(rows):
            r[LINE] = i
        return [str(c) for c in frame.columns], rows
    frame = read_table(source, what=what, hint=hint, error=PredictorError)
    return [c for c in frame.columns if c != LINE], frame.to_dict("records")


def _where(source: Any) -> str:
    return "DataFrame row" if _is_frame(source) else str(source)


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


def read_measurements(path: str | Path | Any, space: SearchSpace | str | None = None,
                      target: str = LATENCY) -> Measurements:
    """Rows of ``arch,<target>[,space,device,...]``; the arch is a key or a once-for-all JSON dict.

    ``path`` is a CSV or Parquet file, or a pandas DataFrame with the same columns.
    ``space`` None takes it from the file's ``space`` column (which must then name one space); a
    row whose ``space`` names another space is an error (it is never dropped without a word). An
    arch measured twice on one device must have the same value both times (an exact repeat is
    read once). Extra columns are ignored. A bad row raises an error naming the file and line.
    """
    if target == "top1" and not _is_frame(path):  # an accuracy table: its one strict reader
        return _read_top1(path, space)
    header, rows = _open_csv(path)
    where = _where(path)
    for col in ("arch", target):
        if col not in header:
            raise PredictorError(f"{where} has no {col!r} column (header: {','.join(header)}); "
                                 f"expected arch,{target},... as written by lat measure")
    spaces = sorted({str(r.get("space") or "") for r in rows} - {""})
    if space is None:
        if len(spaces) != 1:
            raise PredictorError(f"{where} names spaces {spaces or 'none'}; pass --space")
        space = spaces[0]
    sp = get_space(space) if isinstance(space, str) else space
    archs, vals, lines = [], [], []
    passes: list[list[float]] | None = [] if "pass_ms" in header else None
    seen: dict[tuple[str, str], tuple[float, int]] = {}
    for row in rows:
        i = row[LINE]
        if row.get("space") and row["space"] != sp.name:
            raise PredictorError(f"{where}:{i}: a measurement of space {row['space']}, not "
                                 f"{sp.name}; pass --space {row['space']} or keep one space per file")
        try:
            arch = sp.parse(row["arch"])
        except ArchError as exc:
            raise PredictorError(f"{where}:{i}: {exc}") from None
        except (TypeError, ValueError) as exc:  # a short row: arch is None
            raise PredictorError(f"{where}:{i}: arch {row.get('arch')!r} is not an arch ({exc})") from None
        v = _check_value(where, i, target, row.get(target))
        key = (str(arch), str(row.get("device") or ""), _row_precision(row))
        if key in seen:
            if seen[key][0] != v:
                raise PredictorError(
                    f"{where}:{i}: {key[0]} is measured twice" + (f" on {key[1]}" if key[1] else "")
                    + f" with different {target} ({seen[key][0]} on line {seen[key][1]}, {v}); keep "
                    "one row per arch and device")
            continue
        seen[key] = (v, i)
        archs.append(arch)
        vals.append(v)
        lines.append(i)
        if passes is not None:
            cell = row.get("pass_ms")
            passes.append(_pass_values("" if cell is None or cell != cell else str(cell), where, i))
    if not archs:
        raise PredictorError(f"{where} holds no measurements" + (f" of {sp.name}" if spaces else ""))
    devices = sorted({str(r.get("device") or "") for r in rows} - {""})
    precisions = sorted({_row_precision(r) for r in rows})
    return Measurements(archs, np.asarray(vals), devices, spaces,
                        "DataFrame" if _is_frame(path) else str(path), sp.name, passes,
                        {} if _is_frame(path) else _read_meta(path), lines, precisions)


def _row_precision(row: dict[str, Any]) -> str:
    v = row.get("precision")
    return "fp32" if v is None or v != v or str(v).strip() == "" else str(v).strip()


def one_precision(meas: Measurements, precision: str | None = None, table: Any = None,
                  what: str = "a predictor") -> str:
    """The one precision of ``meas`` (and ``table``): ``PredictorError`` for rows of several, or
    of another than ``precision`` (``--precision``), or a table of another."""
    have = meas.precisions
    if len(have) > 1:
        raise PredictorError(f"{meas.path} mixes precisions ({', '.join(have)}); {what} is fitted "
                             "on one: measure each into its own file (lat measure --precision P)")
    if precision is not None and have[0] != precision:
        raise PredictorError(f"{meas.path} holds {have[0]} measurements, not {precision} "
                             f"(--precision {precision}); give {precision} measurements or pass "
                             f"--precision {have[0]}")
    if table is not None and table.precision != have[0]:
        raise PredictorError(f"the lookup table holds {table.precision} layers, the measurements "
                             f"are {have[0]}: profile the table with lat profile --precision "
                             f"{have[0]}")
    return have[0]


def check_predictor_precision(pred: Any, precision: str | None, where: str = "the predictor") -> str:
    """The predictor's precision (fp32 for one fitted before precisions existed); a
    ``PredictorError`` if ``precision`` is given and differs."""
    have = str((getattr(pred, "meta_", None) or {}).get("precision") or "fp32")
    if precision is not None and have != precision:
        raise PredictorError(f"{where} predicts {have} latency, not {precision} (--precision "
                             f"{precision}); fit one on {precision} measurements (lat fit "
                             f"--precision {precision})")
    return have


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


def _pass_values(text: str, path: str | Path, line: int) -> list[float]:
    """The ``;``-separated pass medians of a CSV cell (empty: none)."""
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        try:
            v = float(part)
        except ValueError:
            raise PredictorError(f"{path}:{line}: pass_ms {text!r} is not a list of numbers") from None
        if not np.isfinite(v) or v <= 0:
            raise PredictorError(f"{path}:{line}: pass_ms must hold positive finite numbers, found {v}")
        out.append(v)
    return out


def _read_meta(path: str | Path) -> dict[str, Any]:
    """``FILE.csv.meta.json`` beside a measurement CSV ({} if absent or unreadable: it only informs)."""
    p = Path(path)
    meta = p.with_name(p.name + ".meta.json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measurements_frame(source: Any, space: SearchSpace | str | None = None,
                       target: str = LATENCY) -> Any:
    """``lat measure``'s CSV (or Parquet) as a pandas DataFrame, checked as ``lat fit`` checks it.

    The columns are the file's, with ``arch`` in canonical key form, the numeric columns as numbers,
    and ``resolution`` added where the file lacks it: one row per measurement ``read_measurements``
    keeps (an exact repeat once); a bad row is one ``PredictorError`` naming the file and line.
    """
    import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

    meas = read_measurements(source, space, target)
    header, rows = _open_csv(source)
    if meas.lines is not None:
        by_line = {r[LINE]: r for r in rows}
        rows = [by_line[i] for i in meas.lines]
    frame = pd.DataFrame(rows, columns=header)
    frame["arch"] = [str(a) for a in meas.archs]
    frame[target] = meas.values
    if "resolution" not in frame.columns:
        frame["resolution"] = [a.r for a in meas.archs]
    return numeric_columns(frame)


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


def fit_latency(space: str | None, measurements: str | Path | Any, model: str, *,
                lut: str | Path | LookupTable | None = None,
                train_n: int | None = None, seed: int = 0, command: str = "",
                precision: str | None = None) -> Any:
    """``lat fit --space``: fit on (a seeded subset of) the measurements; the rest is held out.

    ``measurements``: a CSV/Parquet path or a DataFrame (``arch``, ``latency_ms``); ``lut``: a table
    directory or a ``LookupTable``.
    """
    table = lut if isinstance(lut, LookupTable) else load_table(lut) if lut else None
    meas = read_measurements(measurements, space)
    precision = one_precision(meas, precision, table)
    train, held = split_train(len(meas.archs), train_n, seed)
    y = meas.values
    pred = fit_arch_regressor(meas.space, [meas.archs[i] for i in train], y[train], model=model,
                              target=LATENCY, seed=seed, table=table)
    if held:
        pred.meta_["metrics"]["holdout"] = regression_metrics(
            y[held], pred.predict([meas.archs[i] for i in held]))
    if table is not None:
        pred.meta_["calibration"] = lut_calibration(meas, table, train, held, seed)
    _provenance(pred, meas, command, table)
    pred.meta_["precision"] = precision
    return pred


def lut_calibration(meas: Measurements, table: Any, train: Sequence[int], held: Sequence[int],
                    seed: int = 0) -> dict[str, Any]:
    """How the lookup table meets the end-to-end measurements: ``e2e = scale * lut_sum + offset``.

    A table and end-to-end measurements are often taken hours apart, on a machine whose level
    moved meanwhile, and a table misses per-network costs (fusion, memory traffic, session
    overhead): the affine calibration absorbs both. It is fitted on the training rows (least
    relative squares, ``LutPredictor``), checked on the held-out rows (``--train-n``) or else by
    k-fold cross-validation over the training rows, and recorded with the reference-model levels
    of both campaigns (``profiler/passes.py``): ``reference_ratio`` is how much slower (> 1) the
    machine ran the reference model during the end-to-end campaign than during the table's.
    On this host's CPUs both are scaled by one device level (the pairing, ``devices/levels.py``):
    ``paired_levels`` records the level each was built with and whether it is the same book.
    """
    archs = [meas.archs[i] for i in train]
    y = meas.values
    lut = LutPredictor(meas.space, table).fit(archs, y[list(train)])
    if held:
        check = regression_metrics(y[list(held)], lut.predict([meas.archs[i] for i in held]))
        how = "held-out rows"
    else:
        check = cv_metrics(lambda: LutPredictor(meas.space, table), archs, y[list(train)],
                           defaults.CV_FOLDS, seed)
        how = f"{defaults.CV_FOLDS}-fold cross-validation"
    lut_ref = dict((table.meta or {}).get("reference") or {})
    e2e_refs = meas.meta.get("reference") or {}
    e2e_ref = dict(e2e_refs.get(meas.device or "", {}) if isinstance(e2e_refs, dict) else {})
    ratio = None
    if lut_ref.get("median_ms") and e2e_ref.get("median_ms") and lut_ref.get("key") == e2e_ref.get("key"):
        ratio = float(e2e_ref["median_ms"]) / float(lut_ref["median_ms"])
    return {"model": "latency_ms = scale * lut_sum_ms + offset_ms", "scale": lut.scale_,
            "offset_ms": lut.offset_ms_, "fitted_on": len(archs), "checked_on": how,
            "check": check, "table_created": (table.meta or {}).get("created"),
            "measurements_created": meas.meta.get("created"), "table_reference": lut_ref or None,
            "measurements_reference": e2e_ref or None, "reference_ratio": ratio,
            # both figures on one device level (devices/levels.py): the scale the pairing shares
            "paired_levels": {"table": (lut_ref.get("paired_level") or {}).get("level_ms"),
                              "measurements": (e2e_ref.get("paired_level") or {}).get("level_ms"),
                              "same_book": bool(lut_ref.get("paired_level")) and
                              (lut_ref.get("paired_level") or {}).get("file")
                              == (e2e_ref.get("paired_level") or {}).get("file")}}


def fit_fewshot(space: str | None, measurements: str | Path | Any, bases: Sequence[str | Path], *,
                method: str = "auto", seed: int = 0, command: str = "",
                precision: str | None = None) -> Any:
    """``lat fit --base A.json,B.json``: transfer other devices' predictors with k measurements."""
    sources = [load_predictor(b) for b in bases]
    space = space or sources[0].meta_.get("space")
    meas = read_measurements(measurements, space)
    precision = one_precision(meas, precision)
    for b, s in zip(bases, sources, strict=True):
        check_predictor_precision(s, precision, where=f"base {b}")
    pred = FewShotPredictor(meas.space, sources, method=method,
                            random_state=seed).fit(meas.archs, meas.values)
    pred.meta_["metrics"]["loo_rmse_log"] = dict(pred.loo_)
    pred.meta_["sources"] = [{"path": str(b), "device": s.meta_.get("device"), "kind": s.kind}
                             for b, s in zip(bases, sources, strict=True)]
    pred.meta_["chosen"] = pred.candidate_
    pred.meta_["fit_range"] = merge_ranges(pred.meta_.get("fit_range"),
                                           *(s.meta_.get("fit_range") for s in sources))
    _provenance(pred, meas, command, None)
    pred.meta_["precision"] = precision
    return pred


def _provenance(pred: Any, meas: Measurements, command: str, table: Any) -> None:
    pred.meta_["device"] = meas.device or pred.meta_.get("device")
    pred.meta_["measurements"] = {"path": meas.path, "n": len(meas.archs), "devices": meas.devices}
    pred.meta_["arch_keys"] = [str(a) for a in meas.archs] if len(meas.archs) <= 2000 else None
    if table is not None:
        pred.meta_["env"] = dict(table.meta.get("env") or {})
    pred.meta_["command"] = command
    if meas.passes is not None:  # the measurements' own noise: lat space derive spaces a family by it
        pred.meta_["noise_floor"] = noise_floor(meas.passes)


def load_table(path: str | Path) -> Any:
    return LookupTable.load(path)


def read_feature_table(path: str | Path, target: str, features: Sequence[str] | None
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric feature columns and the target column of a user's CSV."""
    header, rows = _open_csv(path, what="feature table", hint="")
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
            raise PredictorError(f"{_where(path)}:{row[LINE]}: a feature or the target is not a "
                                 "number") from None
    if not len(rows):
        raise PredictorError(f"{path} holds no rows")
    return X, y, cols


def read_feature_rows(path: str | Path, columns: Sequence[str]) -> np.ndarray:
    """The (rows, len(columns)) matrix of a feature table's ``columns`` (``lat predict --table``)."""
    header, rows = _open_csv(path, what="feature table", hint="")
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


@dataclass
class Evaluation:
    """A predictor scored on measurements: ``metrics`` (``regression_metrics``), ``frame`` (one row
    per arch: ``arch``, ``resolution``, ``measured``, ``predicted``, ``error_pct``), a title, and
    ``noise``: the measurements' own noise, pass against pass (``metrics.noise_floor``; None where
    the measurements hold no passes or the target is not a latency)."""

    metrics: dict[str, Any]
    frame: Any
    title: str = ""
    unit: str = "ms"
    noise: dict[str, Any] | None = None
    target: str = LATENCY

    def figure(self, title: str | None = None) -> Any:
        """Predicted against measured as a matplotlib Figure (what ``--plot`` writes)."""
        return predictions_figure(self.frame["measured"], self.frame["predicted"],
                                  self.title if title is None else title, unit=self.unit)


def evaluate_frame(pred: Any, measurements: str | Path | Any,
                   space: SearchSpace | str | None = None) -> Evaluation:
    """``lat fit evaluate``: score ``pred`` (a predictor or its JSON file) on measurements (a CSV or
    Parquet file, or a DataFrame with ``arch`` and the predictor's target column)."""
    import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

    if isinstance(pred, (str, Path)):
        pred = load_predictor(pred)
    if getattr(pred, "kind", "") == "table":
        raise PredictorError("lat fit evaluate scores arch predictors; for a feature-table "
                             "predictor use lat predict --table")
    target = pred.meta_.get("target", LATENCY)
    meas = read_measurements(measurements, space or pred.meta_["space"], target=target)
    if target == LATENCY:  # scoring an int8 predictor on fp32 rows measures nothing
        check_predictor_precision(pred, one_precision(meas, what="a latency predictor"))
    m, p = evaluate(pred, meas.archs, meas.values)
    frame = pd.DataFrame({"arch": [str(a) for a in meas.archs],
                          "resolution": [a.r for a in meas.archs],
                          "measured": meas.values, "predicted": np.asarray(p, dtype=float)})
    frame["error_pct"] = 100.0 * (frame["predicted"] - frame["measured"]) / frame["measured"]
    title = f"{pred.kind} on {meas.device or 'measurements'} ({pred.meta_['space']})"
    noise = noise_floor(meas.passes) if meas.passes is not None and target == LATENCY else None
    return Evaluation(m, frame, title, m.get("units", {}).get("rmse_ms", unit_of(target)), noise,
                      target)

