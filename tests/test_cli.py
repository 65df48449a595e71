"""The `lat` command: JSON outputs, aliases, and user errors as one line with exit status 2."""

import json
import random
import subprocess
import sys
import time

import pytest

from latkit.supernet.space import get_space, list_spaces


def lat(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "latkit", *args], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_space_list_and_enumerate():
    out = lat("space", "list", "--json").stdout
    names = [r["name"] for r in json.loads(out)]
    assert names == list_spaces()
    rows = json.loads(lat("space", "enumerate", "--space", "compofa-w1.0", "--resolution", "160", "--json").stdout)
    assert len(rows) == 243 and len({r["key"] for r in rows}) == 243
    assert all(set(r) >= {"key", "ks", "e", "d", "r"} for r in rows)


def test_describe_json_fields():
    arch = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    d = json.loads(lat("space", "describe", "--space", "ofa-mbv3-w1.0", "--arch", json.dumps(arch), "--json").stdout)
    assert d["params"] == 7_664_760 and round(d["macs"] / 1e6, 1) == 566.2
    assert d["key"] == "r224-k7777.7777.7777.7777.7777-e6666.6666.6666.6666.6666"
    assert d["space"] == "ofa-mbv3-w1.0" and d["resolution"] == 224
    assert all({"key", "macs"} <= set(l) for l in d["layers"])


def test_sample_is_seeded():
    a = lat("space", "sample", "--space", "ofa-mbv3-w1.0", "-n", "5", "--seed", "3", "--json").stdout
    b = lat("space", "sample", "--space", "ofa-mbv3-w1.0", "-n", "5", "--seed", "3", "--json").stdout
    assert a == b and len(json.loads(a)) == 5


@pytest.mark.parametrize("name", list_spaces())
def test_describe_1000_archs_under_5s(name, tmp_path):
    sp, rng = get_space(name), random.Random(0)
    f = tmp_path / "archs.txt"
    f.write_text("\n".join(str(sp.sample(rng)) for _ in range(1000)))
    t = time.perf_counter()
    out = lat("space", "describe", "--space", name, "--archs", str(f), "--json").stdout
    assert time.perf_counter() - t < 5.0
    assert len(json.loads(out)) == 1000


@pytest.mark.parametrize(
    "args, needle",
    [
        (["space", "describe", "--space", "nope", "--arch", "r224-k33.33.33.33.33-e33.33.33.33.33"], "unknown space"),
        (["space", "describe", "--space", "ofa-mbv3-w1.0", "--arch", "r224-k33"], "malformed arch"),
        (["space", "describe", "--space", "ofa-mbv3-w1.0", "--arch", "{bad json"], "does not parse"),
        (["export", "--space", "ofa-mbv3-w1.0", "--arch", "r128-k33.33.33.33.33-e33.33.33.33.33",
          "-o", "/proc/forbidden/x.onnx"], "cannot"),
        (["space", "frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, needle):
    p = lat(*args, check=False)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_export_cli_verifies(tmp_path):
    out = tmp_path / "m.onnx"
    d = json.loads(lat("export", "--space", "compofa-w1.0", "--arch", "r128-k33.555.33.333.55-e33.444.33.444.33",
                       "-o", str(out), "--verify", "--json").stdout)
    assert out.is_file() and d["max_abs_diff"] < 1e-4
