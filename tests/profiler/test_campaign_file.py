"""A campaign resumes through the library alone (no argparse), and old campaign files still resume."""

from __future__ import annotations

import csv
import json

import pytest

from latkit.errors import LatkitError, StoreError
from latkit.profiler.campaign import layer_jobs, run_layer_campaign
from latkit.profiler.campaign_file import (
    LAYER_KEYS,
    NETWORK_KEYS,
    CampaignSpec,
    campaign_path,
    load_campaign,
    resume_e2e_campaign,
    resume_layer_campaign,
    run_campaign,
    save_campaign,
)
from latkit.profiler.lut import LookupTable
from latkit.profiler.store import MeasurementStore
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")
ARGS = dict(device="cpu", space=SPACE.name, resolutions="128", limit=3, quick=True)


def test_a_killed_campaign_resumes_through_the_library(tmp_path):
    out = tmp_path / "lut"
    spec = CampaignSpec.new("layer", command="my_script.py --go", **ARGS)
    # what a campaign killed after two of its three layers leaves: its campaign file and a store
    # holding those two (measured with the campaign's own settings)
    save_campaign(out, spec.normalised())
    first = run_layer_campaign(SPACE, [128], "cpu", out / "store.sqlite", tmp_path / "elsewhere",
                               settings=spec.normalised().settings(), limit=2)
    assert first.measured == 2 and not (out / "lut.csv").exists()

    res = resume_layer_campaign(out)
    assert (res.measured, res.skipped, res.entries, res.complete) == (1, 2, 3, True)
    table = LookupTable.load(out)
    assert sorted(table.keys()) == sorted(j.key for j in layer_jobs(SPACE, [128], 3))
    assert table.meta["command"] == "my_script.py --go"  # a library resume keeps the command
    assert table.meta["cwd"] and table.meta["partial"] is False
    again = resume_layer_campaign(out, command="again.py", seed=0, quick=True)  # agree: fine
    assert (again.measured, again.skipped) == (0, 3)
    assert load_campaign(out).command == "again.py"


def test_explicit_arguments_must_agree_with_the_campaign(tmp_path):
    saved = CampaignSpec.new("layer", **ARGS).normalised()
    same = saved.resumed({"resolutions": "128-128", "seed": 0, "dynamic_hw": True, "threads": None})
    assert same.args == saved.args
    moved = saved.resumed({"serial": "10.0.0.2:5555"})  # where a device is may change
    assert moved["serial"] == "10.0.0.2:5555"
    for given, said in (({"limit": 4}, "limit = 4 "), ({"threads": 2}, "threads = 2 "),
                        ({"resolutions": "128,160"}, "resolutions = '128,160' "),
                        ({"dynamic_hw": False}, "dynamic_hw = False ")):
        with pytest.raises(LatkitError, match=f"{said}disagrees with the campaign"):
            saved.resumed(given)
    with pytest.raises(LatkitError, match="take no argument"):
        saved.resumed({"nosuch": 1})
    assert saved.resumed({}, remeasure=True).remeasure is True


def test_campaign_file_round_trip_and_errors(tmp_path):
    spec = CampaignSpec.new("network", device="cpu", space=SPACE.name, n=2, command="c",
                            remeasure=True)
    out = tmp_path / "e2e.csv"
    path = save_campaign(out, spec)
    assert path == campaign_path(out, "network") == tmp_path / "e2e.csv.campaign.json"
    rec = json.loads(path.read_text())
    assert set(rec["args"]) == set(NETWORK_KEYS) and rec["kind"] == "network"
    assert load_campaign(out, "network") == spec
    with pytest.raises(StoreError, match="not a latkit layer campaign file"):
        CampaignSpec.from_record(rec, "layer")
    with pytest.raises(StoreError, match="nothing to resume"):
        load_campaign(tmp_path / "none")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "campaign.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        load_campaign(tmp_path / "bad")


def test_a_campaign_file_written_before_resumes(tmp_path):
    """The file the CLI wrote before campaigns were library code (resolutions as a list too)."""
    out = tmp_path / "lut"
    out.mkdir()
    args = {k: None for k in LAYER_KEYS}
    args.update(device="cpu", space=SPACE.name, resolutions=[128], limit=2, quick=True)
    (out / "campaign.json").write_text(json.dumps({
        "format": "latkit-campaign", "version": 1, "kind": "layer",
        "command": "lat-profile profile --device cpu", "args": args, "remeasure": False,
        "measured_after_id": None}, indent=2, sort_keys=True))
    res = resume_layer_campaign(out)
    assert (res.measured, res.entries, res.complete) == (2, 2, True)
    rec = json.loads((out / "campaign.json").read_text())
    assert rec["args"]["resolutions"] == "128" and rec["args"]["dynamic_hw"] is True


def test_a_network_campaign_resumes_through_the_library(tmp_path):
    out = tmp_path / "e2e.csv"
    spec = CampaignSpec.new("network", device="cpu", space=SPACE.name, n=2, seed=3,
                            resolutions="128", quick=True, command="first")
    res = run_campaign(spec, out)
    assert (res.measured, res.entries, res.complete) == (2, 2, True)
    rows = list(csv.DictReader(open(out)))
    res = resume_e2e_campaign(out)
    assert (res.measured, res.skipped, res.entries) == (0, 2, 2)
    assert list(csv.DictReader(open(out))) == rows
    meta = json.loads(out.with_name("e2e.csv.meta.json").read_text())
    assert meta["command"] == "first" and meta["cwd"]
    with MeasurementStore(tmp_path / "store.sqlite") as st:
        assert st.count() == 2
