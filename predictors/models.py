"""The predictors over archs: lookup table + calibration, ridge, and xgboost (boosted trees or forest).

All follow the scikit-learn estimator contract (STYLE 7): ``__init__`` only stores its arguments,
``fit(X, y)`` returns ``self``, learned state ends in ``_``, randomness comes from ``random_state``,
``get_params``/``set_params``/``clone`` work. ``X`` is a list of archs of ``space`` (``ArchConfig``,
canonical keys or once-for-all dicts); ``y`` is latency in ms (``target="latency_ms"``) or any other
per-arch number such as top-1 accuracy (``target="top1"``).

How latency is modelled (chosen on the CPU benchmark, see the report in ``benchmarks/``):

- ``LutPredictor``: ``scale * sum(table entries) + offset``, both fitted by least *relative* squares
  on the end-to-end measurements (the per-network overhead a table misses: graph-level fusion, memory
  traffic between layers, session overhead).
- ``RidgePredictor``: latency in ms as a linear function of additive per-layer costs: per block slot,
  kernel/expand one-hots times (r/224)^2, MACs per stage and, with a table, the table latency per
  stage; least relative squares, alpha by leave-one-out. It is a learned lookup table.
- ``XGBPredictor``: trees on the log of the ratio between latency and a baseline (``baseline``:
  the calibrated table sum when a table is given, else the ridge model above; ``none`` fits log
  latency directly). Trees cannot extrapolate and 100 samples give coarse leaves, so they only
  correct the baseline's relative error. ``mode="rf"`` grows a random forest instead.

Other targets (``top1``) are fitted as they are, without logs or baselines.

Measured (benchmarks/predictor_fidelity.py, cpu, 100 training subnets): with a table, trees on the
log-ratio to the calibrated table sum beat trees on log latency (ofa-mbv3 MAPE 3.2-3.4% vs 4.4%),
and the calibrated table alone is within 0.4 points of them; without a table, the ridge baseline
and the log target are equal within noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from latkit.errors import PredictorError
from latkit.predictors import defaults
from latkit.predictors.checks import expect_keys, expect_names, expect_number
from latkit.predictors.core import (
    PredictorNotFitted,
    _one_blas_thread,
    booster_from_json,
    booster_to_json,
    check_ridge_state,
    fit_ridge,
    predict_ridge,
    xgb_predict,
    xgb_train,
)
from latkit.predictors.features import ArchFeaturizer, as_archs, log_safe
from latkit.predictors.metrics import regression_metrics
from latkit.predictors.ranges import fit_range
from latkit.provenance import record
from latkit.supernet.space import get_space

LATENCY = "latency_ms"


def unit_of(target: str) -> str:
    """The unit of a target's RMSE: ms for latency, percent for top1, else the target's name."""
    return {"latency_ms": "ms", "top1": "percent"}.get(target, target)


def check_target(y: Any, n: int, target: str) -> np.ndarray:
    arr = np.asarray(y, dtype=float).reshape(-1)
    if arr.shape[0] != n:
        raise PredictorError(f"got {n} archs but {arr.shape[0]} target values")
    if n == 0:
        raise PredictorError("cannot fit on zero samples; give at least one measured arch")
    if not np.all(np.isfinite(arr)):
        raise PredictorError(f"target {target} has non-finite values; drop those rows")
    if target == LATENCY and arr.min() <= 0:
        raise PredictorError(f"latencies must be positive, found {arr.min()!r} ms (a failed run?)")
    return arr


def check_predictions(values: Any, archs: Sequence[Any], target: str, kind: str) -> np.ndarray:
    """``values`` if finite (and positive for latency); else a PredictorError naming an arch."""
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr) | ((arr <= 0) if target == LATENCY else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "positive finite latencies" if target == LATENCY else f"finite {target} values"
        raise PredictorError(f"the {kind} predictor gives {arr[i]!r} for {archs[i]} ({int(bad.sum())} "
                             f"of {len(arr)} archs); a predictor must give {what}: refit it "
                             "(lat fit) on measurements that cover these archs")
    return arr


class ArchPredictor(RegressorMixin, BaseEstimator):
    """Base class: turns archs into features, checks fitting, predicts in chunks."""

    kind: ClassVar[str] = ""
    #: feature groups the model reads (``features.GROUPS``)
    feature_groups: ClassVar[tuple[str, ...]] = ("struct", "cost", "lut")

    # ---- features ---------------------------------------------------------------------------
    def _featurizer(self) -> ArchFeaturizer:
        table = getattr(self, "table", None)
        key = (str(getattr(self.space, "name", self.space)), id(table))
        cached = self.__dict__.get("_feat")
        if cached is None or cached[0] != key:
            cached = (key, ArchFeaturizer(get_space(self.space), table))
            self.__dict__["_feat"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:  # deepcopy/clone never carry the featurizer cache
        state = dict(self.__dict__)
        state.pop("_feat", None)
        return state

    def _features(self, archs: Sequence[Any]) -> np.ndarray:
        return self._featurizer().transform(archs)

    def _columns(self, names: Sequence[str]) -> list[int]:
        index = {n: i for i, n in enumerate(self._featurizer().names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise PredictorError(
                f"{self.kind} predictor uses features {missing[:3]} that its space/table do not "
                f"give; was it saved with a lookup table that is now missing?")
        return [index[n] for n in names]

    def _group_names(self, groups: Sequence[str]) -> list[str]:
        f = self._featurizer()
        return [f.names[i] for i in f.columns(groups)]

    # ---- estimator API ----------------------------------------------------------------------
    def fit(self, X: Sequence[Any], y: Any) -> ArchPredictor:
        space = get_space(self.space)
        archs = as_archs(space, X)
        yv = check_target(y, len(archs), self.target)
        with _one_blas_thread():
            self._fit(archs, yv)
        self.n_train_ = len(archs)
        self.meta_ = base_meta(self, yv, self._predict(archs))
        self.meta_["fit_range"] = fit_range(space, archs)
        return self

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        self._check_fitted()
        archs = as_archs(get_space(self.space), X)
        if len(archs) <= defaults.PREDICT_CHUNK:
            return check_predictions(self._predict(archs), archs, self.target, self.kind)
        step = defaults.PREDICT_CHUNK
        return check_predictions(
            np.concatenate([self._predict(archs[i:i + step]) for i in range(0, len(archs), step)]),
            archs, self.target, self.kind)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_train_"):
            raise PredictorNotFitted(
                f"this {type(self).__name__} is not fitted yet; call fit(archs, y) or load a "
                "fitted predictor with latkit.predictors.io.load_predictor")

    # ---- subclass hooks ---------------------------------------------------------------------
    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """The learned state as JSON-ready values (written by ``io.save_predictor``)."""
        raise NotImplementedError

    def set_state(self, state: dict[str, Any], where: str) -> None:  # pragma: no cover
        """Restore ``get_state``'s output, validating every field (``io.load_predictor``)."""
        raise NotImplementedError


def base_meta(pred: ArchPredictor, y: np.ndarray, fitted: np.ndarray) -> dict[str, Any]:
    """The provenance of a fit; callers (the CLI) add device, env, command and CV metrics."""
    table = getattr(pred, "table", None)
    table_meta = getattr(table, "meta", None) or {}
    return {
        "space": str(getattr(pred.space, "name", pred.space)),
        "target": pred.target,
        "device": table_meta.get("device"),
        "env": {},
        "n_train": int(len(y)),
        "metrics": {"train": regression_metrics(y, fitted, unit_of(pred.target))},
        "table": ({k: table_meta.get(k) for k in ("device", "space", "resolutions", "entries",
                                                   "created", "command")} if table else None),
        **record(),  # command (set by the caller), cwd, created, host, versions
    }


# ------------------------------------------------------------------------------------------------
# Lookup table + calibration
# ------------------------------------------------------------------------------------------------


def fit_affine_relative(x: np.ndarray, y: np.ndarray, mode: str) -> tuple[float, float]:
    """scale, offset minimising sum((scale*x + offset - y)/y)^2; ``mode`` affine|scale|none."""
    if mode == "none":
        return 1.0, 0.0
    w = 1.0 / y
    if mode == "scale" or len(y) < 3 or np.ptp(x) <= 1e-12 * max(abs(x).max(), 1.0):
        return float(np.sum(w * w * x * y) / np.sum(w * w * x * x)), 0.0
    A = np.stack([x * w, w], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
    if not scale > 0:  # a negative slope is noise fitting; fall back to a pure scale
        return float(np.sum(w * w * x * y) / np.sum(w * w * x * x)), 0.0
    return float(scale), float(offset)


class LutPredictor(ArchPredictor):
    """Sum of per-layer table entries, calibrated: ``scale_ * sum + offset_ms_``."""

    kind = "lut"

    def __init__(self, space: Any = "ofa-mbv3-w1.0", table: Any = None, calibration: str = "affine",
                 target: str = LATENCY) -> None:
        self.space = space
        self.table = table
        self.calibration = calibration
        self.target = target

    def _check_params(self) -> None:
        if self.table is None:
            raise PredictorError("the lookup-table predictor needs a table: pass --lut DIR "
                                 "(build one with lat-profile)")
        if self.calibration not in ("affine", "scale", "none"):
            raise PredictorError(f"calibration must be affine, scale or none, got {self.calibration!r}")
        if self.target != LATENCY:
            raise PredictorError(f"the lookup-table predictor predicts {LATENCY}, not {self.target}")

    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:
        self._check_params()
        x = self._featurizer().lut_sum_ms(archs)
        self.scale_, self.offset_ms_ = fit_affine_relative(x, y, self.calibration)

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self.table is None:
            raise PredictorError("this lookup-table predictor has no table")
        return self.scale_ * self._featurizer().lut_sum_ms(archs) + self.offset_ms_

    def get_state(self) -> dict[str, Any]:
        return {"scale": self.scale_, "offset_ms": self.offset_ms_, "n_train": self.n_train_}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        expect_keys(state, {"scale", "offset_ms", "n_train"}, where)
        self.scale_ = expect_number(state["scale"], f"{where}.scale")
        if not self.scale_ > 0:
            raise PredictorError(f"{where}.scale must be positive (a latency grows with the table's "
                                 f"sum), found {self.scale_!r}; refit the predictor with lat fit")
        self.offset_ms_ = expect_number(state["offset_ms"], f"{where}.offset_ms")
        self.n_train_ = int(expect_number(state["n_train"], f"{where}.n_train"))


# ------------------------------------------------------------------------------------------------
# Ridge
# ------------------------------------------------------------------------------------------------


def _ridge_setup(pred: ArchPredictor) -> tuple[list[str], bool]:
    """(column names, relative) of the ridge model: additive ms costs for latency."""
    if pred.target == LATENCY:
        return pred._group_names(("scaled", "cost", "lut")), True
    return pred._group_names(("struct", "cost", "lut")), False


class RidgePredictor(ArchPredictor):
    """Ridge regression on additive per-layer costs (latency) or structure features (others)."""

    kind = "ridge"

    def __init__(self, space: Any = "ofa-mbv3-w1.0", table: Any = None, target: str = LATENCY,
                 alphas: Sequence[float] | None = None, random_state: int = 0) -> None:
        self.space = space
        self.table = table
        self.target = target
        self.alphas = alphas
        self.random_state = random_state

    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:
        names, relative = _ridge_setup(self)
        F = self._features(archs)[:, self._columns(names)]
        alphas = tuple(self.alphas) if self.alphas is not None else defaults.RIDGE_ALPHAS
        self.ridge_ = fit_ridge(F, y, alphas, weights=1.0 / y ** 2 if relative else None)
        self.columns_ = names

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:
        F = self._features(archs)[:, self._columns(self.columns_)]
        out = predict_ridge(self.ridge_, F)
        return np.maximum(out, 1e-6) if self.target == LATENCY else out

    def get_state(self) -> dict[str, Any]:
        return {"ridge": self.ridge_, "columns": list(self.columns_), "n_train": self.n_train_}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        expect_keys(state, {"ridge", "columns", "n_train"}, where)
        self.ridge_ = check_ridge_state(state["ridge"], f"{where}.ridge")
        self.columns_ = expect_names(state["columns"], len(self.ridge_["coef"]), f"{where}.columns")
        self.n_train_ = int(expect_number(state["n_train"], f"{where}.n_train"))


# ------------------------------------------------------------------------------------------------
# xgboost: boosted trees / random forest over a baseline
# ------------------------------------------------------------------------------------------------


class XGBPredictor(ArchPredictor):
    """xgboost trees (``mode`` ``gbt`` or ``rf``); latency as log-ratio to ``baseline``."""

    kind = "xgb"

    def __init__(self, space: Any = "ofa-mbv3-w1.0", table: Any = None, target: str = LATENCY,
                 mode: str = "gbt", baseline: str = "auto", n_estimators: int | None = None,
                 max_depth: int | None = None, learning_rate: float | None = None,
                 random_state: int = 0) -> None:
        self.space = space
        self.table = table
        self.target = target
        self.mode = mode
        self.baseline = baseline
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _params(self) -> dict[str, Any]:
        if self.mode not in ("gbt", "rf"):
            raise PredictorError(f"mode must be gbt (boosted trees) or rf (random forest), got {self.mode!r}")
        p = dict(defaults.XGB_PARAMS if self.mode == "gbt" else defaults.RF_PARAMS)
        for name in ("n_estimators", "max_depth", "learning_rate"):
            if getattr(self, name) is not None:
                p[name] = getattr(self, name)
        return p

    def _baseline_kind(self) -> str:
        b = self.baseline
        if b not in ("auto", "lut", "ridge", "none"):
            raise PredictorError(f"baseline must be auto, lut, ridge or none, got {b!r}")
        if self.target != LATENCY:
            return "none"
        if b == "auto":
            return "lut" if self.table is not None else "ridge"
        if b == "lut" and self.table is None:
            raise PredictorError("baseline 'lut' needs a lookup table (--lut DIR)")
        return b

    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:
        params = self._params()
        F_all = self._features(archs)
        kind = self._baseline_kind()
        state: dict[str, Any] = {"kind": kind}
        if kind == "lut":
            x = F_all[:, self._columns(["lut_ms"])[0]]
            state["scale"], state["offset_ms"] = fit_affine_relative(x, y, "affine")
        elif kind == "ridge":
            names, _ = _ridge_setup(self)
            state["columns"] = names
            state["ridge"] = fit_ridge(F_all[:, self._columns(names)], y, defaults.RIDGE_ALPHAS,
                                       weights=1.0 / y ** 2)
        self.baseline_ = state
        names = self._group_names(self.feature_groups)
        self.columns_ = names
        margin = self._log_baseline(F_all)
        target = log_safe(y) if self.target == LATENCY else y
        self.booster_ = xgb_train(F_all[:, self._columns(names)], target - margin, mode=self.mode,
                                  params=params, seed=self.random_state)

    def _log_baseline(self, F_all: np.ndarray) -> np.ndarray:
        b = self.baseline_
        if b["kind"] == "none":
            return np.zeros(F_all.shape[0])
        if b["kind"] == "lut":
            x = F_all[:, self._columns(["lut_ms"])[0]]
            return np.log(np.maximum(b["scale"] * x + b["offset_ms"], 1e-6))
        F = F_all[:, self._columns(b["columns"])]
        return np.log(np.maximum(predict_ridge(b["ridge"], F), 1e-6))

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:
        F_all = self._features(archs)
        out = xgb_predict(self.booster_, F_all[:, self._columns(self.columns_)])
        out = out + self._log_baseline(F_all)
        return np.exp(out) if self.target == LATENCY else out

    def get_state(self) -> dict[str, Any]:
        return {"booster": booster_to_json(self.booster_), "baseline": self.baseline_,
                "columns": list(self.columns_), "n_train": self.n_train_}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        expect_keys(state, {"booster", "baseline", "columns", "n_train"}, where)
        self.booster_ = booster_from_json(state["booster"], f"{where}.booster")
        self.columns_ = expect_names(state["columns"], self.booster_.num_features(), f"{where}.columns")
        b = state["baseline"]
        kinds = {"none": {"kind"}, "lut": {"kind", "scale", "offset_ms"},
                 "ridge": {"kind", "columns", "ridge"}}
        if not isinstance(b, dict) or b.get("kind") not in kinds:
            raise PredictorError(f"{where}.baseline must be an object with kind none, lut or ridge")
        expect_keys(b, kinds[b["kind"]], f"{where}.baseline")
        if b["kind"] == "lut":
            expect_number(b["scale"], f"{where}.baseline.scale")
            expect_number(b["offset_ms"], f"{where}.baseline.offset_ms")
        if b["kind"] == "ridge":
            check_ridge_state(b["ridge"], f"{where}.baseline.ridge")
            expect_names(b["columns"], len(b["ridge"]["coef"]), f"{where}.baseline.columns")
        self.baseline_ = b
        self.n_train_ = int(expect_number(state["n_train"], f"{where}.n_train"))


def make_predictor(model: str, space: Any, table: Any = None, target: str = LATENCY,
                   seed: int = 0) -> ArchPredictor:
    """The predictor ``lat fit --model`` names, with the defaults of ``defaults.py``."""
    if model == "lut":
        return LutPredictor(space, table, target=target)
    if model == "ridge":
        return RidgePredictor(space, table, target=target, random_state=seed)
    if model in ("xgb", "rf"):
        return XGBPredictor(space, table, target=target, mode="gbt" if model == "xgb" else "rf",
                            random_state=seed)
    if model == "mlp":
        from latkit.predictors.mlp import MLPPredictor  # noqa: PLC0415 -- mlp.py subclasses this module's ArchPredictor

        if table is not None:
            raise PredictorError("the mlp predictor reads the arch encoding only; it takes no --lut")
        return MLPPredictor(space, target=target, random_state=seed)
    raise PredictorError(f"unknown model {model!r}; choose one of {', '.join(defaults.MODELS)}")
