"""Accuracy predictors: arch -> top-1 (percent), fitted on the accuracy table of ``lat train eval``.

- ``fit_accuracy_predictor(space, archs, top1, ...)``: fit on (arch, top-1) pairs and measure the
  fit on a seeded held-out share of them (``heldout_split`` and ``heldout_metrics``, which
  ``benchmarks/accuracy_predictor.py`` calls to compare the models on the same splits);
- ``fit_accuracy(path, space, ...)``: the same on an ``arch,top1`` CSV (``lat fit --target top1
  --measurements acc.csv``, alias ``lat train fit-accuracy``), with the file and the command in the
  predictor's metadata.

The predictor is one of the arch regressors of ``models.py`` with ``target="top1"`` (xgb, rf, ridge)
or once-for-all's own accuracy predictor (``mlp``, ``mlp.py``: an MLP over its one-hot arch
encoding); search reads it as an accuracy source (``--accuracy ACC_PRED.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from latkit.errors import PredictorError, TrainError
from latkit.predictors.api import fit_arch_regressor
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.space import ArchConfig, SearchSpace, get_space

TOP1 = "top1"
#: the models an accuracy predictor can be (``lut`` predicts latency only)
MODELS = ("xgb", "rf", "ridge", "mlp")
MIN_SUBNETS = 10


def heldout_split(n: int, seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: a seeded ``test_fraction`` of ``n`` rows held out (at least 2)."""
    if n < MIN_SUBNETS:
        raise TrainError(f"need at least {MIN_SUBNETS} evaluated subnets to fit an accuracy "
                         f"predictor; got {n}")
    if not 0 < test_fraction < 1:
        raise TrainError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(2, int(round(test_fraction * n)))
    return perm[n_test:], perm[:n_test]


def heldout_metrics(space: SearchSpace, archs: Sequence[ArchConfig], top1: Sequence[float],
                    train: Sequence[int], test: Sequence[int], *, model: str = "xgb",
                    seed: int = 0) -> dict[str, Any]:
    """Fit ``model`` on the ``train`` rows and score it on the ``test`` rows: ``spearman_heldout``,
    ``kendall_heldout``, ``mae_heldout`` (points), ``n_train``, ``n_test``."""
    y = np.asarray(top1, dtype=float)
    train, test = np.asarray(train, dtype=int), np.asarray(test, dtype=int)
    first = fit_arch_regressor(space, [archs[i] for i in train], y[train], model=model,
                               target=TOP1, seed=seed, cv=False)
    pred = np.asarray(first.predict([archs[i] for i in test]), dtype=float)
    varied = np.ptp(y[test]) > 0 and np.ptp(pred) > 0
    return {
        "spearman_heldout": float(spearmanr(pred, y[test]).statistic) if varied else float("nan"),
        "kendall_heldout": float(kendalltau(pred, y[test]).statistic) if varied else float("nan"),
        "mae_heldout": float(np.mean(np.abs(pred - y[test]))),
        "n_train": int(len(train)), "n_test": int(len(test)),
    }


def fit_accuracy_predictor(space: SearchSpace, archs: Sequence[ArchConfig], top1: Sequence[float],
                           *, model: str = "xgb", seed: int = 0, test_fraction: float = 0.2):
    """Fit ``latkit.predictors``' regressor (arch -> top-1) and measure it on held-out subnets.

    A seeded ``test_fraction`` of the rows is held out of a first fit and predicted
    (``heldout_split``, ``heldout_metrics``); the returned predictor is then refitted on all rows,
    with the held-out figures in ``meta_["metrics"]["holdout"]``. The refit of the tree and ridge
    models also records a 5-fold CV in ``meta_["metrics"]["cv"]``; the mlp's does not (five more
    trainings of a network; its held-out figures are its report). Returns (predictor, held-out
    metrics: ``spearman_heldout``, ``kendall_heldout``, ``mae_heldout`` in points, ``n_train``,
    ``n_test``).
    """
    y = np.asarray(top1, dtype=float)
    train, test = heldout_split(len(archs), seed, test_fraction)
    metrics = heldout_metrics(space, archs, y, train, test, model=model, seed=seed)
    final = fit_arch_regressor(space, list(archs), y, model=model, target=TOP1, seed=seed,
                               cv=model != "mlp")
    meta = getattr(final, "meta_", None)
    if isinstance(meta, dict) and isinstance(meta.get("metrics"), dict):
        meta["metrics"]["holdout"] = {"spearman": metrics["spearman_heldout"],
                                      "kendall": metrics["kendall_heldout"],
                                      "mae_points": metrics["mae_heldout"], "n": metrics["n_test"],
                                      "n_train": metrics["n_train"], "seed": seed}
    return final, metrics


@dataclass
class AccuracyFit:
    """What ``fit_accuracy`` returns: the fitted predictor and how it did on held-out subnets."""

    predictor: Any
    metrics: dict[str, Any]
    n_subnets: int
    space: str


def table_space(path: str | Path) -> str:
    """The one space an accuracy table's ``space`` column names; else a PredictorError."""
    spaces = sorted({row.fields.get("space") or "" for row in read_accuracy_csv(path)} - {""})
    if len(spaces) != 1:
        raise PredictorError(f"accuracy table {path} names spaces {spaces or 'none'}; pass --space")
    return spaces[0]


def fit_accuracy(path: str | Path, space: SearchSpace | str | None = None, *, model: str = "xgb",
                 seed: int = 0, test_fraction: float = 0.2, command: str = "") -> AccuracyFit:
    """An accuracy predictor fitted on the accuracy table at ``path`` (``lat fit --target top1``).

    ``space`` None takes it from the table's ``space`` column. The table is read with the strict
    checks of ``read_accuracy_csv``; ``command`` is recorded in the predictor's metadata.
    """
    if model not in MODELS:
        raise PredictorError(f"an accuracy predictor is one of {', '.join(MODELS)}, not {model!r} "
                             "(a lookup table predicts latency only)")
    sp = get_space(space if space is not None else table_space(path))
    rows = read_accuracy_csv(path, sp)
    archs = [r.arch for r in rows]
    pred, metrics = fit_accuracy_predictor(sp, archs, [r.top1 for r in rows], model=model,
                                           seed=seed, test_fraction=test_fraction)
    meta = getattr(pred, "meta_", None)
    if isinstance(meta, dict):
        meta["accuracy_table"] = str(path)
        meta["command"] = command
    return AccuracyFit(pred, metrics, len(archs), sp.name)


def format_fit(fit: AccuracyFit, model: str, path: str | Path) -> str:
    """The one-line report of ``lat fit --target top1`` (and ``lat train fit-accuracy``)."""
    m = fit.metrics
    return (f"accuracy predictor ({model}) on {fit.n_subnets} subnets: held-out Spearman "
            f"{m['spearman_heldout']:.3f}, MAE {m['mae_heldout']:.2f} points "
            f"({m['n_test']} held out) -> {path}")
