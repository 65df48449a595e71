"""once-for-all YAML tables: the real Note10 tables import, cover the space, and round-trip."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from latkit.cli import main
from latkit.errors import ArchError, LookupMiss, StoreError
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.profiler.ofa_tables import export_ofa, import_ofa
from latkit.supernet.space import get_space

W12 = get_space("ofa-mbv3-w1.2")


@pytest.fixture(scope="module")
def note10(shared_data):
    d = shared_data / "ofa_note10_lut"
    if not d.is_dir():
        pytest.skip(f"reference data {d} is absent")
    return d


@pytest.fixture(scope="module")
def note10_table(note10):
    return import_ofa(note10, W12, device="note10")


def test_note10_imports_and_covers_every_subnet(note10_table):
    imp = note10_table
    t = imp.table
    assert sorted(imp.files) == list(range(160, 225, 4))
    assert len(t) == len(W12.unique_layers(range(160, 225, 4)))  # 870 distinct layers
    assert t.meta["source"] == "once-for-all yaml" and t.meta["statistic"] == "mean"
    assert t.space == W12.name and t.device == "note10"
    rng = random.Random(0)
    for _ in range(200):
        a = W12.sample(rng, range(160, 225, 4))
        ms = t.predict_arch_sum(W12, a)
        assert 5.0 < ms < 200.0  # a Note10 runs these in tens of ms
    for r in range(160, 225, 4):  # every layer of every subnet, at every resolution
        assert t.missing(s.key for s in W12.unique_layers([r])) == []


def test_values_follow_the_yaml(note10, note10_table):
    t = note10_table.table
    raw = yaml.safe_load((note10 / "160_lookup_table.yaml").read_text())
    stem = "Conv-input:160x160x3-output:80x80x24"  # only in the 160 file: copied as is
    assert t.latency_ms(stem) == raw[stem]["mean"]
    assert t.entry(stem).std_ms == raw[stem]["std"] and t.entry(stem).runs == raw[stem]["count"]
    # Logits is in all 17 files with different means: pooled, count-weighted
    key = "Logits-input:1x1x1536-output:1000"
    vals = [yaml.safe_load(p.read_text())[key] for p in note10_table.files.values()]
    want = sum(v["count"] * v["mean"] for v in vals) / sum(v["count"] for v in vals)
    assert t.latency_ms(key) == pytest.approx(want, rel=1e-12)
    assert t.entry(key).runs == sum(v["count"] for v in vals)
    assert note10_table.pooled_keys > 0


def test_export_then_import_is_identical(note10_table, tmp_path):
    t = note10_table.table
    t.save(tmp_path / "lut")
    written = export_ofa(LookupTable.load(tmp_path / "lut"), tmp_path / "yaml")
    assert sorted(written) == list(range(160, 225, 4))
    for r, path in written.items():  # each file holds exactly the layers of that resolution
        assert set(yaml.safe_load(path.read_text())) == {s.key for s in W12.unique_layers([r])}
    back = import_ofa(tmp_path / "yaml", W12, device="note10")
    assert back.table.entries == t.entries
    assert back.pooled_keys == 0


def test_cli_import_show_export(note10, tmp_path, capsys):
    assert main(["lut", "import-ofa", str(note10), "--space", W12.name, "--out",
                 str(tmp_path / "lut"), "--device", "note10", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 870 and info["files"] == 17
    assert main(["lut", "show", str(tmp_path / "lut")]) == 0
    assert "once-for-all yaml (mean)" in capsys.readouterr().out
    assert main(["lut", "export-ofa", str(tmp_path / "lut"), "--out", str(tmp_path / "y"),
                 "--resolutions", "160,224"]) == 0
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [
        "160_lookup_table.yaml", "224_lookup_table.yaml"]


def test_wrong_space_names_the_right_one(note10, capsys):
    with pytest.raises(ArchError, match="use --space ofa-mbv3-w1.2"):
        import_ofa(note10, "ofa-mbv3-w1.0")
    assert main(["lut", "import-ofa", str(note10), "--space", "compofa-w1.0", "--out", "/tmp/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ofa-mbv3-w1.2" in err


def _small_table(space, r):
    ents = [LutEntry(s.key, s.kind, 0.1, 0.1, 0.1, 0.1, 0.01, 0.1, 10)
            for s in space.unique_layers([r])]
    return LookupTable.from_entries(ents, {"space": space.name, "resolutions": [r],
                                           "device": "cpu"})


def test_foreign_keys_and_bad_files(tmp_path):
    sp = get_space("compofa-w1.0")
    d = tmp_path / "y"
    export_ofa(_small_table(sp, 224), d)
    data = yaml.safe_load((d / "224_lookup_table.yaml").read_text())
    foreign = "expanded_conv-input:56x56x24-output:56x56x24-expand:72-kernel:7-stride:1-idskip:1-se:0-hs:0"
    data[foreign] = {"count": 5, "mean": 0.2, "std": 0.01}
    (d / "224_lookup_table.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ArchError, match="not layers of compofa-w1.0"):
        import_ofa(d, sp)
    imp = import_ofa(d, sp, skip_foreign=True)
    assert imp.foreign_keys == [foreign] and foreign not in imp.table
    (d / "224_lookup_table.yaml").write_text("Conv-input: [unclosed")
    with pytest.raises(StoreError, match="not valid YAML"):
        import_ofa(d, sp)
    (d / "224_lookup_table.yaml").write_text(yaml.safe_dump({"Logits-input:1x1x1280-output:1000":
                                                             {"count": 1, "mean": -1, "std": 0}}))
    with pytest.raises(StoreError, match="positive mean"):
        import_ofa(d, sp)
    with pytest.raises(StoreError, match="no once-for-all tables"):
        import_ofa(tmp_path, sp)


def test_export_refuses_missing_layers(tmp_path):
    sp = get_space("compofa-w1.0")
    t = _small_table(sp, 224)
    with pytest.raises(LookupMiss, match="resolution 160 needs"):
        export_ofa(t, tmp_path / "y", resolutions=[160])
    written = export_ofa(t, tmp_path / "y", resolutions=[160], allow_missing=True)
    assert written[160].is_file()
