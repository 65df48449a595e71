"""The noise floor beside a predictor's error, and the lookup-table calibration record."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from latkit.cli import main
from latkit.errors import PredictorError
from latkit.predictors.api import read_measurements
from latkit.predictors.metrics import noise_floor

COLUMNS = "arch,latency_ms,space,device,p10_ms,p90_ms,mean_ms,std_ms,cv,runs".split(",")


def write_passes(path, space, archs, y, rel_noise, seed=0, meta=None):
    """Measurements with three passes each, spread by ``rel_noise`` (lognormal)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, "passes", "pass_ms", "ref_drift"])
        for a, v in zip(archs, y):
            ps = [float(v * np.exp(rng.normal(0, rel_noise))) for _ in range(3)]
            med = float(np.median(ps))
            w.writerow([str(a), repr(med), space.name, "synthetic", med, med, med, 0.0, 0.0, 20, 3,
                        ";".join(repr(p) for p in ps), ""])
    if meta is not None:
        path.with_name(path.name + ".meta.json").write_text(json.dumps(meta))
    return path


def test_noise_floor_grows_with_the_pass_spread():
    rng = np.random.default_rng(1)
    truth = rng.uniform(5, 20, 200)
    quiet = noise_floor([[t * (1 + rng.normal(0, 0.005)) for _ in range(3)] for t in truth])
    loud = noise_floor([[t * (1 + rng.normal(0, 0.05)) for _ in range(3)] for t in truth])
    assert quiet["n"] == 200 and quiet["n_passes"] == 3
    assert quiet["mape"] == pytest.approx(100 * 0.005 * 2 / np.sqrt(np.pi), rel=0.2)
    assert loud["mape"] > 5 * quiet["mape"] and loud["acc10"] < quiet["acc10"] == 100.0
    assert quiet["figure_mape"] < quiet["mape"]
    assert noise_floor([[1.0], [2.0]]) is None  # one pass each: no floor


def test_read_measurements_keeps_the_passes(tmp_path, space, data):
    archs, y = data
    meas = read_measurements(write_passes(tmp_path / "m.csv", space, archs[:5], y[:5], 0.01), space)
    assert meas.passes is not None and [len(p) for p in meas.passes] == [3] * 5
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,latency_ms,pass_ms\n" f"{archs[0]},1.0,1.0;x\n")
    with pytest.raises(PredictorError, match="pass_ms"):
        read_measurements(bad, space)


def test_evaluate_states_the_noise_floor_and_fit_records_the_calibration(
        tmp_path, capsys, space, data, lut_dir):
    archs, y = data
    ref = {"key": "r224-ref", "median_ms": 10.0}
    train = write_passes(tmp_path / "train.csv", space, archs[:60], y[:60], 0.01,
                         meta={"reference": {"synthetic": {**ref, "median_ms": 10.5}}})
    test = write_passes(tmp_path / "test.csv", space, archs[60:120], y[60:120], 0.03, seed=1)
    table = json.loads((lut_dir / "meta.json").read_text())
    table["reference"] = ref
    (lut_dir / "meta.json").write_text(json.dumps(table))
    pred = tmp_path / "lut.json"
    assert main(["fit", "--space", space.name, "--measurements", str(train), "--lut", str(lut_dir),
                 "--model", "lut", "-o", str(pred), "--json"]) == 0
    cal = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["scale"] > 0 and cal["checked_on"].endswith("cross-validation")
    assert cal["check"]["n"] == 60 and cal["reference_ratio"] == pytest.approx(1.05)
    assert main(["fit", "evaluate", "--predictor", str(pred), "--measurements", str(test),
                 "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    noise = m["noise_floor"]
    assert noise["n"] == 60 and noise["mape"] == pytest.approx(100 * 0.03 * 2 / np.sqrt(np.pi), rel=0.3)
    assert m["mape_over_noise"] == pytest.approx(m["mape"] / noise["mape"])
    assert main(["fit", "evaluate", "--predictor", str(pred), "--measurements", str(test)]) == 0
    out = capsys.readouterr().out
    assert "noise floor    pass vs pass (3 passes, 60 subnets)" in out and "x pass-vs-pass" in out
    plain = tmp_path / "plain.csv"
    plain.write_text("arch,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in zip(archs[:5], y[:5])))
    assert main(["fit", "evaluate", "--predictor", str(pred), "--measurements", str(plain)]) == 0
    assert "noise floor    unknown" in capsys.readouterr().out
