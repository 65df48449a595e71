"""The Python API: latkit's names, tables through pandas (CSV and Parquet), DataFrames in and out.

The synthetic device of tests/predictors/conftest.py provides the measurements: nothing here needs a
device, so the module is fast; the README's notebook snippet runs on the real CPU device in
tests/test_readme_python.py.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import latkit
from latkit.errors import ArchError, LatkitError, OutputError, PredictorError, StoreError
from latkit.predictors.api import fit_latency, read_measurements
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.profiler.store import MeasurementStore
from latkit.supernet.space import get_space
from latkit.tables import LINE, TableError, numbers, read_table, write_table

SPACE = "ofa-mbv3-w1.0"


# ---------------------------------------------------------------------------------------------
# The names
# ---------------------------------------------------------------------------------------------


def test_every_public_name_resolves_and_all_is_the_list():
    assert latkit.__all__ == ["__version__", *sorted(latkit._API)]
    for name in latkit._API:
        obj = getattr(latkit, name)
        assert obj is not None, name
        assert callable(obj) or isinstance(obj, type), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        latkit.nope  # noqa: B018 -- the attribute access is the test


def test_import_latkit_stays_light():
    code = ("import sys, latkit; heavy = [m for m in ('torch', 'pandas', 'sklearn', 'xgboost', "
            "'onnxruntime', 'matplotlib') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_cli_command_has_its_api_function():
    """The library call behind each command is public (the CLI adds parsing and printing only)."""
    behind = {"profile": "profile", "measure": "measure", "fit": "fit_latency",
              "fit evaluate": "evaluate_predictor", "train": "train", "train eval": "accuracy_table",
              "search": "run_search", "lut import-ofa": "import_ofa_tables", "store merge":
              "merge_stores", "store export": "Store", "space": "get_space", "bench": "get_device",
              "export": "export_arch", "device list": "list_devices"}
    for cmd, name in behind.items():
        assert name in latkit.__all__, (cmd, name)


# ---------------------------------------------------------------------------------------------
# The one reader and writer
# ---------------------------------------------------------------------------------------------


def test_read_table_errors_are_one_line_naming_file_and_line(tmp_path):
    p = tmp_path / "t.csv"
    with pytest.raises(TableError, match=r"does not exist; write one"):
        read_table(p, hint="write one")
    p.write_bytes(b"arch,latency_ms\nr160-\xff\xfe,1\n")
    with pytest.raises(TableError, match=r"not UTF-8 text \(line 2: byte 0xff\); save it as UTF-8"):
        read_table(p)
    p.write_text("# a comment\narch,latency_ms\n\nx,1\ny,2,3\n")
    with pytest.raises(TableError, match=r"line 5 has 3 fields, the header 2"):
        read_table(p)
    p.write_text("arch,latency_ms,arch\nx,1,y\n")
    with pytest.raises(TableError, match=r"repeats column\(s\) arch"):
        read_table(p)
    p.write_text("arch,ms\nx,1\n")
    with pytest.raises(PredictorError, match=r"needs column\(s\) arch,latency_ms; missing "
                       r"latency_ms \(found arch,ms\)"):
        read_table(p, required=["arch", "latency_ms"], error=PredictorError)
    with pytest.raises(TableError, match="is not a regular file"):
        read_table(tmp_path)
    for err in (TableError, PredictorError):
        assert issubclass(err, LatkitError)


def test_read_table_keeps_file_line_numbers_and_strings(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("# made by hand\narch,latency_ms,note\n\nx,1.50,\n# skipped\ny,002,a b\n")
    f = read_table(p)
    assert list(f[LINE]) == [4, 6]
    assert list(f["latency_ms"]) == ["1.50", "002"]  # as written: checks decide what is a number
    assert list(f["note"]) == ["", "a b"]
    assert numbers(f, "latency_ms", p, positive=True) == [1.5, 2.0]
    f.loc[1, "latency_ms"] = "nan"
    with pytest.raises(TableError, match=rf"{p}:6: latency_ms must be a finite number, found 'nan'"):
        numbers(f, "latency_ms", p)
    f.loc[1, "latency_ms"] = "-1"
    with pytest.raises(TableError, match=r":6: latency_ms must be positive"):
        numbers(f, "latency_ms", p, positive=True)
    f.loc[0, "latency_ms"], f.loc[1, "latency_ms"] = "1", "2.5"
    with pytest.raises(TableError, match=r":6: latency_ms must be a whole number"):
        numbers(f, "latency_ms", p, integral=True)
    with pytest.raises(TableError, match=r":6: latency_ms must be in 0..2"):
        numbers(f, "latency_ms", p, lo=0, hi=2)


def test_write_table_round_trips_floats_exactly_and_refuses_non_files(tmp_path):
    rng = np.random.default_rng(0)
    vals = list(rng.random(50) * 10) + [1 / 3, 1e-300, 123456789.123456789, 0.1 + 0.2]
    p = write_table([{"k": f"a{i}", "v": v} for i, v in enumerate(vals)], tmp_path / "t.csv")
    back = read_table(p)
    assert [float(x) for x in back["v"]] == vals  # bit for bit
    assert p.read_text().splitlines()[0] == "k,v"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError):
        write_table([{"k": 1}], fifo)
    link = tmp_path / "link.csv"
    link.symlink_to(p)
    with pytest.raises(OutputError):
        write_table([{"k": 1}], link)
    assert [float(x) for x in read_table(p)["v"]] == vals  # the target is untouched


def test_parquet_beside_csv(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs the parquet extra (pyarrow)")
    rows = [{"arch": "a", "latency_ms": 1 / 3, "runs": 20}, {"arch": "b", "latency_ms": 2.5, "runs": 7}]
    p = write_table(rows, tmp_path / "t.parquet")
    assert p.read_bytes()[:4] == b"PAR1"
    f = read_table(p)
    assert list(f["arch"]) == ["a", "b"] and [float(x) for x in f["latency_ms"]] == [1 / 3, 2.5]
    assert list(f[LINE]) == [1, 2]
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TableError, match="is not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet")


# ---------------------------------------------------------------------------------------------
# DataFrames out: the store, lookup tables, measurements
# ---------------------------------------------------------------------------------------------


def _meas(median: float, env: dict | None = None) -> dict:
    return {"median_ms": median, "p10_ms": 0.9 * median, "p90_ms": 1.1 * median,
            "mean_ms": median, "std_ms": 0.01, "cv": 0.01, "runs": 20, "warmup_runs": 5,
            "samples_ms": [median] * 20,
            "env": env or {"device": "cpu", "threads": 2, "affinity_cpus": [0, 1]}}


def test_store_frame_one_row_per_measurement_with_environment_columns(tmp_path):
    arch = str(get_space(SPACE).max_arch(160))
    with MeasurementStore(tmp_path / "s.sqlite") as st:
        st.add("layer", "Conv-x", SPACE, "cpu", {"format": "onnx"}, _meas(0.5))
        st.add("network", arch, SPACE, "cpu", {"format": "onnx", "precision": "int8"}, _meas(3.0))
        st.add("network", arch, SPACE, "cpu", {"format": "onnx", "precision": "int8"}, _meas(3.2))
        f = st.frame()
        assert len(f) == 3 and list(f["kind"]) == ["layer", "network", "network"]
        assert list(f["arch"]) == ["", arch, arch] and list(f["precision"]) == ["fp32", "int8", "int8"]
        assert f["median_ms"].dtype == float and list(f["median_ms"]) == [0.5, 3.0, 3.2]
        assert list(f["env_threads"]) == [2, 2, 2]
        assert json.loads(f["env_affinity_cpus"][0]) == [0, 1]
        assert list(f["setting_format"]) == ["onnx"] * 3
        latest = st.frame("network", latest=True)
        assert list(latest["median_ms"]) == [3.2]
        assert len(st.frame(device="cuda")) == 0
        with pytest.raises(StoreError, match="unknown store column"):
            st.frame(colour="red")


def test_store_export_cli(tmp_path, run_lat):
    with MeasurementStore(tmp_path / "s.sqlite") as st:
        st.add("layer", "Conv-x", SPACE, "cpu", {"format": "onnx"}, _meas(0.5))
    r = run_lat("store", "export", str(tmp_path / "s.sqlite"), "-o", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    f = pd.read_csv(tmp_path / "s.csv")
    assert list(f["key"]) == ["Conv-x"] and float(f["median_ms"][0]) == 0.5
    r = run_lat("store", "export", str(tmp_path / "none.sqlite"), "-o", str(tmp_path / "n.csv"))
    assert r.returncode == 2 and "does not exist" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "n.csv").exists()


def test_lookup_table_frame_and_round_trip(tmp_path):
    entries = [LutEntry(f"Conv-{i}", "Conv", v, v, v, v, 0.0, 0.0, 20)
               for i, v in enumerate([1 / 3, 0.1 + 0.2, 7.0])]
    t = LookupTable.from_entries(entries, {"space": SPACE, "device": "cpu", "resolutions": [160]})
    t.save(tmp_path / "lut")
    back = LookupTable.load(tmp_path / "lut")
    assert back.entries == t.entries  # floats bit for bit through the pandas writer and reader
    f = back.frame()
    assert list(f["key"]) == ["Conv-0", "Conv-1", "Conv-2"] and list(f["device"]) == ["cpu"] * 3
    assert list(f["median_ms"]) == [1 / 3, 0.1 + 0.2, 7.0]
    (tmp_path / "lut" / "lut.csv").write_text("key,median_ms\nConv-0,1\n")
    with pytest.raises(StoreError, match=r"needs column\(s\).*missing p10_ms"):
        LookupTable.load(tmp_path / "lut")


def _layer_ms(spec) -> float:
    return 0.02 + spec.macs / 30e6 * (1.3 if spec.kernel == 7 else 1.0)


@pytest.fixture
def synthetic(tmp_path):
    """A synthetic device: layers cost launch + MACs / throughput, a subnet 1.1 x their sum + 0.3."""
    space = get_space(SPACE)
    entries = [LutEntry(s.key, s.kind, v, v, v, v, 0.0, 0.0, 20)
               for s in space.unique_layers([160, 192]) for v in [_layer_ms(s)]]
    table = LookupTable.from_entries(entries, {"space": SPACE, "resolutions": [160, 192],
                                               "device": "synthetic"})
    rng = random.Random(1)
    archs = list({str(a): a for a in (space.sample(rng, [160, 192]) for _ in range(60))}.values())
    y = [1.1 * sum(_layer_ms(s) for s in space.layers(a)) + 0.3 + 0.001 * (i % 7)
         for i, a in enumerate(archs)]
    path = write_table([{"arch": str(a), "latency_ms": v, "space": SPACE, "device": "synthetic",
                         "runs": 20} for a, v in zip(archs, y, strict=True)], tmp_path / "m.csv")
    return space, table, path, archs, y


def test_read_measurements_frame_and_dataframe_input(synthetic):
    space, table, path, archs, y = synthetic
    f = latkit.read_measurements(path)
    assert list(f["arch"]) == [str(a) for a in archs] and list(f["latency_ms"]) == y
    assert list(f["resolution"]) == [a.r for a in archs] and f["runs"].dtype.kind == "i"
    m_path, m_frame = read_measurements(path), read_measurements(f)
    assert m_path.archs == m_frame.archs and list(m_path.values) == list(m_frame.values)
    bad = f.copy()
    bad.loc[3, "latency_ms"] = -1.0
    with pytest.raises(PredictorError, match=r"DataFrame row:3: latency_ms must be a positive"):
        read_measurements(bad)


def test_predict_takes_archs_keys_series_or_frame_alike(synthetic, tmp_path):
    space, table, path, archs, y = synthetic
    frame = latkit.read_measurements(path)
    for model in ("lut", "xgb"):
        from_file = fit_latency(SPACE, path, model, lut=table)
        from_frame = latkit.fit_latency(SPACE, frame, model, lut=table)
        ref = from_file.predict(archs)
        assert np.array_equal(ref, from_frame.predict(archs))
        latkit.save_predictor(from_frame, tmp_path / f"{model}.json")
        pred = latkit.load_predictor(tmp_path / f"{model}.json")
        for X in ([str(a) for a in archs], frame["arch"], frame, frame[["arch"]]):
            assert np.array_equal(pred.predict(X), ref), (model, type(X))
    with pytest.raises(PredictorError, match="needs an 'arch' column"):
        pred.predict(frame.drop(columns=["arch"]))
    with pytest.raises(ArchError):
        pred.predict(pd.Series(["r160-nonsense"]))


def test_evaluate_predictor_frame_and_figure(synthetic):
    from matplotlib.figure import Figure  # noqa: PLC0415

    space, table, path, archs, y = synthetic
    pred = latkit.fit_latency(SPACE, path, "lut", lut=table)
    ev = latkit.evaluate_predictor(pred, path)
    assert list(ev.frame.columns) == ["arch", "resolution", "measured", "predicted", "error_pct"]
    err = np.abs(ev.frame["predicted"] - ev.frame["measured"]) / ev.frame["measured"]
    assert abs(100 * err.mean() - ev.metrics["mape"]) < 1e-9
    fig = ev.figure()
    assert isinstance(fig, Figure) and "MAPE" in fig.axes[0].get_title()
    assert fig.axes[0].get_xscale() == "log"


def test_figures_leave_pyplot_alone(synthetic):
    """A notebook's backend and open figures stay as they were (no matplotlib.use, no pyplot)."""
    code = ("import matplotlib, sys; before = matplotlib.get_backend(); "
            "from latkit.predictors.metrics import predictions_figure; "
            "f = predictions_figure([1, 2, 3], [1.1, 2.1, 2.9]); "
            "print(before == matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.split() == ["True", "False"]


def test_accuracy_frame_is_the_strict_reader(tmp_path):
    sp = get_space("compofa-w1.0")
    a, b = sp.max_arch(128), sp.min_arch(128)
    p = tmp_path / "acc.csv"
    p.write_text(f"arch,top1,space\n{a},0.0,compofa-w1.0\n{b},37.5,compofa-w1.0\n")
    f = latkit.read_accuracy(p)
    assert list(f["top1"]) == [0.0, 37.5] and list(f["resolution"]) == [128, 128]
    p.write_text(f"arch,top1\n{a},101\n")
    with pytest.raises(LatkitError, match=r"acc.csv:2: top1 is a percentage"):
        latkit.read_accuracy(p)


def test_arch_files_as_tables(tmp_path):
    sp = get_space("compofa-w1.0")
    archs = [sp.max_arch(128), sp.min_arch(160)]
    write_table([{"arch": str(a), "x": 1} for a in archs], tmp_path / "a.csv")
    assert latkit.read_archs(tmp_path / "a.csv", sp) == archs
    if importlib.util.find_spec("pyarrow"):
        write_table([{"arch": str(a)} for a in archs], tmp_path / "a.parquet")
        assert latkit.read_archs(tmp_path / "a.parquet", sp) == archs
    (tmp_path / "b.csv").write_text(f"arch\n{archs[0]}\nr999-bad\n")
    with pytest.raises(ArchError, match=r"b.csv:3:"):
        latkit.read_archs(tmp_path / "b.csv", sp)


@pytest.fixture
def run_lat():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "latkit", *args], capture_output=True,
                              text=True, timeout=120)
    return run
