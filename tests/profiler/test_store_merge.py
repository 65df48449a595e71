"""``lat store merge A B -o C`` (issue 14, item 4): stores made on different hosts joined without
duplicates; one device measured under different settings is kept apart and reported."""

from __future__ import annotations

import json
import shutil

from latkit.cli import main
from latkit.profiler.store import open_store, settings_fingerprint


def meas(median: float) -> dict:
    return {"median_ms": median, "p10_ms": 0.9 * median, "p90_ms": 1.1 * median,
            "mean_ms": median, "std_ms": 0.01, "cv": 0.01, "runs": 20, "warmup_runs": 5,
            "samples_ms": [median] * 20, "env": {"device": "pixel4", "artifact_sha256": "ab" * 32}}


S1 = {"protocol": {"min_runs": 20}, "format": "tflite"}
S2 = {"protocol": {"min_runs": 50}, "format": "tflite"}


def test_merge_two_hosts_stores(tmp_path, capsys):
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    with open_store(a) as st:  # host A: pixel4, keys k1 k2
        st.add("layer", "k1", "sp", "pixel4", S1, meas(1.0), run_id="ra")
        st.add("layer", "k2", "sp", "pixel4", S1, meas(2.0), run_id="ra")
    shutil.copy(a, tmp_path / "a-copy.sqlite")  # the same rows reach the merge twice
    with open_store(b) as st:  # host B: pixel7, and pixel4 under other settings
        st.add("layer", "k1", "sp", "pixel7", S1, meas(3.0), run_id="rb")
        st.add("layer", "k1", "sp", "pixel4", S2, meas(1.1), run_id="rb")
    assert main(["store", "merge", str(a), str(tmp_path / "a-copy.sqlite"), str(b), "-o", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["duplicates"]) == (4, 2)
    (conflict,) = report["conflicts"]
    assert conflict["device"] == "pixel4" and set(conflict["settings"]) == {
        settings_fingerprint(S1), settings_fingerprint(S2)}
    with open_store(out, create=False) as st:
        rows = sorted((r.device, r.key, r.median_ms) for r in st.records("layer"))
        assert rows == [("pixel4", "k1", 1.0), ("pixel4", "k1", 1.1), ("pixel4", "k2", 2.0),
                        ("pixel7", "k1", 3.0)]
        assert st.latest("layer", "sp", "pixel4", settings_fingerprint(S1))["k1"].median_ms == 1.0
    # merging again adds nothing
    assert main(["store", "merge", str(a), str(b), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 rows added, 4 duplicates skipped" in text and "conflicting settings" in text
    assert main(["store", "merge", str(a), "-o", str(a)]) == 2
    assert main(["store", "merge", str(tmp_path / "nope.sqlite"), "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 2
