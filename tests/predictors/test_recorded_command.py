"""A fitted predictor records the command exactly as typed, and that command runs again as recorded.

``lat-fit ...`` (the alias console script) must be saved as ``lat-fit ...``, not ``lat ...``, and
``lat fit ...`` as ``lat fit ...``; pasting the recorded command into a shell in the recorded
directory fits the same predictor again.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    """The environment of a shell where latkit's console scripts are on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def _same_predictor(a: dict, b: dict) -> None:
    """Same kind, parameters, learned state and provenance, but for when it was made."""
    for key in ("format", "version", "kind", "params", "table", "state"):
        assert a[key] == b[key], key
    for key in ("command", "cwd", "space", "target", "n_train", "metrics"):
        assert a["meta"][key] == b["meta"][key], key


def _write_accuracy(path: Path, space, archs) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "top1", "space"])
        for a in archs:
            w.writerow([str(a), f"{40 + space.macs(a) / 2e7:.3f}", space.name])
    return path


#: the output, relative to the working directory; the space must be quoted in the recorded command
OUT = "out dir/pred.json"


@pytest.mark.parametrize("typed", [
    ["lat-fit", "--space", "ofa-mbv3-w1.0", "--measurements", "m.csv", "--model", "ridge", "-o", OUT],
    ["lat", "fit", "--measurements", "m.csv", "--lut", "lut", "--model", "lut", "--seed", "3",
     "-o", OUT],
    ["lat", "fit", "--target", "top1", "--measurements", "acc.csv", "--model", "ridge", "-o", OUT],
    ["lat-train", "fit-accuracy", "--space", "ofa-mbv3-w1.0", "--accuracy", "acc.csv",
     "--model", "ridge", "-o", OUT],
], ids=["lat-fit", "lat fit", "lat fit --target top1", "lat-train fit-accuracy"])
def test_recorded_command_is_what_was_typed_and_runs_again(typed, tmp_path, space, data,
                                                           measurements_csv, lut_dir):
    # measurements_csv and lut_dir are tmp_path/m.csv and tmp_path/lut (conftest.py)
    archs, _ = data
    assert measurements_csv == tmp_path / "m.csv" and Path(lut_dir) == tmp_path / "lut"
    _write_accuracy(tmp_path / "acc.csv", space, archs[:60])

    first = _run([str(BIN / typed[0]), *typed[1:]], tmp_path)
    assert first.returncode == 0, first.stderr
    pred = tmp_path / OUT
    doc = _doc(pred)
    recorded = doc["meta"]["command"]
    assert recorded == shlex.join(typed)
    assert shlex.split(recorded) == typed
    assert Path(doc["meta"]["cwd"]) == tmp_path

    pred.unlink()
    again = subprocess.run(shlex.split(recorded), cwd=doc["meta"]["cwd"], env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == first.stdout.splitlines()[0]
    _same_predictor(_doc(pred), doc)
