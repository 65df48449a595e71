"""One search over a device in two precisions: each precision is its own target, the output says
which wins at each budget, and a predictor or table of another precision than its target's is
refused (one line, exit 2). Latencies are synthetic (the search is under test, not the numbers)."""

import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from latkit.errors import PredictorError
from latkit.predictors.api import fit_latency
from latkit.predictors.io import save_predictor
from latkit.search.run import search
from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"
RES = [128, 160]


def _frame(sp, precision, factor, fakes, n=60):
    rng = random.Random(1)
    archs = [sp.sample(rng, RES) for _ in range(n)]
    return pd.DataFrame({"arch": [str(a) for a in archs],
                         "latency_ms": [factor * fakes.ms(sp, a) for a in archs],
                         "space": SPACE, "device": "cpu-tflite", "precision": precision})


@pytest.fixture(scope="module")
def preds(tmp_path_factory, fakes):
    d = tmp_path_factory.mktemp("prec")
    sp = get_space(SPACE)
    out = {}
    for prec, factor in (("fp32", 1.0), ("int8", 0.5)):
        pred = fit_latency(None, _frame(sp, prec, factor, fakes), "ridge")
        assert pred.meta_["precision"] == prec
        out[prec] = save_predictor(pred, d / f"{prec}.json")
    archs = [a for r in RES for a in sp.enumerate(r)]
    out["acc"] = fakes.write_acc_csv(d / "acc.csv", SPACE, archs)
    out["lut"] = fakes.make_lut(d / "lut", SPACE, RES, device="cpu-tflite")
    out["dir"] = d
    return out


def test_fp32_and_int8_targets_in_one_search_say_which_wins(preds, tmp_path):
    rep = search(SPACE, {"cpu-tflite": str(preds["fp32"]), "cpu-tflite:int8": str(preds["int8"])},
                 preds["acc"], [4.0, 8.0], tmp_path / "s", export=False)
    s = rep.summary
    assert s["precisions"] == {"cpu-tflite": "fp32", "cpu-tflite:int8": "int8"}
    assert set(s["frontier_sizes"]) == {"cpu-tflite", "cpu-tflite:int8"}
    wins = {w["budget_ms"]: w for w in s["precision_winners"]}
    assert set(wins) == {4.0, 8.0}
    for w in wins.values():  # int8 is half the latency here: at a budget it affords more accuracy
        assert w["winner"] == "int8" and set(w["by_precision"]) == {"fp32", "int8"}
        assert w["by_precision"]["int8"]["top1"] >= w["by_precision"]["fp32"]["top1"]
        assert all(v["latency_ms"] <= w["budget_ms"] for v in w["by_precision"].values())


def test_a_source_of_another_precision_is_refused(preds, tmp_path):
    with pytest.raises(PredictorError, match="holds fp32 latency, but target cpu-tflite:int8 is int8"):
        search(SPACE, {"cpu-tflite:int8": str(preds["fp32"])}, preds["acc"], [4.0], tmp_path / "a",
               export=False)
    with pytest.raises(PredictorError, match="lookup table .* holds fp32 latency"):
        search(SPACE, {"cpu-tflite:int8": f"lut:{preds['lut']}"}, preds["acc"], [4.0],
               tmp_path / "b", export=False)
    r = subprocess.run([sys.executable, "-m", "latkit", "search", "--space", SPACE, "--latency",
                        f"cpu-tflite={preds['int8']}", "--accuracy", str(preds["acc"]),
                        "--budget-ms", "4", "--out", str(tmp_path / "c"), "--no-export"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "holds int8 latency, but target cpu-tflite is fp32" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "latkit", "search", "--space", SPACE, "--latency",
                        f"cpu-tflite={preds['int8']}", "--accuracy", str(preds["acc"]),
                        "--budget-ms", "4", "--out", str(tmp_path / "d"), "--no-export",
                        "--precision", "int8", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["precisions"] == {"cpu-tflite": "int8"}


def test_a_predictor_refuses_mixed_rows_and_another_precision(preds, fakes, tmp_path):
    sp = get_space(SPACE)
    mixed = pd.concat([_frame(sp, "fp32", 1.0, fakes, 20), _frame(sp, "int8", 0.5, fakes, 20)])
    with pytest.raises(PredictorError, match="mixes precisions"):
        fit_latency(None, mixed, "ridge")
    with pytest.raises(PredictorError, match="holds fp32 measurements, not int8"):
        fit_latency(None, _frame(sp, "fp32", 1.0, fakes, 20), "ridge", precision="int8")
    old = _frame(sp, "fp32", 1.0, fakes, 20).drop(columns=["precision"])  # a CSV from before
    assert fit_latency(None, old, "ridge").meta_["precision"] == "fp32"
    arch = str(sp.min_arch(128))
    for flags, msg in ((["predict", "--predictor", preds["int8"], "--arch", arch, "--precision",
                         "fp32"], "predicts int8 latency, not fp32"),
                       (["fit", "--measurements", str(_csv(mixed, tmp_path)), "-o",
                         str(tmp_path / "p.json")], "mixes precisions")):
        r = subprocess.run([sys.executable, "-m", "latkit", *map(str, flags)], capture_output=True,
                           text=True)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert np.isfinite(float(subprocess.run(
        [sys.executable, "-m", "latkit", "predict", "--predictor", str(preds["int8"]), "--arch", arch,
         "--precision", "int8"], capture_output=True, text=True).stdout.split()[0]))


def _csv(frame, tmp_path):
    p = tmp_path / "mixed.csv"
    frame.to_csv(p, index=False)
    return p
