"""README's "Python" section runs as it stands: the notebook snippet, verbatim, on the local CPU.

It profiles, measures, fits, evaluates, trains a small supernet, tabulates accuracy and searches,
so it takes a minute or two on a quiet 2-core machine; it is the check that the README's Python tour
works on a fresh machine, as the CLI tour's commands are checked elsewhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_section() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python section holds one snippet"
    return blocks[0]


def test_snippet_is_a_dozen_lines_of_the_public_api():
    code = python_section()
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith(" ")]
    assert len(lines) <= 16
    import latkit  # noqa: PLC0415 -- the names the snippet uses must be public

    for name in set(re.findall(r"latkit\.(\w+)", code)):
        assert name in latkit.__all__, name


@pytest.mark.timeout(900)
def test_readme_python_snippet_runs(tmp_path):
    code = python_section()
    script = code + (
        "\nimport json\n"
        "print(json.dumps({'mape': ev.metrics['mape'], 'entries': len(lut), 'e2e': len(e2e), "
        "'choices': len(report.frame()), 'fig': type(report.figure()).__name__, "
        "'store': len(latkit.Store('nb/store.sqlite').frame())}))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=880)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["entries"] > 20 and out["e2e"] == 16 and out["choices"] == 1
    assert out["fig"] == "Figure" and out["store"] == 16
    assert (tmp_path / "nb" / "search" / "pareto.csv").is_file()
    choice = json.loads((tmp_path / "nb" / "search" / "choices.json").read_text())[0]
    assert choice["device"] == "cpu" and choice["predicted_latency_ms"] <= choice["budget_ms"]
