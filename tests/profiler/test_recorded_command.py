"""`lat profile` records the command exactly as typed, and the recorded command runs again.

The commands run as subprocesses of the venv's console scripts (`lat`, `lat-profile`), as a user
types them; the recorded command is then split with shlex and run again in the recorded cwd.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SMALL = ["--space", "compofa-w1.0", "--resolutions", "128", "--device", "cpu", "--quick"]


def typed(argv: list[str], cwd: str | Path) -> dict:
    """Run ``argv`` as a shell would (program looked up on PATH, the venv's bin first)."""
    if not (BIN / argv[0]).is_file():
        pytest.skip(f"no {argv[0]} console script beside {sys.executable} (pip install -e .)")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def recorded(out: Path) -> tuple[str, str]:
    """(command, cwd) as the lookup table records them; the campaign file records the same."""
    meta = json.loads((out / "meta.json").read_text())
    assert json.loads((out / "campaign.json").read_text())["command"] == meta["command"]
    return meta["command"], meta["cwd"]


@pytest.mark.parametrize("argv", [
    ["lat", "profile", *SMALL, "--limit", "3", "--out", "my lut", "--json", "--quiet"],
    ["lat-profile", *SMALL, "--limit", "2", "--out", "my lut", "--json", "--quiet"],
], ids=["lat profile", "lat-profile"])
def test_recorded_command_is_as_typed_and_runs_again(argv, tmp_path):
    cwd = tmp_path / "work dir"
    cwd.mkdir()
    n = int(argv[argv.index("--limit") + 1])
    res = typed(argv, cwd)
    assert (res["measured"], res["complete"]) == (n, True)
    command, where = recorded(cwd / "my lut")
    assert command == shlex.join(argv)  # `lat profile ...`, never `lat-profile profile ...`
    assert command.split()[0] == argv[0] and Path(where).resolve() == cwd.resolve()

    again = typed(shlex.split(command), where)  # the same command again: all of it is stored
    assert (again["measured"], again["skipped"], again["entries"]) == (0, n, n)
    assert recorded(cwd / "my lut")[0] == command
    # and continued with --resume: every argument given agrees with the campaign
    resumed = typed([*shlex.split(command), "--resume"], where)
    assert (resumed["measured"], resumed["skipped"]) == (0, n)
