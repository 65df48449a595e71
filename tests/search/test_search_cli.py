"""``lat search`` end to end: outputs and their schema, --json, verification on cpu, user errors."""

import csv
import json
import subprocess
import sys

import pytest

from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"
RES = [128, 160]


def lat(*args):
    return subprocess.run([sys.executable, "-m", "latkit", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fakes):
    import types

    make_lut, write_acc_csv = fakes.make_lut, fakes.write_acc_csv
    d = tmp_path_factory.mktemp("inputs")
    sp = get_space(SPACE)
    archs = [a for r in RES for a in sp.enumerate(r)]
    return types.SimpleNamespace(
        lut=make_lut(d / "lut", SPACE, RES), acc=write_acc_csv(d / "acc.csv", SPACE, archs),
        other_lut=make_lut(d / "lut_other", SPACE, RES, meta_space="ofa-mbv3-w1.0"), dir=d,
        pred=_fit_predictor(d / "pred.json", SPACE, fakes),
        other_pred=_fit_predictor(d / "pred_ofa.json", "ofa-mbv3-w1.0", fakes),
        ofa_acc=_fit_predictor(d / "acc_ofa.json", "ofa-mbv3-w1.0", fakes, target="top1"))


def _fit_predictor(path, space, fakes, target="latency_ms"):
    """A real latkit predictor file (ridge) fitted on synthetic values: tests only."""
    import random

    import numpy as np

    from latkit.predictors.io import save_predictor
    from latkit.predictors.models import make_predictor

    sp, rng = get_space(space), random.Random(0)
    archs = [sp.sample(rng) for _ in range(80)]
    fn = fakes.ms if target == "latency_ms" else fakes.top1
    pred = make_predictor("ridge", sp, target=target).fit(archs, np.array([fn(sp, a) for a in archs]))
    pred.meta_["device"] = "cpu"
    return save_predictor(pred, path)


def test_evolution_on_the_ofa_space(inputs, tmp_path):
    args = ["search", "--space", "ofa-mbv3-w1.0", "--latency", f"cpu={inputs.other_pred}",
            "--accuracy", inputs.ofa_acc, "--out", tmp_path / "o", "--json", "--no-export",
            "--population", "20", "--generations", "5"]
    p = lat(*args, "--budget-ms", "10,20")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["method"] == "evolution" and len(s["choices"]) == 2
    assert all(c["predicted_latency_ms"] <= c["budget_ms"] for c in s["choices"])
    settings = json.loads((tmp_path / "o" / "search.json").read_text())["info"]["settings"]
    assert settings["restarts"] == 4 and settings["population"] == 20
    p = lat(*args, "--budget-ms", "0.5,20")  # one infeasible budget: reported, the other answered
    assert p.returncode == 3, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "no subnet of ofa-mbv3-w1.0 meets 0.5 ms on cpu: the fastest predicted is" in line
    rows = json.loads(p.stdout)["choices"]
    assert [r["budget_ms"] for r in rows if r.get("feasible") is not False] == [20]
    (bad,) = [r for r in rows if r.get("feasible") is False]
    assert bad["budget_ms"] == 0.5 and bad["fastest_ms"] > 0.5
    p = lat(*args, "--budget-ms", "20", "--restarts", "1", "--out", tmp_path / "one")
    assert p.returncode == 0, p.stderr
    settings = json.loads((tmp_path / "one" / "search.json").read_text())["info"]["settings"]
    assert settings["restarts"] == 1
    p = lat(*args, "--budget-ms", "20", "--restarts", "0")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "error: argument --restarts: expected an integer >= 1, got 0" in p.stderr


def test_search_with_a_predictor_file(inputs, tmp_path):
    p = lat("search", "--space", SPACE, "--latency", f"cpu={inputs.pred}", "--accuracy", inputs.acc,
            "--budget-ms", "9", "--out", tmp_path / "o", "--json", "--no-export")
    assert p.returncode == 0, p.stderr
    (c,) = json.loads(p.stdout)["choices"]
    assert c["predicted_latency_ms"] <= 9 and c["device"] == "cpu"


def test_search_writes_every_output(inputs, tmp_path):
    out = tmp_path / "out"
    p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut},cuda=lut:{inputs.lut}",
            "--accuracy", inputs.acc, "--budget-ms", "8,12", "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    s = json.loads(lines[0])
    assert s["method"] == "pareto" and s["candidates"] == 486 and 0 < s["search_seconds"] < 5
    choices = json.loads((out / "choices.json").read_text())
    assert s["choices"] == choices and isinstance(choices, list) and len(choices) == 4
    for c in choices:
        assert {"device", "budget_ms", "arch", "predicted_latency_ms", "accuracy"} <= set(c)
        assert "measured_latency_ms" not in c
        assert c["predicted_latency_ms"] <= c["budget_ms"]
        assert get_space(SPACE).parse(c["arch"]).r == c["resolution"]
    assert [(c["device"], c["budget_ms"]) for c in choices] == [
        ("cpu", 8.0), ("cpu", 12.0), ("cuda", 8.0), ("cuda", 12.0)]
    assert (out / "models" / "cpu-8ms.onnx").stat().st_size > 1000
    assert (out / "models" / "cuda-12ms.onnx").is_file()
    rows = list(csv.DictReader(open(out / "pareto.csv")))
    assert {r["device"] for r in rows} == {"cpu", "cuda"}
    assert set(rows[0]) == {"device", "pos", "arch", "resolution", "predicted_latency_ms", "top1"}
    assert (out / "pareto.png").stat().st_size > 10_000
    prov = json.loads((out / "search.json").read_text())
    assert prov["space"] == SPACE and "lat" in prov["command"] and prov["versions"]["latkit"]


def test_verify_on_cpu_measures_every_choice(inputs, tmp_path):
    out = tmp_path / "out"
    p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut}", "--accuracy", inputs.acc,
            "--budget-ms", "200", "--verify", "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    (c,) = json.loads(p.stdout)["choices"]
    assert 0 < c["measured_latency_ms"] <= c["budget_ms"] and c["within_budget"] is True
    assert c["tried"] == 1 and c["measurement"]["runs"] >= 1
    assert c["model"].endswith("cpu-200ms.onnx")


def test_text_output_is_a_table(inputs, tmp_path):
    p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut}", "--accuracy", inputs.acc,
            "--budget-ms", "10", "--out", tmp_path / "o", "--no-export")
    assert p.returncode == 0, p.stderr
    table = [l for l in p.stdout.splitlines() if not l.startswith("  ")]
    assert table[0].split()[:3] == ["device", "budget", "ms"] and table[1].startswith("cpu ")
    assert not (tmp_path / "o" / "models").exists()


@pytest.mark.parametrize("case, needle", [
    ("unknown_device", "unknown device 'pixel99'"),
    ("other_space", "is for space ofa-mbv3-w1.0, not compofa-w1.0"),
    ("bad_budget", "argument --budget-ms: budgets are positive milliseconds"),
    ("bad_spec", "--latency takes DEV=PRED.json"),
    ("missing_predictor", "predictor file"),
    ("other_space_predictor", "predictor pred_ofa.json is for space ofa-mbv3-w1.0, not compofa-w1.0"),
])
def test_user_errors_are_one_line_exit_2(inputs, tmp_path, case, needle):
    lut, other = f"cpu=lut:{inputs.lut}", f"cpu=lut:{inputs.other_lut}"
    latency, budget = {
        "unknown_device": (f"pixel99=lut:{inputs.lut}", "10"),
        "other_space": (other, "10"), "bad_budget": (lut, "-3"), "bad_spec": ("cpu", "10"),
        "missing_predictor": ("cpu=nope.json", "10"),
        "other_space_predictor": (f"cpu={inputs.other_pred}", "10"),
    }[case]
    verify = ["--verify"] if case == "unknown_device" else []  # only measuring needs a device
    p = lat("search", "--space", SPACE, "--latency", latency, "--accuracy", inputs.acc,
            "--budget-ms", budget, "--out", tmp_path / "o", *verify)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    if case == "unknown_device":
        assert "known devices: cpu, cpu-tflite" in lines[0]


def test_a_table_is_searched_under_any_target_name(inputs, tmp_path):
    p = lat("search", "--space", SPACE, "--latency", f"note10=lut:{inputs.lut}", "--accuracy",
            inputs.acc, "--budget-ms", "10", "--out", tmp_path / "o", "--json")
    assert p.returncode == 0, p.stderr
    choices = json.loads((tmp_path / "o" / "choices.json").read_text())
    assert [c["device"] for c in choices] == ["note10"]
    assert choices[0]["model"].endswith("note10-10ms.onnx")
    p = lat("search", "--space", SPACE, "--latency", f"note10=lut:{inputs.lut}", "--accuracy",
            inputs.acc, "--budget-ms", "10", "--out", tmp_path / "v", "--verify")
    assert p.returncode == 2 and "unknown device 'note10'" in p.stderr and "--verify" in p.stderr


def test_an_infeasible_budget_is_reported_and_the_others_answered(inputs, tmp_path):
    p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut},cuda=lut:{inputs.lut}",
            "--accuracy", inputs.acc, "--budget-ms", "0.5", "--budget-ms", "cuda=10,0.5", "--out",
            tmp_path / "o", "--no-export")
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and all("meets 0.5 ms on" in line for line in lines)
    assert "no subnet of compofa-w1.0 in the accuracy table meets 0.5 ms on cpu" in lines[0]
    assert "INFEASIBLE: the fastest subnet is" in p.stdout
    rows = json.loads((tmp_path / "o" / "choices.json").read_text())
    answered = [(r["device"], r["budget_ms"]) for r in rows if r.get("feasible") is not False]
    assert answered == [("cuda", 10.0)]
    assert sorted((r["device"], r["budget_ms"]) for r in rows if r.get("feasible") is False) == [
        ("cpu", 0.5), ("cuda", 0.5)]
    prov = json.loads((tmp_path / "o" / "search.json").read_text())
    assert prov["budgets_ms"] == {"cpu": [0.5], "cuda": [0.5, 10.0]}


def test_per_device_budgets(inputs, tmp_path):
    p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut},cuda=lut:{inputs.lut}",
            "--accuracy", inputs.acc, "--budget-ms", "cpu=12,20", "--budget-ms", "30",
            "--out", tmp_path / "o", "--no-export", "--json")
    assert p.returncode == 0, p.stderr
    got = [(c["device"], c["budget_ms"]) for c in json.loads(p.stdout)["choices"]]
    assert got == [("cpu", 12.0), ("cpu", 20.0), ("cuda", 30.0)]
    for bad, needle in ((["--budget-ms", "pixel4=3"], "names device 'pixel4', which is not a target"),
                        (["--budget-ms", "cpu=3"], "no --budget-ms for device cuda"),
                        (["--budget-ms", "3", "--budget-ms", "4"], "not two plain lists"),
                        (["--budget-ms", "cpu=x"], "expected milliseconds")):
        p = lat("search", "--space", SPACE, "--latency", f"cpu=lut:{inputs.lut},cuda=lut:{inputs.lut}",
                "--accuracy", inputs.acc, *bad, "--out", tmp_path / "o2", "--no-export")
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert needle in p.stderr, p.stderr
