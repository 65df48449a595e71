"""The shared command-line options: one definition each, mapped onto the library's names."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from latkit import cli_args


def parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    cli_args.add_device(p, several=True)
    cli_args.add_space(p)
    cli_args.add_resolutions(p)
    cli_args.add_seed(p)
    cli_args.add_out(p, required=False)
    cli_args.add_json(p)
    cli_args.add_device_and_protocol(p, **kw)
    return p


def test_options_parse_to_plain_values_and_map_onto_the_library():
    args = parser().parse_args(["--device", "cpu,pixel4", "--resolutions", "128-224:8", "--seed",
                                "3", "--threads", "2", "--serial", "h:1", "--min-runs", "7",
                                "--warmup-time", "0.5", "--quick", "--realtime"])
    assert args.device == "cpu,pixel4" and args.resolutions == "128-224:8" and args.seed == 3
    assert cli_args.device_options(args) == {"threads": 2, "serial": "h:1"}
    assert cli_args.protocol_overrides(args) == {"min_runs": 7, "warmup_s": 0.5}
    assert args.quick is True and args.realtime == cli_args.DEFAULT_REALTIME_PRIORITY
    assert cli_args.protocol_overrides({"max_time": 2.0, "min_time": None}) == {"max_time_s": 2.0}
    blank = parser().parse_args([])
    assert blank.quick is None and blank.realtime is None and blank.json is False
    assert cli_args.device_options(blank) == {} and cli_args.protocol_overrides(blank) == {}
    sub = argparse.ArgumentParser()
    cli_args.add_space(sub, dest="eval_space")
    cli_args.add_out(sub, required=False, default="out/x", dest="export_out")
    named = sub.parse_args(["--space", "compofa-w1.0"])
    assert (named.eval_space, named.export_out) == ("compofa-w1.0", "out/x")
    assert "(default out/x)" in sub.format_help()


def test_a_subset_of_the_protocol_with_defaults_in_the_help():
    p = parser(protocol=("warmup_runs", "min_runs"), defaults={"min_runs": 20})
    assert "(default 20)" in p.format_help() and "--max-time" not in p.format_help()
    assert p.parse_args([]).min_runs is None  # a default is only shown: the command applies it
    with pytest.raises(SystemExit):
        p.parse_args(["--quick"])
    with pytest.raises(ValueError, match="unknown protocol option"):
        parser(protocol=("min_runs", "nosuch"))


def test_imports_no_product_package():
    code = ("import sys, latkit.cli_args; "
            "print([m for m in sys.modules if m.split('.')[:2] in ([\"latkit\", p] for p in "
            "('devices', 'supernet', 'profiler', 'predictors', 'search'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_subset_of_the_device_options():
    p = argparse.ArgumentParser()
    cli_args.add_device_options(p, options=("serial",))
    assert cli_args.device_options(p.parse_args(["--serial", "h:5555"])) == {"serial": "h:5555"}
    assert "--threads" not in p.format_help() and "--delegate" not in p.format_help()
    with pytest.raises(SystemExit):
        p.parse_args(["--threads", "2"])
    ordered = argparse.ArgumentParser()
    flags = [a.option_strings[0] for a in cli_args.add_device_options(ordered, options=("serial", "threads"))]
    assert flags == ["--serial", "--threads"]
    with pytest.raises(ValueError, match="unknown device option"):
        cli_args.add_device_options(argparse.ArgumentParser(), options=("nosuch",))


# ---- budgets: one list for every device, or per device ----


def test_budget_specs_per_device_and_plain():
    import argparse

    from latkit.cli_args import budget_spec, resolve_budgets

    assert budget_spec("5,10") == (None, [5.0, 10.0])
    assert budget_spec("cpu=3, 5") == ("cpu", [3.0, 5.0])
    specs = [budget_spec("cpu=8,3,5"), budget_spec("20,30")]
    assert resolve_budgets(specs, ["cpu", "pixel4", "note10"]) == {
        "cpu": [3.0, 5.0, 8.0], "pixel4": [20.0, 30.0], "note10": [20.0, 30.0]}
    assert resolve_budgets("cpu=3;pixel4=20", ["cpu", "pixel4"]) == {"cpu": [3.0], "pixel4": [20.0]}
    for bad in ("", "=3", "cpu=", "cpu=fast", "0", "-1", "nan", "inf", "3,,x"):
        with pytest.raises(argparse.ArgumentTypeError):
            budget_spec(bad)
    for specs, needle in (([budget_spec("x=3")], "not a target"),
                          ([budget_spec("cpu=3"), budget_spec("cpu=4")], "twice"),
                          ([budget_spec("3"), budget_spec("4")], "two plain lists"),
                          ([budget_spec("cpu=3")], "no --budget-ms for device pixel4")):
        with pytest.raises(ValueError, match=needle):
            resolve_budgets(specs, ["cpu", "pixel4"])
