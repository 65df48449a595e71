"""``lat space derive``: a family from two devices' latency predictors, its report and its file."""

import json
import subprocess
import sys

import numpy as np
import pytest

from latkit.search.derive import Noise, choose_members, derive_family, device_noise
from latkit.search.protocols import latency_source
from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"
RES = [128, 160]


def lat(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "latkit", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _fit(path, fn, device):
    """A real latkit predictor file (ridge) fitted on synthetic latencies: tests only."""
    import random

    from latkit.predictors.api import fit_arch_regressor
    from latkit.predictors.io import save_predictor

    sp, rng = get_space(SPACE), random.Random(0)
    archs = [sp.sample(rng) for _ in range(120)]
    pred = fit_arch_regressor(sp, archs, [fn(sp, a) for a in archs], model="ridge",
                              target="latency_ms")
    pred.meta_["device"] = device
    return save_predictor(pred, path)


def _cpu(sp, a):  # MACs-bound
    return sp.macs(a) / 2e7 + 0.02 * len(sp.layers(a))


def _phone(sp, a):  # layer-count-bound: a different ranking than the cpu's
    return sp.macs(a) / 8e7 + 0.25 * len(sp.layers(a))


@pytest.fixture(scope="module")
def preds(tmp_path_factory):
    d = tmp_path_factory.mktemp("derive")
    return {"dir": d, "cpu": _fit(d / "cpu.json", _cpu, "cpu"), "phone": _fit(d / "phone.json", _phone, "phone")}


def _latency(preds):
    return [("cpu", str(preds["cpu"])), ("phone", str(preds["phone"]))]


def test_a_derived_family_covers_every_budget_and_is_spaced_by_the_noise(preds):
    sp = get_space(SPACE)
    budgets = {"cpu": [10.0, 14.0, 18.0], "phone": [8.0, 9.0]}
    der = derive_family(SPACE, _latency(preds), budgets, noise_ms={"cpu": 0.3}, resolutions=RES)
    members = der.members
    assert 0 < len(members) < sp.num_subnets() * len(RES)
    assert not der.infeasible
    rep = der.report
    for d, bs in budgets.items():
        assert rep["devices"][d]["covered"] == len(bs)
        for row in rep["devices"][d]["budgets"]:
            assert row["family_best"]["latency_ms"] <= row["budget_ms"]
            assert row["gap_top1"] >= -1e-9  # the family is part of the space
    assert rep["devices"]["cpu"]["noise"]["source"] == "given (--noise-ms)"
    # no two members are within the noise of each other on every device
    srcs = [latency_source(d, s, sp) for d, s in _latency(preds)]
    ms = np.stack([s.predict_ms(members) for s in srcs])
    noise = [der.noise["cpu"], der.noise["phone"]]
    for i in range(len(members)):
        for j in range(i):
            close = [abs(ms[d, i] - ms[d, j]) <= noise[d].at(min(ms[d, i], ms[d, j])) for d in range(2)]
            assert not all(close), (members[i], members[j])
    # a larger noise gives a smaller family; --size caps it
    wide = derive_family(SPACE, _latency(preds), budgets, noise_ms={"cpu": 1.5, "phone": 1.0},
                         resolutions=RES)
    assert len(wide.members) < len(members)
    capped = derive_family(SPACE, _latency(preds), budgets, noise_ms={"cpu": 0.3}, resolutions=RES,
                           size=6)
    assert len(capped.members) <= 6 and capped.spacing > 1
    assert all(v["covered"] == v["of"] for v in capped.report["devices"].values())


def test_choose_members_keeps_the_macs_frontier():
    # four candidates on one device: #2 is slower than #1 with fewer MACs (off the frontier)
    lat = np.array([[1.0, 2.0, 2.5, 4.0]])
    macs = np.array([10.0, 20.0, 15.0, 40.0])
    got = choose_members(lat, macs, [[5.0]], [Noise(0.1, None, "t")], 1.0)
    assert got == [0, 1, 3]
    got = choose_members(lat, macs, [[5.0]], [Noise(1.5, None, "t")], 1.0)
    assert got == [0, 3]  # 2.0 is within 1.5 ms of 1.0


def test_noise_comes_from_what_the_predictor_records(preds):
    sp = get_space(SPACE)
    src = latency_source("cpu", str(preds["cpu"]), sp)
    n = device_noise(src)
    assert n.pct is not None and "cross-validated" in n.source
    src.predictor.meta_["noise_floor"] = {"figure_mape": 1.7}
    assert device_noise(src).pct == 1.7 and "noise floor" in device_noise(src).source
    assert device_noise(src, 0.2).ms == 0.2


def test_cli_writes_a_family_with_its_provenance_and_reports_infeasible(preds, tmp_path):
    out = tmp_path / "fam.json"
    p = lat("space", "derive", "--from", SPACE, "--latency", f"cpu={preds['cpu']},phone={preds['phone']}",
            "--budget-ms", "cpu=0.5,12", "--budget-ms", "9", "--resolutions", "128,160",
            "--noise-ms", "cpu=0.3", "-o", out)
    assert p.returncode == 3, p.stderr  # cpu 0.5 ms is infeasible: reported, the rest answered
    assert "INFEASIBLE: the fastest subnet of the space is" in p.stdout
    assert "phone: covers 1/1 budgets" in p.stdout and "cpu: covers 1/2 budgets" in p.stdout
    doc = json.loads(out.read_text())
    deriv = doc["derivation"]
    assert doc["parent"] == SPACE and deriv["budgets_ms"] == {"cpu": [0.5, 12.0], "phone": [9.0]}
    assert deriv["command"].startswith("lat space derive --from compofa-w1.0")
    import hashlib
    assert deriv["latency"]["cpu"]["sha256"] == hashlib.sha256(preds["cpu"].read_bytes()).hexdigest()
    assert deriv["noise"]["cpu"]["ms"] == 0.3 and deriv["noise"]["phone"]["pct"] > 0
    assert deriv["report"]["infeasible"][0]["budget_ms"] == 0.5
    fam = get_space(str(out))  # the family is a space: searched over its members only
    p = lat("space", "enumerate", "--space", out)
    assert p.returncode == 0 and len(p.stdout.split()) == len(fam.members)
    p = lat("space", "derive", "--from", SPACE, "--latency", f"cpu={preds['cpu']}", "--budget-ms",
            "phone=3", "-o", tmp_path / "x.json")
    assert p.returncode == 2 and "not a target" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_a_family_is_searched_over_its_members_with_the_parents_accuracy_table(preds, tmp_path):
    from latkit.search.derive import write_family

    sp = get_space(SPACE)
    budgets = {"cpu": [12.0, 18.0], "phone": [9.0]}
    der = derive_family(SPACE, _latency(preds), budgets, resolutions=[128])
    fam = write_family(der, tmp_path / "fam.json", _latency(preds))
    acc = tmp_path / "acc.csv"  # the whole parent space at 128: a family keeps its members' rows
    acc.write_text("arch,top1\n" + "".join(f"{a},{50 + sp.macs(a) / 1e7:.3f}\n" for a in sp.enumerate(128)))
    p = lat("search", "--space", fam, "--latency", f"cpu={preds['cpu']},phone={preds['phone']}",
            "--accuracy", acc, "--budget-ms", "cpu=12,18", "--budget-ms", "9", "--out", tmp_path / "s",
            "--no-export", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["candidates"] == len(der.members)
    assert {c["arch"] for c in s["choices"]} <= {str(a) for a in der.members}
    prov = json.loads((tmp_path / "s" / "search.json").read_text())
    assert prov["family"]["path"] == str(fam) and prov["family"]["members"] == len(der.members)
