"""The emulated phone's shell, filesystem and thermal model, without any network."""

from __future__ import annotations

import hashlib
import shlex

import pytest
import yaml

from latkit.devices.emulator.faults import FaultSpec
from latkit.devices.emulator.phone import (
    EmulatedPhone,
    EmulatorCounters,
    PhoneProfile,
    ThermalModel,
)
from latkit.devices.emulator.shell import Session, run_script
from latkit.devices.paths import profiles_dir
from latkit.errors import DeviceError


@pytest.fixture
def phone(tmp_path):
    profile = PhoneProfile()
    return EmulatedPhone(profile, tmp_path / "root", "emu:1", EmulatorCounters(), ThermalModel(profile))


def sh(phone, cmd: str, session: Session | None = None) -> tuple[int, str, str]:
    out, err = bytearray(), bytearray()
    session = session or Session(phone)
    status = run_script(cmd, session, out.extend, err.extend)
    return status, out.decode(), err.decode()


def test_echo_quoting_roundtrips_shlex_quote(phone):
    tricky = ["a b", "it's", 'say "hi"', "$HOME", "back\\slash", "*", "semi;colon", "", "tab\there"]
    status, out, _ = sh(phone, "echo " + " ".join(shlex.quote(t) for t in tricky[:-2]) + "; printf '%s\\n' "
                        + " ".join(shlex.quote(t) for t in tricky))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == " ".join(tricky[:-2])
    assert lines[1:] == tricky


def test_status_lists_and_variables(phone):
    assert sh(phone, "false; echo $?")[1] == "1\n"
    assert sh(phone, "true && echo yes || echo no")[1] == "yes\n"
    assert sh(phone, "false && echo yes || echo no")[1] == "no\n"
    assert sh(phone, "X=5; echo ${X}-$X \"$X\"")[1] == "5-5 5\n"
    assert sh(phone, "echo $(echo inner) done")[1] == "inner done\n"
    status, out, _ = sh(phone, "echo a; exit 3; echo never")
    assert (status, out) == (3, "a\n")


def test_unknown_command_and_syntax_errors(phone):
    status, out, err = sh(phone, "frobnicate --now")
    assert status == 127 and out == ""
    assert "sh: frobnicate: inaccessible or not found" in err
    status, _, err = sh(phone, "for i in 1 2; do echo $i; done")
    assert status == 2 and "unsupported by the latkit emulator" in err
    assert sh(phone, "echo 'unterminated")[0] == 2


def test_redirections(phone):
    status, out, err = sh(phone, "cat /nope 2>&1; echo next")
    assert "cat: /nope: No such file or directory" in out and err == ""
    status, out, err = sh(phone, "cat /nope 2>/dev/null; echo $?")
    assert out == "1\n" and err == ""
    assert sh(phone, "echo hi >/dev/null")[1] == ""
    sh(phone, "echo one > /data/local/tmp/f; echo two >> /data/local/tmp/f")
    assert sh(phone, "cat /data/local/tmp/f")[1] == "one\ntwo\n"
    assert sh(phone, "cat /data/local/tmp/f | wc -l")[1] == "2\n"


def test_filesystem_commands(phone):
    assert sh(phone, "mkdir -p /data/local/tmp/a/b && ls /data/local/tmp/a")[1] == "b\n"
    assert sh(phone, "mkdir /data/local/tmp/a")[0] == 1
    sh(phone, "echo data > /data/local/tmp/a/b/x.bin")
    out = sh(phone, "sha256sum /data/local/tmp/a/b/x.bin")[1]
    assert out == f"{hashlib.sha256(b'data' + bytes([10])).hexdigest()}  /data/local/tmp/a/b/x.bin\n"
    assert sh(phone, "stat -c %s /data/local/tmp/a/b/x.bin")[1] == "5\n"
    assert sh(phone, "test -f /data/local/tmp/a/b/x.bin && echo f; test -x /data/local/tmp/a/b/x.bin || echo notx")[1] == "f\nnotx\n"
    assert sh(phone, "chmod 755 /data/local/tmp/a/b/x.bin; test -x /data/local/tmp/a/b/x.bin && echo x")[1] == "x\n"
    assert sh(phone, "rm /data/local/tmp/a")[0] == 1
    assert sh(phone, "rm -rf /data/local/tmp/a; ls /data/local/tmp")[1] == ""
    assert sh(phone, "rm -f /data/local/tmp/missing")[0] == 0
    assert sh(phone, "cd /data/local/tmp && pwd && echo z > rel && cat /data/local/tmp/rel")[1] == "/data/local/tmp\nz\n"


def test_sandbox_refuses_escapes_and_readonly_paths(phone, tmp_path):
    (tmp_path / "secret").write_text("host secret")
    status, out, err = sh(phone, "cat /../secret ../../../secret /../../../../etc/passwd")
    assert status == 1 and "host secret" not in out
    status, _, err = sh(phone, "echo x > /system/evil; echo y > /sys/class/thermal/thermal_zone0/temp")
    assert "can't create /system/evil: Read-only file system" in err
    assert "Permission denied" in err
    assert not (tmp_path / "root" / "system" / "evil").exists()
    assert sh(phone, "rm -rf /data")[0] == 1


def test_properties_thermal_and_cpufreq(phone):
    assert sh(phone, "getprop ro.product.model")[1] == "Pixel 4\n"
    assert sh(phone, "getprop ro.product.cpu.abi; getprop ro.build.version.sdk")[1] == "arm64-v8a\n33\n"
    assert sh(phone, "getprop ro.board.platform; getprop ro.product.device")[1] == "msmnile\nflame\n"
    assert sh(phone, "uname -m; nproc")[1] == "aarch64\n8\n"
    temps = sh(phone, "cat /sys/class/thermal/thermal_zone*/temp")[1].split()
    assert len(temps) == len(PhoneProfile().thermal_zones) and temps[0] == "35000"
    freqs = sh(phone, "cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq")[1].split()
    assert freqs == ["1785600"] * 4 + ["2419200"] * 3 + ["2841600"]
    assert sh(phone, "ls /sys/class/thermal | head -n 2")[1] == "thermal_zone0\nthermal_zone1\n"


def test_taskset_validates_mask_and_records_it(phone):
    assert sh(phone, "taskset 70 echo ok")[1] == "ok\n"
    status, _, err = sh(phone, "taskset zz echo ok")
    assert status == 1 and "bad mask" in err
    status, _, err = sh(phone, "taskset 100 echo ok")
    assert status == 1 and "Invalid argument" in err
    assert phone.counters.taskset_masks == ["70"]


def test_benchmark_model_needs_exec_bit(phone):
    sh(phone, "echo fake > /data/local/tmp/benchmark_model")
    status, _, err = sh(phone, "/data/local/tmp/benchmark_model --graph=/x.tflite")
    assert status == 126 and "Permission denied" in err
    assert sh(phone, "benchmark_model")[0] == 127  # not preinstalled in the default profile


def test_thermal_model_heats_and_cools():
    now = [0.0]
    profile = PhoneProfile(heat_c_per_busy_s=1.0, cool_tau_s=10.0)
    th = ThermalModel(profile, clock=lambda: now[0])
    th.begin_work()
    now[0] = 20.0
    th.end_work(busy_s=20.0)
    assert th.zone_mc(1.0) == 55000  # 35 C + 20 s x 1 C/s
    now[0] = 30.0  # one time constant later
    assert th.zone_mc(1.0) == pytest.approx(35000 + 20000 / 2.718281828, abs=2)


def test_thermal_forced_temperature_fixed_or_decaying():
    now = [0.0]
    fixed = ThermalModel(PhoneProfile(), forced_mc=48000, clock=lambda: now[0])
    decaying = ThermalModel(PhoneProfile(), forced_mc=48000, decay_c_per_s=5.0, clock=lambda: now[0])
    assert fixed.zone_mc(1.0) == decaying.zone_mc(1.0) == 48000
    now[0] = 1.0
    assert fixed.zone_mc(1.0) == 48000
    assert decaying.zone_mc(1.0) == 43000
    now[0] = 10.0
    assert decaying.zone_mc(1.0) == 35000


def test_fault_spec_grammar():
    spec = FaultSpec.parse("drop-after=2,hang-once,slow=0.2,temp=48000,temp-decay=5,crash-once,fail-always")
    assert (spec.drop_after, spec.hang_after, spec.crash_after) == (2, 1, 1)
    assert spec.slow_s == 0.2 and spec.temp_mc == 48000 and spec.temp_decay_c_per_s == 5.0 and spec.fail_always
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse("") == FaultSpec()
    assert [FaultSpec.parse("crash-after=2,drop-after=3").benchmark_fault(n) for n in (1, 2, 3)] == [None, "crash", "drop"]
    for bad in ("explode", "drop-after=x", "drop-after=0", "temp=48", "slow"):
        with pytest.raises(DeviceError):
            FaultSpec.parse(bad)


def agent_profile(path, **changes):
    """A complete agent profile (the shipped pixel4.yaml) with top-level keys replaced, as YAML.

    The emulator reads profiles through the agent's strict loader, so a test profile is a whole
    one; what only the emulator knows (zone lists, output format...) goes in ``emulator:``."""
    data = yaml.safe_load((profiles_dir() / "pixel4.yaml").read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def test_profile_loading(tmp_path):
    assert PhoneProfile.load("pixel4").model == "Pixel 4"
    path = tmp_path / "p.yaml"
    agent_profile(path, name="testphone", model="Test 1",
                  emulator={"format": "legacy", "thermal_zones": ["cpu-a", "skin"]})
    prof = PhoneProfile.load(path)
    assert (prof.name, prof.model, prof.format) == ("testphone", "Test 1", "legacy")
    assert prof.thermal_zones == (("cpu-a", 1.0), ("skin", 0.5))
    agent_profile(path, emulator={"colour": "red"})
    with pytest.raises(DeviceError, match="unknown emulator knob"):
        PhoneProfile.load(path)
    with pytest.raises(DeviceError, match="unknown emulator profile"):
        PhoneProfile.load("no-such-phone")


def test_stat_line_matches_the_real_tool():
    from latkit.devices.emulator.benchmark import g, parse_flags, stat_line

    # numbers from a captured Pixel-class benchmark_model log (LiteRT build with percentiles)
    assert stat_line([344846, 313209], percentiles=True) == (
        "count=2 first=344846 curr=313209 min=313209 max=344846 avg=329028 std=15818 "
        "p5=313209 median=344846 p95=344846")
    assert stat_line([5], percentiles=True) == "count=1 curr=5 p5=5 median=5 p95=5"
    assert stat_line([7, 7, 7], percentiles=False) == "count=3 curr=7(all same)"
    assert stat_line([], percentiles=False) == "count=0"
    assert (g(1234567.5), g(0.5), g(150.0), g(60.404)) == ("1.23457e+06", "0.5", "150", "60.404")
    values, given, unconsumed, error = parse_flags(["--graph=/m.tflite", "--num_threads=4", "--verbose",
                                                    "--use_gpu=true", "--foo=1", "extra"])
    assert error is None and values["num_threads"] == 4 and values["use_gpu"] is True
    assert given == {"graph", "num_threads", "use_gpu"} and unconsumed == ["--verbose", "--foo=1", "extra"]
    assert parse_flags(["--num_runs=ten"])[3] is not None


def test_cores_and_zone_types_from_an_agent_profile(tmp_path):
    path = tmp_path / "phone.yaml"
    thermal = {**yaml.safe_load((profiles_dir() / "pixel4.yaml").read_text())["thermal"],
               "zone_types": ["cpu-x", "cpu-y"], "limit_c": 40}
    agent_profile(path, name="other", model="Other", soc="Snapdragon 865 (SM8250)",
                  cores=[{"cpus": [0, 1], "core": "Cortex-A55", "max_ghz": 1.8},
                         {"cpus": [2], "core": "Cortex-A77", "max_ghz": 2.5}],
                  thermal=thermal)
    prof = PhoneProfile.load(path)
    assert prof.soc == "SM8250" and prof.cpu_max_khz == (1800000, 1800000, 2500000)
    assert [z for z, _ in prof.thermal_zones][:2] == ["cpu-x", "cpu-y"]
    assert PhoneProfile.load("pixel4").cpu_max_khz == (1785600,) * 4 + (2419200,) * 3 + (2841600,)
