"""Few-shot transfer to a device of another kind from k measurements."""

from __future__ import annotations

import numpy as np
import pytest

from latkit.errors import PredictorError
from latkit.predictors.metrics import regression_metrics
from latkit.predictors.models import LutPredictor, XGBPredictor
from latkit.predictors.transfer import FewShotPredictor, candidates

SPACE = "ofa-mbv3-w1.0"


@pytest.fixture(scope="module")
def sources(table, data):
    archs, y = data
    return [XGBPredictor(SPACE, table, n_estimators=60).fit(archs[:120], y[:120]),
            LutPredictor(SPACE, table).fit(archs[:120], y[:120])]


@pytest.fixture(scope="module")
def target(space, data, synthetic_device):
    """A device of another kind: launch-bound (large per-layer cost), 3x slower arithmetic, k7 2x."""
    archs, _ = data
    rng = np.random.default_rng(5)
    return np.array([synthetic_device(space, a, rng, launch_ms=0.15, gmacs_per_s=10.0, k7=2.0)
                     for a in archs])


def test_candidates_grow_with_k():
    assert candidates(2, 3) == ["scale:0", "scale:1"]
    assert "mix" in candidates(2, 6) and "residual:1" in candidates(2, 10)
    assert candidates(2, 20, "power") == ["power:0", "power:1"]


@pytest.mark.parametrize("k", [5, 10, 20])
def test_few_shot_beats_rescaling_one_source(k, sources, target, data):
    archs, _ = data
    test = archs[120:]
    rng = np.random.default_rng(k)
    idx = rng.choice(120, size=k, replace=False)
    train = [archs[i] for i in idx]
    auto = FewShotPredictor(SPACE, sources).fit(train, target[idx])
    scale = FewShotPredictor(SPACE, sources[:1], method="scale").fit(train, target[idx])
    m_auto = regression_metrics(target[120:], auto.predict(test))
    m_scale = regression_metrics(target[120:], scale.predict(test))
    assert m_auto["spearman"] > 0.97
    assert m_auto["mape"] <= m_scale["mape"] * 1.05 + 0.2, (auto.candidate_, m_auto, m_scale)
    assert auto.candidate_ in auto.loo_
    assert auto.meta_["n_train"] == k


def test_errors_are_clear(sources, data):
    archs, y = data
    with pytest.raises(PredictorError, match="--base"):
        FewShotPredictor(SPACE, []).fit(archs[:5], y[:5])
    with pytest.raises(PredictorError, match="k >= 10"):
        FewShotPredictor(SPACE, sources, method="residual").fit(archs[:5], y[:5])
    with pytest.raises(PredictorError, match="method"):
        FewShotPredictor(SPACE, sources, method="magic").fit(archs[:5], y[:5])
    top1 = XGBPredictor(SPACE, target="top1", n_estimators=5).fit(archs[:20], y[:20])
    with pytest.raises(PredictorError, match="latency_ms"):
        FewShotPredictor(SPACE, [top1]).fit(archs[:5], y[:5])


def test_sources_see_the_archs_themselves_same_answers(sources, target, data):
    """Sources are called with the validated archs, not their keys: same predictions to the bit."""
    archs, _ = data
    fs = FewShotPredictor(SPACE, sources).fit(archs[:20], target[:20])
    got = fs.predict(archs)
    keys = [str(a) for a in archs]
    Lb = np.stack([np.log(np.maximum(s.predict(keys), 1e-9)) for s in sources], axis=1)
    _, Fs = fs._inputs(archs)
    from latkit.predictors.transfer import _predict_one

    assert np.array_equal(got, np.exp(_predict_one(fs.chosen_, Lb, Fs)))
    assert np.array_equal(fs.predict(keys), got)
