"""Predictor files: strict JSON, rejected with one clear line when anything is unexpected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latkit.errors import PredictorError
from latkit.predictors.io import load_predictor, save_predictor
from latkit.predictors.models import LutPredictor, XGBPredictor
from latkit.predictors.transfer import FewShotPredictor

SPACE = "ofa-mbv3-w1.0"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, table, data):
    archs, y = data
    d = tmp_path_factory.mktemp("io")
    xgb = XGBPredictor(SPACE, table, n_estimators=20).fit(archs[:60], y[:60])
    lut = LutPredictor(SPACE, table).fit(archs[:20], y[:20])
    few = FewShotPredictor(SPACE, [xgb, lut]).fit(archs[60:75], y[60:75] * 1.7)
    return {n: save_predictor(p, d / f"{n}.json") for n, p in
            (("xgb", xgb), ("lut", lut), ("fewshot", few))}


def _edit(path, tmp_path, change):
    doc = json.loads(path.read_text())
    change(doc)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))
    return out


def test_round_trip_is_exact_and_self_contained(saved, data):
    archs, _ = data
    for name, path in saved.items():
        pred = load_predictor(path)
        doc = json.loads(path.read_text())
        assert doc["format"] == "latkit-predictor" and doc["version"] == 1 and doc["kind"] == name
        for key in ("space", "target", "n_train", "versions", "created", "metrics"):
            assert key in doc["meta"]
        assert np.all(np.isfinite(pred.predict(archs[100:120])))
    # the table travels inside the file; the booster is xgboost's own JSON
    doc = json.loads(saved["xgb"].read_text())
    assert len(doc["table"]["entries"]) > 100
    assert json.loads(doc["state"]["booster"])["learner"]


BAD = {
    "unknown format": lambda d: d.update(format="something-else"),
    "unknown kind": lambda d: d.update(kind="pickle"),
    "newer version": lambda d: d.update(version=99),
    "extra top field": lambda d: d.update(code="__import__('os').system('true')"),
    "missing field": lambda d: d.pop("state"),
    "unknown param": lambda d: d["params"].update(callback="os.system"),
    "param of wrong type": lambda d: d["params"].update(mode={"nested": "object"}),
    "extra state field": lambda d: d["state"].update(extra=1),
    "booster not xgboost json": lambda d: d["state"].update(booster="not json"),
    "booster json of something else": lambda d: d["state"].update(booster='{"a": 1}'),
    "wrong column count": lambda d: d["state"].update(columns=["r"]),
    "bad table entry": lambda d: d["table"]["entries"].__setitem__(0, ["k", "Conv", -1, 0, 0, 0, 0, 0, 0]),
    "space mismatch": lambda d: d["meta"].update(space="compofa-w1.0"),
    "unknown space": lambda d: (d["params"].update(space="nope"), d["meta"].update(space="nope")),
    "meta not object": lambda d: d.update(meta=[]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unexpected_content_is_rejected(case, saved, tmp_path):
    path = _edit(saved["xgb"], tmp_path, BAD[case])
    with pytest.raises(Exception) as info:
        load_predictor(path)
    from latkit.errors import LatkitError

    assert isinstance(info.value, LatkitError), repr(info.value)
    assert "\n" not in str(info.value) and str(info.value)


@pytest.mark.parametrize("change", [
    lambda d: d["state"]["chosen"].update(source=7),
    lambda d: d["params"]["sources"][0].update(kind="unknown"),
    lambda d: d["state"]["chosen"].update(method="eval"),
])
def test_fewshot_nested_content_is_checked(change, saved, tmp_path):
    with pytest.raises(PredictorError):
        load_predictor(_edit(saved["fewshot"], tmp_path, change))


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"format": "latkit-predictor"}',
                                  '{"a": NaN}'])
def test_non_predictor_files_are_rejected(text, tmp_path):
    p = tmp_path / "x.json"
    p.write_text(text)
    with pytest.raises(PredictorError):
        load_predictor(p)


def test_binary_and_missing_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(PredictorError, match="not a text file|not valid JSON"):
        load_predictor(p)
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor(tmp_path / "missing.json")


def test_unfitted_cannot_be_saved(tmp_path, table):
    with pytest.raises(PredictorError, match="unfitted"):
        save_predictor(LutPredictor(SPACE, table), tmp_path / "u.json")
