"""lat fit / lat fit evaluate / lat predict, end to end on a synthetic device."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latkit.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fit_predict_evaluate(tmp_path, capsys, measurements_csv, lut_dir, data):
    archs, y = data
    pred = tmp_path / "p.json"
    code, out, _ = run(capsys, "fit", "--space", "ofa-mbv3-w1.0", "--measurements", str(measurements_csv),
                       "--lut", str(lut_dir), "--model", "xgb", "--train-n", "100", "--seed", "1",
                       "-o", str(pred), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["n_train"] == 100 and doc["metrics"]["holdout"]["n"] == 140
    assert doc["metrics"]["holdout"]["acc10"] > 90

    code, out, _ = run(capsys, "predict", "--predictor", str(pred), "--arch", str(archs[0]), "--json")
    assert code == 0 and json.loads(out)["latency_ms"] > 0
    code, out, _ = run(capsys, "predict", "--predictor", str(pred), "--archs", str(measurements_csv))
    lines = out.strip().splitlines()
    assert lines[0] == "arch,latency_ms" and len(lines) == 241

    png = tmp_path / "s.png"
    code, out, _ = run(capsys, "fit", "evaluate", "--predictor", str(pred), "--measurements",
                       str(measurements_csv), "--plot", str(png), "--json")
    m = json.loads(out)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    for key in ("n", "rmse_ms", "mape", "acc10", "acc5", "spearman", "kendall"):
        assert key in m
    assert m["n"] == 240


def test_lut_model_and_fewshot(tmp_path, capsys, measurements_csv, lut_dir, data, space):
    archs, y = data
    base = tmp_path / "base.json"
    assert run(capsys, "fit", "--measurements", str(measurements_csv), "--lut", str(lut_dir),
               "--model", "lut", "-o", str(base))[0] == 0
    few = tmp_path / "few.csv"
    rows = ["arch,latency_ms,space,device"] + [f"{a},{v * 1.8 + 1},{space.name},other"
                                                 for a, v in zip(archs[:10], y[:10])]
    few.write_text("\n".join(rows) + "\n")
    out_p = tmp_path / "few.json"
    code, out, _ = run(capsys, "fit", "--space", space.name, "--measurements", str(few),
                       "--base", str(base), "-o", str(out_p), "--json")
    assert code == 0 and json.loads(out)["chosen"] and json.loads(out)["device"] == "other"
    code, out, _ = run(capsys, "predict", "--predictor", str(out_p), "--arch", str(archs[50]), "--json")
    assert json.loads(out)["latency_ms"] == pytest.approx(y[50] * 1.8 + 1, rel=0.08)


def test_feature_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 5, size=(80, 2))
    t = tmp_path / "t.csv"
    t.write_text("name,macs,depth,lat\n" + "".join(
        f"n{i},{a},{b},{np.exp(0.2 + 0.3 * a + 0.1 * b)}\n" for i, (a, b) in enumerate(X)))
    p = tmp_path / "t.json"
    code, _, _ = run(capsys, "fit", "--table", str(t), "--target", "lat", "--features", "macs,depth",
                     "--model", "ridge", "-o", str(p))
    assert code == 0
    code, out, _ = run(capsys, "predict", "--predictor", str(p), "--table", str(t), "--json")
    vals = [r["lat"] for r in json.loads(out)]
    # a positive target is fitted in log space: a log-linear truth is recovered exactly
    np.testing.assert_allclose(vals, np.exp(0.2 + 0.3 * X[:, 0] + 0.1 * X[:, 1]), rtol=1e-4)


@pytest.mark.parametrize("argv, needle", [
    (["fit", "--space", "ofa-mbv3-w1.0", "--measurements", "NOPE.csv", "-o", "x.json"], "does not exist"),
    (["fit", "--measurements", "M", "--model", "xgb"], "-o"),
    (["fit", "evaluate", "--predictor", "P.json"], "--measurements"),
    (["predict", "--predictor", "NOPE.json", "--arch", "r224"], "does not exist"),
    (["fit", "--table", "T.csv", "-o", "x.json"], "--target"),
])
def test_user_errors_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_missing_table_entry_names_the_fill_command(tmp_path, capsys, space, table):
    import random

    d = table.save(tmp_path / "lut")
    arch = space.sample(random.Random(0), 128)  # the table has 160, 192, 224 only
    m = tmp_path / "m.csv"
    m.write_text(f"arch,latency_ms\n{arch},5.0\n{space.max_arch(224)},9.0\n")
    code, _, err = run(capsys, "fit", "--space", space.name, "--measurements", str(m), "--lut", str(d),
                       "--model", "lut", "-o", str(tmp_path / "p.json"))
    assert code == 2 and "lat-profile --device synthetic" in err


def test_fit_help_explains_both_forms(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "lat fit evaluate" in out and "--base" in out and "--table" in out
