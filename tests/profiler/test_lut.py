"""Lookup tables: the lut.csv + meta.json format, loud misses, clear errors, `lat lut show`."""

from __future__ import annotations

import csv
import json
import random

import pytest

from latkit.cli import main
from latkit.errors import ArchError, LookupMiss, StoreError
from latkit.profiler.lut import COLUMNS, LookupTable, LutEntry
from latkit.supernet.arch import ArchConfig
from latkit.supernet.space import LayerSpec, get_space

SPACE = get_space("compofa-w1.0")


def make_table(resolutions=(224,), scale=1.0) -> LookupTable:
    entries = []
    for i, s in enumerate(SPACE.unique_layers(list(resolutions))):
        v = scale * (0.05 + 0.01 * i)
        entries.append(LutEntry(s.key, s.kind, v, 0.9 * v, 1.1 * v, v, 0.01 * v, 0.01, 100 + i))
    return LookupTable.from_entries(entries, {"space": SPACE.name, "device": "cpu",
                                              "resolutions": list(resolutions)})


def test_save_load_round_trip(tmp_path):
    t = make_table()
    t.save(tmp_path / "lut", command="lat-profile --device cpu")
    back = LookupTable.load(tmp_path / "lut")
    assert back.entries == t.entries
    meta = json.loads((tmp_path / "lut" / "meta.json").read_text())
    for k in ("format", "version", "space", "resolutions", "device", "env", "versions", "command",
              "created", "entries"):
        assert k in meta
    assert meta["format"] == "latkit-lut" and meta["entries"] == len(t)
    with open(tmp_path / "lut" / "lut.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [r[0] for r in rows[1:]] == sorted(t.keys())


def test_predict_arch_sum_is_sum_of_layers(tmp_path):
    t = make_table()
    rng = random.Random(0)
    for _ in range(20):
        a = SPACE.sample(rng, 224)
        want = sum(t.latency_ms(s.key) for s in SPACE.layers(a))
        assert t.predict_arch_sum(SPACE, a) == pytest.approx(want)
        assert t.predict_arch_sum("compofa-w1.0", str(a)) == pytest.approx(want)
    assert t.latency_ms(SPACE.stem_layer(224)) == t.latency_ms(SPACE.stem_layer(224).key)


def test_miss_names_key_and_command():
    t = make_table()
    a = SPACE.max_arch(160)
    with pytest.raises(LookupMiss) as ei:
        t.predict_arch_sum(SPACE, a)
    msg = str(ei.value)
    assert "Conv-input:160x160x3" in msg
    assert "lat-profile --device cpu --space compofa-w1.0 --resolutions 160,224" in msg
    with pytest.raises(KeyError):  # LookupMiss is a KeyError too
        t.latency_ms("Conv-input:999x999x3-output:500x500x16")


def test_summary_and_show_cli(tmp_path, capsys):
    t = make_table()
    t.save(tmp_path / "lut")
    s = LookupTable.load(tmp_path / "lut").summary(top=3)
    assert s["entries"] == len(t) and s["device"] == "cpu" and s["resolutions"] == [224]
    slowest = max(t, key=lambda e: e.median_ms)
    assert s["slowest"][0]["key"] == slowest.key and len(s["slowest"]) == 3
    assert main(["lut", "show", str(tmp_path / "lut"), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert f"entries      {len(t)}" in out and slowest.key in out and "device       cpu" in out
    assert main(["lut", "show", str(tmp_path / "lut"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == len(t)


@pytest.mark.parametrize("damage", ["no_dir", "no_csv", "bad_number", "bad_meta", "dup_key",
                                    "zero_latency", "bad_header", "foreign_meta"])
def test_corrupt_table_is_one_line_error(tmp_path, capsys, damage):
    d = tmp_path / "lut"
    make_table().save(d)
    csv_path, meta_path = d / "lut.csv", d / "meta.json"
    lines = csv_path.read_text().splitlines()
    if damage == "no_dir":
        d = tmp_path / "nowhere"
    elif damage == "no_csv":
        csv_path.unlink()
    elif damage == "bad_number":
        parts = lines[1].split(",")
        parts[2] = "fast"
        csv_path.write_text("\n".join([lines[0], ",".join(parts), *lines[2:]]) + "\n")
    elif damage == "bad_meta":
        meta_path.write_text("{not json")
    elif damage == "dup_key":
        csv_path.write_text("\n".join([*lines, lines[1]]) + "\n")
    elif damage == "zero_latency":
        parts = lines[1].split(",")
        parts[2] = "0.0"
        csv_path.write_text("\n".join([lines[0], ",".join(parts), *lines[2:]]) + "\n")
    elif damage == "bad_header":
        csv_path.write_text("a,b,c\n1,2,3\n")
    elif damage == "foreign_meta":
        meta_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(StoreError):
        LookupTable.load(d)
    assert main(["lut", "show", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err


def test_from_measurement_keeps_statistics():
    from latkit.devices.base import Measurement

    m = Measurement.from_samples([1.0, 2.0, 3.0, 4.0], warmup_runs=1, env={})
    spec = SPACE.stem_layer(224)
    e = LutEntry.from_measurement(spec.key, spec.kind, m)
    assert (e.median_ms, e.mean_ms, e.runs) == (2.5, 2.5, 4)
    assert LayerSpec.parse(e.key).key == spec.key


@pytest.mark.parametrize("space_name", ["compofa-w1.0", "ofa-mbv3-w1.0"])
def test_sums_ms_equals_the_layer_sum_to_the_last_digit(space_name):
    sp = get_space(space_name)
    rs = [128, 176, 224]
    rng = random.Random(1)
    t = LookupTable.from_entries(
        [LutEntry(s.key, s.kind, v, v, v, v, 0.0, 0.0, 1)
         for s in sp.unique_layers(rs) for v in [rng.uniform(0.001, 3.0)]],
        {"space": sp.name, "device": "cpu", "resolutions": rs})
    archs = [sp.sample(rng, rs) for _ in range(2000)]
    old = [sum(t.latency_ms(s.key) for s in sp.layers(a)) for a in archs]  # what search summed
    assert t.sums_ms(sp, archs) == old  # exact, not approx
    assert t.sums_ms(space_name, archs[:5]) == [t.predict_arch_sum(sp, a) for a in archs[:5]]


def test_sums_ms_keeps_the_errors_of_the_checked_path():
    t = make_table((224,))
    missing = SPACE.max_arch(160)
    with pytest.raises(LookupMiss, match="Conv-input:160x160x3"):
        t.sums_ms(SPACE, [SPACE.max_arch(224), missing])
    partial = LookupTable.from_entries([e for e in t if "expand:" not in e.key or "-kernel:3-" in e.key],
                                       t.meta)
    a = next(a for a in SPACE.enumerate(224) if any(k == 5 for ks in a.ks for k in ks))
    with pytest.raises(LookupMiss, match="kernel:5"):
        partial.sums_ms(SPACE, [a])
    bad = ArchConfig(r=224, ks=((7, 7),) * 5, e=((3, 3),) * 5)  # CompOFA fixes the kernels
    with pytest.raises(ArchError):
        t.sums_ms(SPACE, [bad])


def _as_arrays(sp, archs):
    """(r, d, k, e) integer arrays of archs; inactive slots hold the largest choices (ignored)."""
    import numpy as np

    n, S, B = len(archs), sp.n_stages, sp.max_depth
    r = np.array([a.r for a in archs])
    d = np.array([[len(ks) for ks in a.ks] for a in archs])
    k = np.full((n, S, B), max(sp.conf.ks_choices[0]))
    e = np.full((n, S, B), max(sp.conf.e_choices))
    for i, a in enumerate(archs):
        for s in range(S):
            k[i, s, :d[i, s]], e[i, s, :d[i, s]] = a.ks[s], a.e[s]
    return r, d, k, e


@pytest.mark.parametrize("space_name", ["compofa-w1.0", "ofa-mbv3-w1.0"])
def test_sums_ms_arrays_equal_sums_ms_to_the_last_digit(space_name):
    import numpy as np

    sp = get_space(space_name)
    rs = [128, 176, 224]
    rng = random.Random(2)
    t = LookupTable.from_entries(
        [LutEntry(s.key, s.kind, v, v, v, v, 0.0, 0.0, 1)
         for s in sp.unique_layers(rs) for v in [rng.uniform(0.001, 3.0)]],
        {"space": sp.name, "device": "cpu", "resolutions": rs})
    archs = [sp.sample(rng, rs) for _ in range(2000)]
    got = t.sums_ms_arrays(sp, *_as_arrays(sp, archs))
    assert got.tolist() == t.sums_ms(sp, archs)  # exact, not approx
    gap = t.sums_ms_arrays(sp, *_as_arrays(sp, [sp.min_arch(160), sp.min_arch(224)]))
    assert np.isnan(gap[0]) and gap[1] == t.predict_arch_sum(sp, sp.min_arch(224))
