"""Numeric cores shared by the predictors: weighted ridge with leave-one-out, and xgboost boosters.

These work on plain float matrices; the estimators in ``models.py`` turn archs into such matrices.
Their learned state is a small dict of lists and strings, so that ``io.py`` can write it as JSON
(an xgboost booster as xgboost's own JSON model text) and read it back without executing anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.exceptions import NotFittedError as SkNotFittedError
from threadpoolctl import threadpool_limits

from latkit.errors import NotFittedError, PredictorError


class PredictorNotFitted(NotFittedError, SkNotFittedError):
    """Raised by ``predict`` before ``fit``: latkit's error and scikit-learn's at once."""


# ------------------------------------------------------------------------------------------------
# Ridge: closed form, standardised columns, unpenalised intercept, alpha by leave-one-out
# ------------------------------------------------------------------------------------------------


def _one_blas_thread() -> Any:
    """Small matrices: multi-threaded BLAS only adds contention (100x slower on a busy 2-core box)."""
    return threadpool_limits(1, user_api="blas")


def fit_ridge(F: np.ndarray, y: np.ndarray, alphas: Sequence[float],
              weights: np.ndarray | None = None) -> dict[str, Any]:
    with _one_blas_thread():
        return _fit_ridge(F, y, alphas, weights)


def _fit_ridge(F: np.ndarray, y: np.ndarray, alphas: Sequence[float],
               weights: np.ndarray | None = None) -> dict[str, Any]:
    """Weighted ridge of ``y`` on ``F``; ``alpha`` chosen by exact leave-one-out error.

    Minimises sum_i w_i (y_i - b - F_i . beta)^2 + alpha |beta|^2 on standardised columns. With
    w_i = 1 / y_i^2 that is the sum of squared *relative* errors. Returns the state dict
    ``{mean, scale, coef, intercept, alpha, loo_rmse}`` (coef on the original column scale).
    """
    F = np.asarray(F, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = F.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    mean = F.mean(axis=0) if n else np.zeros(p)
    scale = F.std(axis=0) if n else np.ones(p)
    scale[~(scale > 1e-12)] = 1.0
    Z = np.hstack([np.ones((n, 1)), (F - mean) / scale])
    sw = np.sqrt(w)
    Zw, yw = Z * sw[:, None], y * sw
    G = Zw.T @ Zw
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        P = np.eye(p + 1) * float(alpha)
        P[0, 0] = 1e-10  # intercept unpenalised (tiny ridge keeps the system regular)
        try:
            inv = np.linalg.inv(G + P)
        except np.linalg.LinAlgError:
            continue
        beta = inv @ (Zw.T @ yw)
        h = np.einsum("ij,jk,ik->i", Zw, inv, Zw)
        resid = (yw - Zw @ beta) / np.maximum(1.0 - h, 1e-6)
        loo = float(np.sqrt(np.mean(resid ** 2))) if n else 0.0
        if best is None or loo < best[0] - 1e-15:
            best = (loo, float(alpha), beta)
    if best is None:
        raise PredictorError("ridge regression failed for every alpha; the features are degenerate")
    loo, alpha, beta = best
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": beta[1:].tolist(),
            "intercept": float(beta[0]), "alpha": alpha, "loo_rmse": loo}


def predict_ridge(state: dict[str, Any], F: np.ndarray) -> np.ndarray:
    coef = np.asarray(state["coef"], dtype=float)
    if F.shape[1] != coef.shape[0]:
        raise PredictorError(f"ridge model expects {coef.shape[0]} features, got {F.shape[1]}")
    mean = np.asarray(state["mean"], dtype=float)
    scale = np.asarray(state["scale"], dtype=float)
    return ((F - mean) / scale * coef).sum(axis=1) + float(state["intercept"])


def check_ridge_state(state: Any, where: str) -> dict[str, Any]:
    """A ridge state read from a file: the right keys, finite numbers, consistent lengths."""
    need = {"mean", "scale", "coef", "intercept", "alpha", "loo_rmse"}
    if not isinstance(state, dict) or set(state) != need:
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise PredictorError(f"{where}: ridge state must have keys {sorted(need)}, found {found}")
    arrays = [np.asarray(state[k], dtype=float) for k in ("mean", "scale", "coef")]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise PredictorError(f"{where}: ridge mean/scale/coef must be equal-length lists of numbers")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise PredictorError(f"{where}: ridge state holds non-finite numbers")
    for k in ("intercept", "alpha", "loo_rmse"):
        if not isinstance(state[k], (int, float)) or isinstance(state[k], bool):
            raise PredictorError(f"{where}: ridge {k} must be a number, found {state[k]!r}")
    return state


# ------------------------------------------------------------------------------------------------
# xgboost: gradient-boosted trees or a random forest, trained with the native API
# ------------------------------------------------------------------------------------------------


def xgb_train(F: np.ndarray, y: np.ndarray, *, mode: str, params: dict[str, Any], seed: int,
              base_margin: np.ndarray | None = None) -> Any:
    """A ``xgboost.Booster`` fitted on (F, y); ``mode`` is ``gbt`` or ``rf``."""
    p = dict(params)
    n_estimators = int(p.pop("n_estimators"))
    booster_params = {"objective": "reg:squarederror", "tree_method": "hist", "nthread": 1,
                      "seed": int(seed), "verbosity": 0, "eta": p.pop("learning_rate"), **p}
    rounds = n_estimators
    if mode == "rf":
        booster_params["num_parallel_tree"] = n_estimators
        rounds = 1
    if base_margin is None:  # always train on a margin, so that prediction adds exactly the trees
        base_margin = np.zeros(len(y))
    dtrain = xgb.DMatrix(F, label=y, base_margin=base_margin)
    return xgb.train(booster_params, dtrain, num_boost_round=rounds)


def xgb_predict(booster: Any, F: np.ndarray) -> np.ndarray:
    n_features = booster.num_features()
    if F.shape[1] != n_features:
        raise PredictorError(f"booster expects {n_features} features, got {F.shape[1]}")
    if F.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(booster.inplace_predict(np.ascontiguousarray(F, dtype=np.float32),
                                              base_margin=np.zeros(F.shape[0])), dtype=float)


def booster_to_json(booster: Any) -> str:
    """xgboost's own JSON model text."""
    return bytes(booster.save_raw("json")).decode("utf-8")


def booster_from_json(text: Any, where: str) -> Any:
    """A booster from xgboost's JSON model text; anything else is a ``PredictorError``."""
    if not isinstance(text, str):
        raise PredictorError(f"{where}: booster must be xgboost JSON text, found {type(text).__name__}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictorError(f"{where}: booster is not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or "learner" not in doc or "version" not in doc:
        raise PredictorError(f"{where}: booster JSON lacks xgboost's 'learner' and 'version' fields")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(text.encode("utf-8")))
    except xgb.core.XGBoostError as exc:
        raise PredictorError(f"{where}: xgboost cannot load the booster "
                             f"({str(exc).splitlines()[0]})") from None
    return booster
