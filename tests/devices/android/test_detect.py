"""``lat device add`` / ``show`` / ``list`` against the emulator's phones (item 1 and 2 of issue 14).

Every emulated phone answers getprop, /proc/cpuinfo, cpufreq and thermal files as that phone does;
detection must find the clusters of the phone's own cpufreq files (read here straight from the
emulated filesystem, not from the profile it was built from). The tests run with a temporary
LATKIT_HOME (tests/conftest.py) and a private adb key.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import yaml

pytest.importorskip("adb_shell")

from latkit.cli import main  # noqa: E402
from latkit.devices.android import load_profile  # noqa: E402
from latkit.devices.android.detect import check_elf, clusters_of, default_mask  # noqa: E402
from latkit.devices.paths import user_profiles_dir  # noqa: E402
from latkit.devices.registry import describe_device, list_devices  # noqa: E402
from latkit.errors import DeviceError  # noqa: E402

PHONES = ("pixel4", "pixel7", "galaxy-s22", "budget-a55")


@pytest.fixture(autouse=True)
def adb_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LATKIT_ADB_KEY", str(tmp_path / "keys" / "adbkey"))
    monkeypatch.delenv("LATKIT_BENCHMARK_MODEL", raising=False)


def emulator(phone: str = "pixel4", faults: str = "", bare: bool = False, **kw):
    from latkit.devices.emulator import EmulatorServer, FaultSpec

    return EmulatorServer(port=0, profile=phone, faults=FaultSpec.parse(faults),
                          benchmark_model=not bare, **kw)


def elf(path: Path, elf_class: int = 2, machine: int = 183) -> Path:
    """A file whose ELF header says (class, machine): 183 = AArch64, 62 = x86-64, 40 = ARM."""
    ident = b"\x7fELF" + bytes([elf_class, 1, 1, 0]) + bytes(8)
    path.write_bytes(ident + struct.pack("<HHI", 3, machine, 1) + bytes(40))
    return path


def phone_clusters(emu) -> list[tuple[list[int], int]]:
    """The clusters as the phone's own files say: related_cpus and cpuinfo_max_freq per CPU."""
    fs, groups = emu.phone.fs, {}
    n = len([p for p in fs.virtual if p.endswith("/cpufreq/cpuinfo_max_freq")])
    for c in range(n):
        base = f"/sys/devices/system/cpu/cpu{c}/cpufreq/"
        key = (fs.read(base + "related_cpus").decode().split(), int(fs.read(base + "cpuinfo_max_freq")))
        groups.setdefault((tuple(key[0]), key[1]), []).append(c)
    return sorted(((cpus, khz) for (_, khz), cpus in groups.items()), key=lambda g: g[0][0])


# (phone) -> (model, soc as getprop says, clusters as cpus/core, default mask, CPU thermal zone count)
EXPECTED = {
    "pixel4": ("Pixel 4", "SM8150", [([0, 1, 2, 3], "Cortex-A55"), ([4, 5, 6], "Cortex-A76"),
                                     ([7], "Cortex-A76")], "70", 8),
    "pixel7": ("Pixel 7", "GS201", [([0, 1, 2, 3], "Cortex-A55"), ([4, 5], "Cortex-A78"),
                                    ([6, 7], "Cortex-X1")], "c0", 3),
    "galaxy-s22": ("SM-S901U", "SM8450", [([0, 1, 2, 3], "Cortex-A510"), ([4, 5, 6], "Cortex-A710"),
                                          ([7], "Cortex-X2")], "70", 10),
    "budget-a55": ("Budget A55", "sp9863a", [([0, 1, 2, 3], "Cortex-A55"), ([4, 5, 6, 7], "Cortex-A55")],
                   "f0", 2),
}


@pytest.mark.parametrize("phone", PHONES)
def test_add_detects_each_emulated_phone(phone, capsys):
    model, soc, clusters, mask, n_zones = EXPECTED[phone]
    with emulator(phone) as emu:
        assert main(["device", "add", f"my-{phone}", "--serial", emu.serial]) == 0
        out = capsys.readouterr().out
        own = phone_clusters(emu)
        tool_sha = emu.phone.fs.read("/data/local/tmp/benchmark_model")
    print(out)
    data = describe_device(f"my-{phone}")
    assert data["source"] == "user" and data["file"] == str(user_profiles_dir() / f"my-{phone}.yaml")
    # the clusters found are the phone's own cpufreq groups, with their maximum frequencies
    assert [(c["cpus"], c["max_khz"]) for c in data["cores"]] == own
    assert [(c["cpus"], c["core"]) for c in data["cores"]] == clusters
    assert (data["model"], data["soc"], data["abi"], data["taskset_mask"], data["threads"]) == \
        (model, soc, "arm64-v8a", mask, 1)
    assert len(data["thermal"]["zone_types"]) == n_zones
    assert not {"battery", "skin-therm", "G3D", "gpuss-0"} & set(data["thermal"]["zone_types"])
    import hashlib

    bm = data["detected"]["benchmark_model"]
    assert bm["installed"] == "found" and bm["sha256"] == hashlib.sha256(tool_sha).hexdigest()
    assert data["benchmark_model"]["remote_path"] == "/data/local/tmp/benchmark_model"
    profile = load_profile(f"my-{phone}")  # every --device NAME reads it through the one loader
    assert profile.source == data["file"] and profile.taskset_mask == mask
    assert f"my-{phone}" in out and "cluster" in out


def test_add_pushes_the_given_build_and_user_profile_wins(tmp_path, capsys):
    tool = elf(tmp_path / "benchmark_model")
    with emulator("pixel7", bare=True) as emu:
        assert main(["device", "add", "pixel4", "--serial", emu.serial, "--benchmark-model", str(tool)]) == 0
        out = capsys.readouterr().out
        pushed = emu.phone.fs.read("/data/local/tmp/latkit/benchmark_model")
        assert main(["device", "add", "pixel4", "--serial", emu.serial]) == 2
        assert "already exists" in capsys.readouterr().err
    assert pushed == tool.read_bytes() and "now wins over the built-in pixel4" in out
    data = describe_device("pixel4")
    assert data["source"] == "user" and data["model"] == "Pixel 7"
    assert data["detected"]["benchmark_model"]["installed"] == "pushed"
    rows = {r["name"]: r for r in list_devices()}
    assert rows["pixel4"]["source"] == "user" and rows["pixel7"]["source"] == "builtin"
    assert main(["device", "show", "pixel4", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["file"] == data["file"] and [c["cpus"] for c in shown["cores"]] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert main(["device", "list"]) == 0
    assert re.search(r"pixel4\s+android\s+user", capsys.readouterr().out)


def test_add_then_bench_with_the_new_name(tmp_path, capsys, tflite_model):
    pytest.importorskip("ai_edge_litert")
    with emulator("budget-a55") as emu:
        assert main(["device", "add", "cheap", "--serial", emu.serial]) == 0
        capsys.readouterr()
        assert main(["bench", "--device", "cheap", str(tflite_model), "--warmup-runs", "2",
                     "--min-runs", "5", "--min-time", "0.02", "--json"]) == 0
        masks = list(emu.counters.taskset_masks)
    env = json.loads(capsys.readouterr().out)["env"]
    assert env["device"] == "cheap" and env["taskset_mask"] == "f0" and masks[-1] == "f0"
    assert env["frequencies_khz"]["cpu7"] == 1600000


@pytest.mark.parametrize("case", ["unreachable", "refused", "not-elf", "x86", "missing", "run-fails"])
def test_add_errors_are_one_line_exit_2(case, tmp_path, capsys):
    import socket

    args = ["device", "add", "p", "--auth-timeout", "1"]
    if case == "unreachable":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        assert main([*args, "--serial", f"127.0.0.1:{port}"]) == 2
        expect = f"127.0.0.1:{port}"
    else:
        kw, bare, extra = {}, case in ("missing", "not-elf", "x86", "run-fails"), []
        if case == "refused":  # the phone trusts only another key: it never says yes
            from latkit.devices.android.adb import ensure_adb_key

            ensure_adb_key(tmp_path / "other" / "adbkey")
            kw["authorized_keys"] = [(tmp_path / "other" / "adbkey.pub").read_text()]
        if case == "not-elf":
            (tmp_path / "benchmark_model").write_text("#!/bin/sh\necho hello\n")
            extra = ["--benchmark-model", str(tmp_path / "benchmark_model")]
        if case == "x86":
            extra = ["--benchmark-model", str(elf(tmp_path / "benchmark_model", 2, 62))]
        if case == "run-fails":  # the phone's own benchmark_model is an x86-64 build: it cannot run there
            elf(tmp_path / "x86", 2, 62)
        with emulator("pixel4", bare=bare, **kw) as emu:
            if case == "run-fails":
                emu.phone.fs.write("/data/local/tmp/benchmark_model", (tmp_path / "x86").read_bytes(), mode=0o755)
                emu.phone.fs.chmod("/data/local/tmp/benchmark_model", 0o755)
            assert main([*args, "--serial", emu.serial, *extra]) == 2
        expect = {"refused": "auth", "not-elf": "not an ELF", "x86": "x86-64", "missing": "no benchmark_model",
                  "run-fails": "does not run on this phone (exit 126"}[case]
    err = capsys.readouterr().err
    print(err)
    assert err.count("\n") == 1 and "error: " in err and expect in err, err
    assert not (user_profiles_dir() / "p.yaml").exists()


def test_default_mask_rule():
    def cores(*spec):
        return [{"cpus": list(c), "max_khz": k} for c, k in spec]

    # a lone prime core is passed over; a fastest pair is taken; one cluster is all of it
    assert default_mask(cores(((0, 1, 2, 3), 1), ((4, 5, 6), 2), ((7,), 3)))[:2] == ("70", 1)
    assert default_mask(cores(((0, 1, 2, 3), 1), ((4, 5), 2), ((6, 7), 3)))[0] == "c0"
    assert default_mask(cores(((0, 1, 2, 3, 4, 5, 6, 7), 1)))[0] == "ff"
    assert default_mask(cores(((0,), 5)))[0] == "1"
    # related_cpus splits CPUs of one frequency into their policies
    got = clusters_of({0: 1, 1: 1, 2: 1, 3: 1}, {0: (0, 1), 1: (0, 1), 2: (2, 3), 3: (2, 3)},
                      {c: (0x41, 0xd05) for c in range(4)})
    assert [c["cpus"] for c in got] == [[0, 1], [2, 3]] and got[0]["core"] == "Cortex-A55"


def test_check_elf(tmp_path):
    check_elf(elf(tmp_path / "a"), "arm64-v8a")
    with pytest.raises(DeviceError, match="ARM.*32-bit"):
        check_elf(elf(tmp_path / "b", 1, 40), "arm64-v8a")


def test_emulated_phones_answer_as_that_phone():
    with emulator("budget-a55") as emu:
        props = emu.phone.props
        assert "ro.soc.model" not in props and props["ro.board.platform"] == "sp9863a"  # Android 11
        assert props["ro.build.version.sdk"] == "30"
    with emulator("pixel7") as emu:
        fs = emu.phone.fs
        assert emu.phone.props["ro.soc.model"] == "GS201"
        info = fs.read("/proc/cpuinfo").decode()
        assert re.findall(r"CPU part\s+: (0x\w+)", info) == ["0xd05"] * 4 + ["0xd41"] * 2 + ["0xd44"] * 2
        assert fs.read("/sys/devices/system/cpu/cpu6/cpufreq/cpuinfo_max_freq") == b"2850000\n"
        assert fs.read("/sys/devices/system/cpu/cpu4/cpufreq/related_cpus") == b"4 5\n"
        assert fs.read("/sys/class/thermal/thermal_zone0/type") == b"BIG\n"
    with emulator("pixel4", bare=True) as emu:
        assert not emu.phone.fs.exists("/data/local/tmp/benchmark_model")
    data = yaml.safe_load((Path(__file__).resolve().parents[3] / "data/devices/galaxy-s22.yaml").read_text())
    assert [c["max_ghz"] for c in data["cores"]] == [1.8, 2.5, 3.0]
