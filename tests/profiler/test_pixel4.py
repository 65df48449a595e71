"""Lookup tables for pixel4 built through adb, against the ADB device emulator (real LiteRT runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("adb_shell")
pytest.importorskip("litert_torch")

from latkit.cli import main  # noqa: E402
from latkit.profiler.campaign import (  # noqa: E402
    QUICK_PROTOCOL,
    CampaignSettings,
    DeviceSpec,
    layer_jobs,
    run_layer_campaign,
)
from latkit.profiler.lut import LookupTable  # noqa: E402
from latkit.supernet.space import get_space  # noqa: E402

SPACE = get_space("compofa-w1.0")
pytestmark = pytest.mark.tflite


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    from latkit.devices.emulator import EmulatorServer

    monkeypatch.setenv("LATKIT_ADB_KEY", str(tmp_path / "keys" / "adbkey"))
    tool = tmp_path / "benchmark_model"
    tool.write_bytes(b"\x7fELF stand-in: the emulator runs any pushed benchmark_model\n")
    monkeypatch.setenv("LATKIT_BENCHMARK_MODEL", str(tool))
    with EmulatorServer(port=0, profile="pixel4") as emu:
        yield emu


def test_pixel4_table_through_adb_cli(emulator, tmp_path, capsys):
    out = tmp_path / "lut"
    assert main(["profile", "--device", "pixel4", "--serial", emulator.serial, "--space",
                 SPACE.name, "--resolutions", "128", "--out", str(out), "--limit", "3", "--quick",
                 "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["entries"], res["measured"], res["complete"]) == (3, 3, True)
    t = LookupTable.load(out)
    assert t.device == "pixel4" and sorted(t.keys()) == sorted(
        j.key for j in layer_jobs(SPACE, [128], 3))
    assert all(e.median_ms > 0 for e in t)
    meta = t.meta
    assert meta["settings"]["format"] == "tflite" and meta["settings"]["dynamic_hw"] is False
    assert "serial" not in meta["settings"]["device_options"]  # where, not how: not hashed
    assert meta["env"]["device"] == "pixel4" and meta["env"]["taskset_mask"] == "70"
    assert sorted(Path(out / "exports").glob("*.tflite"))  # one TFLite file per layer
    # resuming against the same phone measures nothing again
    assert main(["profile", "--resume", "--serial", emulator.serial, "--out", str(out), "--json",
                 "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["measured"], res["skipped"]) == (0, 3)
    # a second pass over the phone: each layer measured once more, the table their median
    assert main(["profile", "--resume", "--serial", emulator.serial, "--out", str(out), "--passes",
                 "2", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["measured"], res["skipped"], res["entries"]) == (3, 3, 3)
    assert LookupTable.load(out).meta["passes"] == 2


@pytest.mark.slow
def test_pixel4_full_table_two_resolutions(emulator, tmp_path):
    res = run_layer_campaign(SPACE, [128, 224], [DeviceSpec("pixel4", {"serial": emulator.serial})],
                             tmp_path / "store.sqlite", tmp_path / "lut",
                             settings=CampaignSettings(protocol=QUICK_PROTOCOL, passes=1,
                                                       reference=False))
    assert res.complete and res.entries == len(SPACE.unique_layers([128, 224]))
    t = LookupTable.load(tmp_path / "lut")
    for r in (128, 224):
        assert t.predict_arch_sum(SPACE, SPACE.max_arch(r)) > t.predict_arch_sum(SPACE,
                                                                                SPACE.min_arch(r))
