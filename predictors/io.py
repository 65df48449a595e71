"""Predictor files: JSON, strictly validated, never executed (STYLE 7: no pickle, no eval).

One file holds one fitted predictor::

    {"format": "latkit-predictor", "version": 1, "kind": "xgb",
     "params": {...constructor arguments...},
     "table": null | {"meta": {...}, "entries": [[key, kind, median_ms, p10_ms, p90_ms, mean_ms,
                                                 std_ms, cv, runs], ...]},
     "state": {...learned state: numbers, lists, xgboost's own JSON model text...},
     "meta": {"space", "target", "device", "env", "n_train", "metrics", "versions", "created", ...}}

The lookup table a predictor uses is embedded, so a predictor file is self-contained. A few-shot
predictor's ``params.sources`` is a list of such documents (its source predictors), read by the
same rules. Loading checks every field: an unknown format, kind, version, parameter or state field
is a ``PredictorError`` naming it; xgboost boosters are loaded from their JSON text through
xgboost's own loader.

This module is the one loader: ``KINDS`` maps a file's ``kind`` to its class, and imports the
classes; they validate their own state with ``checks.py`` and never import this module.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

from latkit.errors import PredictorError
from latkit.fileio import write_text
from latkit.predictors.checks import expect_keys, expect_number
from latkit.predictors.mlp import MLPPredictor
from latkit.predictors.models import LutPredictor, RidgePredictor, XGBPredictor
from latkit.predictors.table_model import TablePredictor
from latkit.predictors.transfer import FewShotPredictor
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.supernet.space import get_space

FORMAT = "latkit-predictor"
VERSION = 1
TOP_FIELDS = {"format", "version", "kind", "params", "table", "state", "meta"}
META_REQUIRED = ("space", "target", "n_train", "versions", "created")
MAX_BYTES = 256 * 1024 * 1024
#: the predictor classes a file may name (its "kind"); this module is their one loader
KINDS: tuple[type, ...] = (LutPredictor, RidgePredictor, XGBPredictor, MLPPredictor, FewShotPredictor,
                           TablePredictor)


def _kinds() -> dict[str, type]:
    """Every predictor class a file may name, by its ``kind``."""
    return {c.kind: c for c in KINDS}


# ------------------------------------------------------------------------------------------------
# Lookup tables inside a predictor file
# ------------------------------------------------------------------------------------------------


def table_to_json(table: Any) -> dict[str, Any] | None:
    if table is None:
        return None
    meta = {k: v for k, v in (table.meta or {}).items() if k != "dir"}
    rows = [[e.key, e.kind, e.median_ms, e.p10_ms, e.p90_ms, e.mean_ms, e.std_ms, e.cv, e.runs]
            for e in sorted(table, key=lambda e: e.key)]
    return {"meta": meta, "entries": rows}


def table_from_json(doc: Any, where: str) -> Any:
    if doc is None:
        return None
    expect_keys(doc, {"meta", "entries"}, where)
    if not isinstance(doc["meta"], dict) or not isinstance(doc["entries"], list):
        raise PredictorError(f"{where}: meta must be an object and entries a list")
    entries = []
    for i, row in enumerate(doc["entries"]):
        if (not isinstance(row, list) or len(row) != 9 or not isinstance(row[0], str)
                or not isinstance(row[1], str)):
            raise PredictorError(f"{where}.entries[{i}] must be [key, kind, 7 numbers]")
        nums = [expect_number(v, f"{where}.entries[{i}]") for v in row[2:]]
        if nums[0] <= 0:
            raise PredictorError(f"{where}.entries[{i}]: median_ms must be positive")
        entries.append(LutEntry(row[0], row[1], *nums[:6], int(nums[6])))
    return LookupTable.from_entries(entries, doc["meta"])


# ------------------------------------------------------------------------------------------------
# Documents
# ------------------------------------------------------------------------------------------------


def _json_value(v: Any, where: str) -> Any:
    """Parameters must be plain JSON: numbers, text, booleans, null, lists of those."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return expect_number(v, where)
    if isinstance(v, (list, tuple)):
        return [_json_value(x, where) for x in v]
    if hasattr(v, "name") and hasattr(v, "conf"):  # a SearchSpace: store its name
        return v.name
    raise PredictorError(f"{where}: parameter of type {type(v).__name__} cannot be saved")


def to_document(pred: Any) -> dict[str, Any]:
    kind = getattr(pred, "kind", None)
    if kind not in _kinds():
        raise PredictorError(f"cannot save a {type(pred).__name__}: not a latkit predictor")
    if not hasattr(pred, "n_train_"):
        raise PredictorError(f"cannot save an unfitted {type(pred).__name__}; fit it first")
    params = pred.get_params(deep=False)
    table = params.pop("table", None)
    out_params: dict[str, Any] = {}
    for name, value in params.items():
        if name == "sources":
            out_params[name] = [to_document(s) for s in value]
        else:
            out_params[name] = _json_value(value, f"params.{name}")
    return {"format": FORMAT, "version": VERSION, "kind": kind, "params": out_params,
            "table": table_to_json(table), "state": pred.get_state(), "meta": _clean_meta(pred.meta_)}


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata as strict JSON (NaN/inf become null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item"):  # numpy scalars
            return clean(v.item())
        return v
    return clean(meta)


def from_document(doc: Any, where: str = "predictor") -> Any:
    """A fitted predictor from a parsed document; every field is checked."""
    if not isinstance(doc, dict):
        raise PredictorError(f"{where} must be a JSON object, found {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise PredictorError(f"{where} is not a latkit predictor (format {doc.get('format')!r}, "
                             f"expected {FORMAT!r}); write one with lat fit")
    expect_keys(doc, TOP_FIELDS, where)
    if not isinstance(doc["version"], int) or isinstance(doc["version"], bool) or doc["version"] < 1:
        raise PredictorError(f"{where}: version must be a positive integer, found {doc['version']!r}")
    if doc["version"] > VERSION:
        raise PredictorError(f"{where} has format version {doc['version']}, newer than this latkit "
                             f"reads ({VERSION}); upgrade latkit")
    kinds = _kinds()
    kind = doc["kind"]
    if kind not in kinds:
        raise PredictorError(f"{where}: unknown predictor kind {kind!r}; known: {', '.join(kinds)}")
    cls = kinds[kind]
    params = doc["params"]
    if not isinstance(params, dict):
        raise PredictorError(f"{where}.params must be an object")
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise PredictorError(f"{where}.params has unknown parameters {unknown} for a {kind} "
                             f"predictor (allowed: {sorted(allowed)})")
    kwargs = {}
    for name, value in params.items():
        if name == "sources":
            if not isinstance(value, list):
                raise PredictorError(f"{where}.params.sources must be a list of predictors")
            kwargs[name] = [from_document(s, f"{where}.sources[{i}]") for i, s in enumerate(value)]
        else:
            kwargs[name] = _check_param(value, f"{where}.params.{name}")
    if "table" in allowed:
        kwargs["table"] = table_from_json(doc["table"], f"{where}.table")
    elif doc["table"] is not None:
        raise PredictorError(f"{where}: a {kind} predictor carries no table, found one")
    pred = cls(**kwargs)
    pred.set_state(doc["state"], f"{where}.state")
    meta = doc["meta"]
    if not isinstance(meta, dict) or any(k not in meta for k in META_REQUIRED):
        raise PredictorError(f"{where}.meta must be an object with at least {list(META_REQUIRED)}")
    if kind != "table" and meta["space"] != params.get("space"):
        raise PredictorError(f"{where}: meta.space {meta['space']!r} differs from params.space "
                             f"{params.get('space')!r}")
    pred.meta_ = meta
    if kind != "table":
        get_space(params.get("space", ""))  # an unknown space is a SpaceError naming the known ones
    return pred


def _check_param(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list) and all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v):
        return v
    raise PredictorError(f"{where} must be a number, text, boolean, null or a flat list")


def save_predictor(pred: Any, path: str | Path) -> Path:
    """Write ``pred`` as JSON to ``path`` (atomically)."""
    p = Path(path)
    doc = to_document(pred)
    text = json.dumps(doc, indent=1, allow_nan=False)
    try:
        return write_text(p, text)  # an OutputError (a FIFO, a device node...) says why itself
    except OSError as exc:
        raise PredictorError(f"cannot write predictor file {p}: {exc.strerror or exc}") from None


def load_predictor(path: str | Path) -> Any:
    """Read a predictor file written by ``save_predictor``; ``PredictorError`` (one line) otherwise."""
    p = Path(path)
    if not p.is_file():
        raise PredictorError(f"predictor file {p} does not exist; write one with lat fit ... -o {p}")
    if p.stat().st_size > MAX_BYTES:
        raise PredictorError(f"{p} is {p.stat().st_size} bytes, larger than any predictor file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise PredictorError(f"{p} is not a text file; a predictor file is JSON written by lat fit") from None
    except json.JSONDecodeError as exc:
        raise PredictorError(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno}); a predictor "
                             "file is JSON written by lat fit") from None
    except ValueError as exc:
        raise PredictorError(f"{p}: {exc}") from None
    return from_document(doc, str(p))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name} in a predictor file")
