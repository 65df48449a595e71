"""Few-shot transfer: adapt latency predictors of other devices to a new one from k measurements.

``FewShotPredictor(space, sources=[pred_A, pred_B, ...]).fit(k_archs, k_latencies_ms)``. Each source
is a fitted latency predictor of another device (any kind, e.g. loaded with ``load_predictor``). On
the target, every candidate below is scored by leave-one-out over the k points (10-fold above 60)
(squared error of log latency, i.e. relative error) and the best one is kept:

==============  =====================================================================  ==========
candidate       model of log latency on the target                                     needs k >=
==============  =====================================================================  ==========
``scale:J``     log b_J + c (source J rescaled: a recalibrated table when J is one)    1
``power:J``     a log b_J + c (a power law: a device that is relatively faster on      4
                big nets than on small ones)
``mix``         ridge on [log b_1..log b_m, log MACs] (mixes sources, and MACs for     6
                arithmetic-bound devices)
``residual:J``  scale:J plus ridge on the arch's structure features (per-slot kernel,  10
                expand, depth, resolution, MACs): what no source device captures
==============  =====================================================================  ==========

b_J is source J's prediction for the arch. Ties in LOO error go to the simpler candidate (listed
first). ``method`` may name one candidate family (``scale``, ``power``, ``mix``, ``residual``) to
skip the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latkit.errors import PredictorError
from latkit.predictors import defaults
from latkit.predictors.checks import expect_keys, expect_number
from latkit.predictors.core import check_ridge_state, fit_ridge, predict_ridge
from latkit.predictors.features import log_safe
from latkit.predictors.models import LATENCY, ArchPredictor

METHODS = ("auto", "scale", "power", "mix", "residual")
MIN_K = {"scale": 1, "power": 4, "mix": 6, "residual": 10}
RESIDUAL_ALPHAS = (1.0, 10.0, 100.0, 1000.0)


def _fit_one(name: str, Lb: np.ndarray, Fs: np.ndarray, t: np.ndarray, alpha: float,
             residual_alphas: Sequence[float] = RESIDUAL_ALPHAS) -> dict[str, Any]:
    """Fit candidate ``name`` on log base predictions ``Lb`` (n, m), features ``Fs``, log target."""
    method, _, src = name.partition(":")
    if method == "scale":
        j = int(src)
        return {"method": "scale", "source": j, "c": float(np.mean(t - Lb[:, j]))}
    if method == "power":
        j = int(src)
        x = Lb[:, j]
        if np.ptp(x) < 1e-9:
            return {"method": "scale", "source": j, "c": float(np.mean(t - x))}
        a, c = np.polyfit(x, t, 1)
        return {"method": "power", "source": j, "a": float(a), "c": float(c)}
    if method == "mix":
        X = np.hstack([Lb, Fs[:, :1]])  # Fs[:, 0] is log MACs
        return {"method": "mix", "ridge": fit_ridge(X, t, (alpha,))}
    if method == "residual":
        j = int(src)
        c = float(np.mean(t - Lb[:, j]))
        r = t - Lb[:, j] - c
        return {"method": "residual", "source": j, "c": c,
                "ridge": fit_ridge(Fs, r, residual_alphas)}
    raise PredictorError(f"unknown few-shot candidate {name!r}")


def _predict_one(state: dict[str, Any], Lb: np.ndarray, Fs: np.ndarray) -> np.ndarray:
    m = state["method"]
    if m == "scale":
        return Lb[:, state["source"]] + state["c"]
    if m == "power":
        return state["a"] * Lb[:, state["source"]] + state["c"]
    if m == "mix":
        return predict_ridge(state["ridge"], np.hstack([Lb, Fs[:, :1]]))
    if m == "residual":
        return Lb[:, state["source"]] + state["c"] + predict_ridge(state["ridge"], Fs)
    raise PredictorError(f"unknown few-shot method {m!r}")


def candidates(n_sources: int, k: int, method: str = "auto") -> list[str]:
    """The candidate names for ``n_sources`` sources and ``k`` samples, simplest first."""
    out = []
    for fam in ("scale", "power", "mix", "residual"):
        if method not in ("auto", fam) or k < MIN_K[fam]:
            continue
        if fam == "mix":
            out.append("mix")
        else:
            out += [f"{fam}:{j}" for j in range(n_sources)]
    return out


class FewShotPredictor(ArchPredictor):
    """Latency on a new device from k measurements and the predictors of other devices."""

    kind = "fewshot"

    def __init__(self, space: Any = "ofa-mbv3-w1.0", sources: Sequence[Any] = (), method: str = "auto",
                 alpha: float | None = None, target: str = LATENCY, random_state: int = 0) -> None:
        self.space = space
        self.sources = sources
        self.method = method
        self.alpha = alpha
        self.target = target
        self.random_state = random_state

    def __sklearn_clone__(self) -> FewShotPredictor:
        """A clone shares the (fitted, read-only) sources: cloning them would unfit them."""
        return type(self)(**self.get_params(deep=False))

    def _inputs(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        # the validated archs themselves, not their keys: a source then skips parsing them again
        Lb = np.stack([log_safe(np.maximum(s.predict(archs), 1e-9)) for s in self.sources], axis=1)
        f = self._featurizer()
        F = self._features(archs)
        cols = [f.names.index("log_macs")] + [i for i in f.columns(("struct", "cost"))
                                              if f.names[i] != "log_macs"]
        return Lb, F[:, cols]

    def _fit(self, archs: Sequence[Any], y: np.ndarray) -> None:
        if self.target != LATENCY:
            raise PredictorError(f"few-shot transfer predicts {LATENCY}, not {self.target}")
        if not self.sources:
            raise PredictorError("few-shot transfer needs at least one source predictor "
                                 "(--base A.json[,B.json...])")
        if self.method not in METHODS:
            raise PredictorError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for s in self.sources:
            if getattr(s, "target", LATENCY) != LATENCY:
                raise PredictorError("a few-shot source must predict latency_ms, not "
                                     f"{getattr(s, 'target', '?')}")
        alpha = defaults.FEWSHOT_ALPHA if self.alpha is None else float(self.alpha)
        Lb, Fs = self._inputs(archs)
        t = log_safe(y)
        names = candidates(len(self.sources), len(y), self.method)
        if not names:
            raise PredictorError(f"method {self.method} needs k >= {MIN_K[self.method]} samples, "
                                 f"got {len(y)}")
        scores = {}
        n = len(y)
        # leave-one-out up to 60 samples, 10-fold beyond; the residual ridge keeps the alpha it
        # chose on all k samples (its own inner leave-one-out), so scoring costs one fit per fold
        folds = [np.array([i]) for i in range(n)] if n <= 60 else \
            [np.arange(n)[np.random.default_rng(self.random_state).permutation(n) % 10 == f]
             for f in range(10)]
        for name in names:
            if n < 2:
                scores[name] = 0.0
                continue
            full = _fit_one(name, Lb, Fs, t, alpha)
            res_alphas = (full["ridge"]["alpha"],) if full["method"] == "residual" else RESIDUAL_ALPHAS
            err = np.empty(n)
            for test in folds:
                keep = np.ones(n, dtype=bool)
                keep[test] = False
                st = _fit_one(name, Lb[keep], Fs[keep], t[keep], alpha, res_alphas)
                err[test] = (_predict_one(st, Lb[test], Fs[test]) - t[test]) ** 2
            scores[name] = float(np.mean(err))
        best = min(names, key=lambda nm: scores[nm])  # ties: the first, i.e. the simplest
        self.chosen_ = _fit_one(best, Lb, Fs, t, alpha)
        self.candidate_ = best
        self.loo_ = {k: float(np.sqrt(v)) for k, v in scores.items()}

    def _predict(self, archs: Sequence[Any]) -> np.ndarray:
        Lb, Fs = self._inputs(archs)
        return np.exp(_predict_one(self.chosen_, Lb, Fs))

    def get_state(self) -> dict[str, Any]:
        return {"chosen": self.chosen_, "candidate": self.candidate_, "loo_rmse_log": self.loo_,
                "n_train": self.n_train_}

    def set_state(self, state: dict[str, Any], where: str) -> None:
        expect_keys(state, {"chosen", "candidate", "loo_rmse_log", "n_train"}, where)
        ch = state["chosen"]
        fields = {"scale": {"method", "source", "c"}, "power": {"method", "source", "a", "c"},
                  "mix": {"method", "ridge"}, "residual": {"method", "source", "c", "ridge"}}
        if not isinstance(ch, dict) or ch.get("method") not in fields:
            raise PredictorError(f"{where}.chosen must be an object with method in {sorted(fields)}")
        expect_keys(ch, fields[ch["method"]], f"{where}.chosen")
        if "source" in ch:
            j = ch["source"]
            if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < len(self.sources):
                raise PredictorError(f"{where}.chosen.source must index one of the "
                                     f"{len(self.sources)} sources, found {j!r}")
        for key in ("a", "c"):
            if key in ch:
                expect_number(ch[key], f"{where}.chosen.{key}")
        if "ridge" in ch:
            check_ridge_state(ch["ridge"], f"{where}.chosen.ridge")
        if not isinstance(state["candidate"], str) or not isinstance(state["loo_rmse_log"], dict):
            raise PredictorError(f"{where}: candidate must be text and loo_rmse_log an object")
        self.chosen_ = ch
        self.candidate_ = state["candidate"]
        self.loo_ = {str(k): expect_number(v, f"{where}.loo_rmse_log")
                     for k, v in state["loo_rmse_log"].items()}
        self.n_train_ = int(expect_number(state["n_train"], f"{where}.n_train"))
