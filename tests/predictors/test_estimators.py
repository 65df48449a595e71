"""Every predictor passes the same estimator checks (STYLE 14), and fits the synthetic device."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

from latkit.errors import NotFittedError, PredictorError
from latkit.predictors.io import load_predictor, save_predictor
from latkit.predictors.metrics import regression_metrics
from latkit.predictors.models import LutPredictor, RidgePredictor, XGBPredictor
from latkit.predictors.table_model import TablePredictor
from latkit.predictors.transfer import FewShotPredictor

SPACE = "ofa-mbv3-w1.0"


def _source(table, data):
    archs, y = data
    return XGBPredictor(SPACE, table).fit(archs[:150], y[:150] * 2.0)


def make(name, table, data):
    """name -> a fresh unfitted predictor (sources of the few-shot one are fitted)."""
    return {
        "lut": lambda: LutPredictor(SPACE, table),
        "ridge": lambda: RidgePredictor(SPACE),
        "ridge+lut": lambda: RidgePredictor(SPACE, table),
        "xgb": lambda: XGBPredictor(SPACE),
        "xgb+lut": lambda: XGBPredictor(SPACE, table),
        "xgb-log": lambda: XGBPredictor(SPACE, baseline="none"),
        "rf": lambda: XGBPredictor(SPACE, mode="rf", n_estimators=50),
        "rf+lut": lambda: XGBPredictor(SPACE, table, mode="rf", n_estimators=50),
        "fewshot": lambda: FewShotPredictor(SPACE, [_source(table, data)]),
    }[name]()


NAMES = ["lut", "ridge", "ridge+lut", "xgb", "xgb+lut", "xgb-log", "rf", "rf+lut", "fewshot"]
#: held-out MAPE (%) each must reach on the synthetic device (1% measurement noise)
MAX_MAPE = {"lut": 3, "ridge": 4, "ridge+lut": 3, "xgb": 4, "xgb+lut": 3, "xgb-log": 8, "rf": 4,
            "rf+lut": 3, "fewshot": 3}


@pytest.mark.parametrize("name", NAMES)
def test_estimator_contract(name, table, data, tmp_path):
    archs, y = data
    train, test = archs[:100], archs[100:]
    est = make(name, table, data)

    # __init__ only stores: every parameter is an attribute, get_params round-trips, clone works
    params = est.get_params(deep=False)
    assert set(params) == set(inspect.signature(type(est).__init__).parameters) - {"self"}
    assert all(getattr(est, k) is v for k, v in params.items())
    assert not [a for a in vars(est) if a.endswith("_")], "learned state before fit"
    twin = clone(est)
    assert twin.get_params(deep=False).keys() == params.keys()
    est.set_params(**params)

    # not fitted -> latkit's NotFittedError, which is also scikit-learn's
    with pytest.raises(NotFittedError):
        est.predict(test)
    from sklearn.exceptions import NotFittedError as SkNotFitted

    with pytest.raises(SkNotFitted):
        est.predict(test)

    assert est.fit(train, y[:100]) is est
    learned = [a for a in vars(est) if a.endswith("_") and not a.startswith("_")]
    assert "meta_" in learned and "n_train_" in learned
    for key in ("space", "target", "device", "n_train", "metrics", "versions", "created"):
        assert key in est.meta_, key
    assert est.meta_["n_train"] == 100

    p = est.predict(test)
    assert p.shape == (len(test),) and np.all(np.isfinite(p)) and np.all(p > 0)
    m = regression_metrics(y[100:], p)
    assert m["mape"] < MAX_MAPE[name], m
    assert m["spearman"] > 0.97, m

    # the same input in any arch form gives the same predictions
    keys = [str(a) for a in test[:10]]
    dicts = [a.to_ofa_dict(4) for a in test[:10]]
    np.testing.assert_array_equal(est.predict(keys), p[:10])
    np.testing.assert_array_equal(est.predict(dicts), p[:10])

    # deterministic: a clone fitted on the same data predicts the same
    np.testing.assert_allclose(clone(est).fit(train, y[:100]).predict(test), p, rtol=1e-12)

    # saved and reloaded: identical predictions, metadata kept
    path = save_predictor(est, tmp_path / f"{name}.json")
    again = load_predictor(path)
    np.testing.assert_array_equal(again.predict(test), p)
    assert again.meta_["n_train"] == 100 and type(again) is type(est)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_clear_error(name, table, data):
    archs, y = data
    est = make(name, table, data)
    with pytest.raises(PredictorError):
        est.fit(archs[:10], y[:9])
    with pytest.raises(PredictorError):
        est.fit(archs[:10], -y[:10])
    with pytest.raises(Exception) as info:
        est.fit(["r999-k3.3.3.3.3-e3.3.3.3.3"], [1.0])
    assert "r=999" in str(info.value) or "999" in str(info.value)


def test_accuracy_target_is_not_logged(data):
    """top1 (accuracy) targets: fitted as they are, negative values allowed, predicted in range."""
    archs, _ = data
    top1 = np.array([60 + 0.05 * sum(a.d) + 0.001 * a.r for a in archs])
    for est in (XGBPredictor(SPACE, target="top1"), RidgePredictor(SPACE, target="top1")):
        p = est.fit(archs[:150], top1[:150]).predict(archs[150:])
        assert np.max(np.abs(p - top1[150:])) < 0.5
        assert est.meta_["target"] == "top1"
    with pytest.raises(PredictorError):
        LutPredictor(SPACE, None).fit(archs[:10], top1[:10])


def test_lut_predictor_without_table_says_how_to_get_one(data):
    archs, y = data
    with pytest.raises(PredictorError, match="--lut"):
        LutPredictor(SPACE).fit(archs[:5], y[:5])


def test_lut_calibration_recovers_scale_and_offset(table, space, data):
    archs, _ = data
    sums = np.array([table.predict_arch_sum(space, a) for a in archs])
    est = LutPredictor(SPACE, table).fit(archs, 1.25 * sums + 0.4)
    assert est.scale_ == pytest.approx(1.25, rel=1e-9)
    assert est.offset_ms_ == pytest.approx(0.4, rel=1e-6)


def test_batch_of_10000_predicted_quickly(table, space):
    """10,000 archs (feature extraction included) in well under a second; generous bound here."""
    import random
    import time

    rng = random.Random(1)
    train = [space.sample(rng, [160, 192, 224]) for _ in range(100)]
    y = np.array([1.0 + space.macs(a) / 1e8 for a in train])
    est = XGBPredictor(SPACE, table).fit(train, y)
    big = [space.sample(rng, [160, 192, 224]) for _ in range(10_000)]
    est.predict(big[:10])
    t0 = time.perf_counter()
    p = est.predict(big)
    assert time.perf_counter() - t0 < 5.0
    assert p.shape == (10_000,)


@pytest.mark.parametrize("model", ["xgb", "rf", "ridge"])
def test_table_predictor_contract(model, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, size=(200, 3))
    y = 0.5 + X[:, 0] * 0.3 + X[:, 1] ** 2 * 0.05
    est = TablePredictor(model, feature_names=["a", "b", "c"], random_state=1)
    assert est.fit(X[:150], y[:150]) is est
    p = est.predict(X[150:])
    assert regression_metrics(y[150:], p)["mape"] < (15 if model == "rf" else 6)
    again = load_predictor(save_predictor(est, tmp_path / "t.json"))
    np.testing.assert_array_equal(again.predict(X[150:]), p)
    with pytest.raises(PredictorError):
        TablePredictor(model, feature_names=["a"]).fit(X, y)


@pytest.mark.parametrize("model", ["xgb", "rf", "ridge"])
def test_table_predictor_passes_sklearn_check_estimator(model):
    """The numeric core (what ``lat fit --table`` fits) passes scikit-learn's own checks."""
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(TablePredictor(model))
