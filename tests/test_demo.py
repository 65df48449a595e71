"""``lat demo --quick``: every step runs through the library and every verified choice fits."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "latkit", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for header in ("[1/8] supernet", "[2/8] accuracy", "[3/8] lookup table", "[4/8] end to end",
                   "[5/8] predictor", "[6/8] search", "[7/8] verification", "[8/8] report"):
        assert header in p.stdout
    rep = json.loads((out / "demo.json").read_text())
    choices = json.loads((out / "search" / "choices.json").read_text())
    assert len(choices) == len(rep["budgets_ms"]) >= 2
    acc = (out / "acc.csv").read_text()
    for c in choices:
        assert c["within_budget"] is True and c["measured_latency_ms"] <= c["budget_ms"]
        assert c["arch"] in acc  # accuracy and latency refer to the same subnet
        assert (out / "search" / "models" / f"cpu-{c['budget_ms']:g}ms.onnx").is_file()
    assert (out / "search" / "pareto.png").stat().st_size > 10_000
