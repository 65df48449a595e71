"""A predictor over a user's own numeric feature table (``lat fit --table FILE.csv --target COL``).

For search spaces latkit does not know: each row is a network described by numeric columns the user
chose (MACs, depth, widths, ...), and the target is its latency (or any number). ``X`` is a plain
float matrix, so this is an ordinary scikit-learn regressor and passes scikit-learn's own
``check_estimator``. Models as for archs: ``xgb`` (boosted trees), ``rf`` (random forest) or ``ridge``.
With ``log_target="auto"`` a target that is positive everywhere is fitted in log space (relative
errors), anything else as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import validate_data

from latkit.errors import PredictorError
from latkit.predictors import defaults
from latkit.predictors.checks import expect_keys, expect_number
from latkit.predictors.core import (
    PredictorNotFitted,
    booster_from_json,
    booster_to_json,
    check_ridge_state,
    fit_ridge,
    predict_ridge,
    xgb_predict,
    xgb_train,
)
from latkit.predictors.metrics import regression_metrics
from latkit.provenance import record


class TablePredictor(RegressorMixin, BaseEstimator):
    """xgboost or ridge over numeric feature columns; ``feature_names`` only documents them."""

    kind = "table"

    def __init__(self, model: str = "xgb", feature_names: Sequence[str] | None = None,
                 target: str = "latency_ms", log_target: str = "auto", random_state: int = 0) -> None:
        self.model = model
        self.feature_names = feature_names
        self.target = target
        self.log_target = log_target
        self.random_state = random_state


    def fit(self, X: Any, y: Any) -> TablePredictor:
        if self.model not in ("xgb", "rf", "ridge"):
            raise PredictorError(f"model must be xgb, rf or ridge for a feature table, got {self.model!r}")
        if self.log_target not in ("auto", "yes", "no"):
            raise PredictorError(f"log_target must be auto, yes or no, got {self.log_target!r}")
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64, y_numeric=True)
        if self.feature_names is not None and len(self.feature_names) != X.shape[1]:
            raise PredictorError(f"{len(self.feature_names)} feature names for {X.shape[1]} columns")
        use_log = self.log_target == "yes" or (self.log_target == "auto" and float(np.min(y)) > 0)
        if use_log and float(np.min(y)) <= 0:
            raise PredictorError("log_target=yes needs a positive target everywhere")
        self.log_ = bool(use_log)
        t = np.log(y) if self.log_ else np.asarray(y, dtype=float)
        if self.model == "ridge":
            self.ridge_ = fit_ridge(X, t, defaults.RIDGE_ALPHAS)
        else:
            params = dict(defaults.XGB_PARAMS if self.model == "xgb" else defaults.RF_PARAMS)
            self.booster_ = xgb_train(X, t, mode="gbt" if self.model == "xgb" else "rf",
                                      params=params, seed=self.random_state)
        self.n_train_ = int(X.shape[0])
        fitted = self.predict(X)
        self.meta_ = {"space": None, "target": self.target, "device": None, "env": {},
                      "n_train": self.n_train_, **record(),
                      "metrics": ({"train": regression_metrics(y, fitted, "target")}
                                  if np.all(y != 0) else {})}
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "n_train_"):
            raise PredictorNotFitted(f"this {type(self).__name__} is not fitted yet; call fit(X, y)")
        if self.feature_names and hasattr(X, "columns") and hasattr(X, "iloc"):  # a DataFrame
            missing = [c for c in self.feature_names if c not in X.columns]
            if missing:
                raise PredictorError(f"the DataFrame lacks the predictor's feature columns {missing}")
            X = X[list(self.feature_names)].to_numpy(dtype=np.float64)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if self.model == "ridge":
            out = predict_ridge(self.ridge_, X)
        else:
            out = xgb_predict(self.booster_, X)
        return np.exp(out) if self.log_ else out

    # ---- persistence hooks (io.py) ----------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"log": self.log_, "n_features": int(self.n_features_in_),
                                 "n_train": self.n_train_}
        if self.model == "ridge":
            state["ridge"] = self.ridge_
        else:
            state["booster"] = booster_to_json(self.booster_)
        return state

    def set_state(self, state: dict[str, Any], where: str) -> None:
        model_key = "ridge" if self.model == "ridge" else "booster"
        expect_keys(state, {"log", "n_features", "n_train", model_key}, where)
        if not isinstance(state["log"], bool):
            raise PredictorError(f"{where}.log must be true or false")
        self.log_ = state["log"]
        self.n_features_in_ = int(expect_number(state["n_features"], f"{where}.n_features"))
        self.n_train_ = int(expect_number(state["n_train"], f"{where}.n_train"))
        if self.model == "ridge":
            self.ridge_ = check_ridge_state(state["ridge"], f"{where}.ridge")
            n = len(self.ridge_["coef"])
        else:
            self.booster_ = booster_from_json(state["booster"], f"{where}.booster")
            n = self.booster_.num_features()
        if n != self.n_features_in_:
            raise PredictorError(f"{where}: model has {n} features but n_features says {self.n_features_in_}")
