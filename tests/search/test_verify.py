"""Verification: walk down the frontier until a measured median fits; shipping the choices."""

from latkit.search.pareto import pareto_search
from latkit.search.verify import Choice, ship, verify_picks
from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"


def _search(fakes, budgets):
    sp = get_space(SPACE)
    return pareto_search(sp, [fakes.Latency(SPACE, "cpu")], fakes.Accuracy(SPACE), budgets,
                         resolutions=[128, 160])


def test_first_choice_over_budget_walks_down(fakes):
    res = _search(fakes, [10.0])
    pick = res.picks[0]
    front = res.frontiers["cpu"]
    # the device measures the first pick (and its neighbour) over budget, the rest as predicted
    slow = {str(front.archs[pick.frontier_pos]): 10.5, str(front.archs[pick.frontier_pos - 1]): 10.01}
    dev = fakes.Device(space=SPACE, ms_by_key=slow)
    (c,) = verify_picks(res, {"cpu": dev}, fakes.export)
    assert c.within_budget is True and len(c.tried) == 3
    assert c.arch == front.archs[pick.frontier_pos - 2] and c.frontier_pos == pick.frontier_pos - 2
    assert c.measured_latency_ms <= 10.0 and c.top1 < pick.top1
    assert [t["measured_latency_ms"] for t in c.tried[:2]] == [10.5, 10.01]
    d = c.to_dict(SPACE)
    assert d["tried"] == 3 and d["measured_latency_ms"] == c.measured_latency_ms
    assert d["arch"] == str(c.arch) and d["accuracy"] == c.top1


def test_over_budget_median_is_measured_again_and_the_lower_counts(fakes):
    res = _search(fakes, [10.0])
    pick = res.picks[0]
    key = str(pick.arch)
    dev = fakes.Device(space=SPACE, seq_by_key={key: [13.0, 9.7]})  # a spike, then the truth
    (c,) = verify_picks(res, {"cpu": dev}, fakes.export)
    assert c.within_budget is True and c.arch == pick.arch and len(c.tried) == 1
    assert c.measured_latency_ms == 9.7 and dev.benchmarked == [key, key]
    assert c.measurement["repeat"] == {"first_median_ms": 13.0, "second_median_ms": 9.7}
    # a second over-budget median does not rescue it: the walk goes on, each measured twice at most
    dev = fakes.Device(space=SPACE, seq_by_key={key: [13.0, 12.0]})
    (c,) = verify_picks(res, {"cpu": dev}, fakes.export)
    assert c.arch != pick.arch and c.tried[0]["measured_latency_ms"] == 12.0
    assert dev.benchmarked.count(key) == 2


def test_accepted_at_once_when_prediction_holds(fakes):
    res = _search(fakes, [8.0, 12.0])
    dev = fakes.Device(space=SPACE, factor=0.9)
    choices = verify_picks(res, {"cpu": dev}, fakes.export)
    for c, p in zip(choices, res.picks):
        assert c.within_budget and c.arch == p.arch and len(c.tried) == 1
        assert c.measured_latency_ms < c.predicted_latency_ms


def test_none_fits_is_reported_not_hidden(fakes):
    res = _search(fakes, [10.0])
    dev = fakes.Device(space=SPACE, factor=3.0)
    (c,) = verify_picks(res, {"cpu": dev}, fakes.export, max_tries=4)
    assert c.within_budget is False and len(c.tried) == 4 and c.measured_latency_ms > 10.0
    assert "none of the 4 subnets tried" in c.note and "\n" not in c.note
    assert c.arch == res.picks[0].arch  # the reported arch is still the pick, flagged


def test_shared_subnet_is_measured_once(fakes):
    res = _search(fakes, [50.0, 60.0])  # both budgets above the largest subnet: same pick
    assert res.picks[0].arch == res.picks[1].arch
    dev = fakes.Device(space=SPACE)
    verify_picks(res, {"cpu": dev}, fakes.export)
    assert len(dev.benchmarked) == 1


def test_ship_names_models_by_device_and_budget(tmp_path, fakes):
    res = _search(fakes, [9.5])
    src = tmp_path / "m.onnx"
    src.write_bytes(b"model")
    choices = [Choice.from_pick(p) for p in res.picks]
    ship(choices, tmp_path / "out", lambda arch, fmt: src, {"cpu": "onnx"})
    assert choices[0].model_path.endswith("models/cpu-9.5ms.onnx")
    assert (tmp_path / "out" / "models" / "cpu-9.5ms.onnx").read_bytes() == b"model"
