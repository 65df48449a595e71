"""The Android device agent end to end against the ADB device emulator (real LiteRT inference).

The emulator runs in this process on a loopback port; the agent talks to it through adb-shell
exactly as it would to a phone. Tests that make the emulator run ``benchmark_model`` need LiteRT
(``@pytest.mark.tflite``); the rest need only the ``android`` extra.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("adb_shell")

from latkit.cli import main  # noqa: E402
from latkit.devices.android import AndroidDevice, load_profile  # noqa: E402
from latkit.devices.android.adb import (  # noqa: E402
    Glob,
    LinkError,
    ensure_adb_key,
    parse_serial,
    quote_command,
    split_status,
)
from latkit.devices.android.parse import BenchmarkCrashError  # noqa: E402
from latkit.devices.base import Device, Measurement, ProtocolSettings  # noqa: E402
from latkit.errors import DeviceError  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "devices" / "pixel4.yaml"
QUICK = ProtocolSettings(warmup_runs=2, warmup_s=0.0, min_runs=10, min_time_s=0.05,
                         max_time_s=5.0, remeasure_on_high_cv=False)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def adb_env(tmp_path, monkeypatch) -> Path:
    """A private adb key location and a stand-in benchmark_model file to push."""
    monkeypatch.setenv("LATKIT_ADB_KEY", str(tmp_path / "keys" / "adbkey"))
    tool = tmp_path / "tool" / "benchmark_model"
    tool.parent.mkdir()
    tool.write_bytes(b"\x7fELF stand-in: the emulator runs any pushed file named benchmark_model\n")
    monkeypatch.setenv("LATKIT_BENCHMARK_MODEL", str(tool))
    return tmp_path


def emulator(faults: str = "", profile: str | Path = "pixel4"):
    from latkit.devices.emulator import EmulatorServer, FaultSpec

    return EmulatorServer(port=0, profile=profile, faults=FaultSpec.parse(faults), require_auth=True)


def profile_variant(tmp_path: Path, **changes) -> Path:
    """A copy of the shipped pixel4 profile with top-level sections updated (dicts merged)."""
    data = yaml.safe_load(SHIPPED.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp_path / f"pixel4-variant-{len(list(tmp_path.glob('pixel4-variant-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- (a) lat bench on the emulated phone agrees with cpu-tflite on the same file ----------------


@pytest.mark.tflite
def test_cli_bench_pixel4_matches_cpu_tflite(adb_env, mid_model, capsys):
    """Both medians measure the same LiteRT/XNNPACK work on this CPU, so they must agree.

    The 2 CPU cores are shared with other work, so the two devices are measured alternately (up
    to 5 rounds) and each one's lowest median so far is compared: load only ever adds time. The
    local side runs without the paired reference, as the phone's benchmark_model does.
    """
    common = ["--threads", "1", "--warmup-runs", "10", "--min-runs", "60", "--min-time", "0.5",
              "--json"]
    phone_medians, local_medians = [], []
    with emulator() as emu:
        for _ in range(5):  # both run on this host's CPU; a busy host needs a few tries
            assert main(["bench", "--device", "pixel4", "--serial", emu.serial, str(mid_model),
                         *common]) == 0
            phone = Measurement.from_json(capsys.readouterr().out)
            # the phone times the model alone (benchmark_model); so does the local side here: its
            # default pairs every sample with a reference run (cache-cold samples, level-scaled
            # figure), which measured 7-10% slower than the same work alone
            assert main(["bench", "--device", "cpu-tflite", "--no-reference", str(mid_model),
                         *common]) == 0
            local = Measurement.from_json(capsys.readouterr().out)
            phone_medians.append(phone.median_ms)
            local_medians.append(local.median_ms)
            if abs(min(phone_medians) - min(local_medians)) <= 0.10 * min(local_medians):
                break
        assert emu.counters.snapshot()["taskset_masks"][-1] == "70"
    print(f"\nmedian ms, pixel4 (emulated): {phone_medians}; cpu-tflite: {local_medians}")
    assert phone.env["runtime"] == "tflite benchmark_model" and phone.env["threads"] == 1
    assert phone.env["artifact_sha256"] == local.env["artifact_sha256"]
    assert phone.runs >= 60 and phone.warmup_runs >= 10 and phone.samples_ms == []
    assert phone.extra["median_from"] == "median"
    assert phone.p10_ms <= phone.median_ms <= phone.p90_ms
    assert abs(min(phone_medians) - min(local_medians)) <= 0.10 * min(local_medians)


# --- the Device contract and the Measurement's provenance ------------------------------------------


@pytest.mark.tflite
def test_benchmark_measurement_and_environment(adb_env, tflite_model):
    with emulator() as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        assert isinstance(dev, Device) and dev.formats == ("tflite",)
        m = dev.benchmark(tflite_model, QUICK)
        assert m.median_ms > 0 and m.runs >= 10 and m.warmup_runs >= 2
        assert m.cv == pytest.approx(m.std_ms / m.mean_ms)
        env = m.env
        for key in ("device", "model", "soc", "abi", "serial", "runtime", "runtime_version",
                    "threads", "taskset_mask", "delegate", "frequencies_khz", "temperatures_c",
                    "artifact_sha256", "tool_version", "timestamp", "temperatures_before_c",
                    "temperatures_after_c", "frequencies_before_khz", "frequencies_after_khz"):
            assert key in env, key
        assert env["model"] == "Pixel 4" and env["abi"] == "arm64-v8a"
        assert env["temperatures_before_c"] and env["frequencies_before_khz"]["cpu7"] > 0
        assert env["command"].startswith("taskset 70 /data/local/tmp/latkit/benchmark_model "
                                         "--graph=/data/local/tmp/latkit/tiny.tflite")
        assert json.loads(m.to_json())["median_ms"] == m.median_ms


@pytest.mark.tflite
@pytest.mark.parametrize("fmt", ["legacy", "nostats"])
def test_older_benchmark_model_output_formats(adb_env, tflite_model, tmp_path, fmt):
    path = profile_variant(tmp_path, emulator={"format": fmt})
    with emulator(profile=path) as emu, AndroidDevice.from_profile(path, serial=emu.serial) as dev:
        m = dev.benchmark(tflite_model, QUICK)
    assert m.extra["summary_format"] == {"legacy": "legacy", "nostats": "no_stats"}[fmt]
    assert m.extra["median_from"] == "avg" and m.median_ms == m.mean_ms


# --- (b) a connection dropped during a benchmark is recovered ------------------------------------


@pytest.mark.tflite
def test_dropped_connection_is_recovered(adb_env, tflite_model):
    with emulator("drop-after=1") as emu, \
            AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        m = dev.benchmark(tflite_model, QUICK)
        counters = emu.counters.snapshot()
    assert counters["drops"] == 1
    assert counters["benchmarks_started"] == 2 and counters["benchmarks_completed"] == 1
    assert dev.link.connects >= 2
    assert m.median_ms > 0 and m.runs >= 10


@pytest.mark.tflite
def test_silent_hang_times_out_and_is_retried(adb_env, tflite_model, tmp_path):
    path = profile_variant(tmp_path, timeouts={"benchmark_extra_s": 1})
    settings = ProtocolSettings(warmup_runs=2, warmup_s=0.0, min_runs=10, min_time_s=0.05,
                                max_time_s=0.5, remeasure_on_high_cv=False)
    t0 = time.monotonic()
    with emulator("hang-once,hang-s=60") as emu, \
            AndroidDevice.from_profile(path, serial=emu.serial) as dev:
        m = dev.benchmark(tflite_model, settings)
        counters = emu.counters.snapshot()
    assert counters["hangs"] == 1 and m.runs >= 10
    assert time.monotonic() - t0 < 30  # the 60 s hang was cut by the 2 s timeout


# --- (c) a device that keeps failing ends in a clear error after bounded retries ------------------


def test_device_that_keeps_dropping_fails_after_bounded_retries(adb_env):
    """A peer that accepts and at once closes every connection (a broken adbd)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            accepted.append(c)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    serial = f"127.0.0.1:{srv.getsockname()[1]}"
    t0 = time.monotonic()
    try:
        with pytest.raises(DeviceError) as info:
            AndroidDevice.from_profile("pixel4", serial=serial).check()
    finally:
        srv.close()
    msg = str(info.value)
    assert f"pixel4 at {serial}" in msg and "failed after 3 attempts" in msg
    assert "adb devices" in msg and "\n" not in msg
    assert len(accepted) == 3
    assert time.monotonic() - t0 < 10  # no busy wait on the closed socket


@pytest.mark.tflite
def test_tool_failure_is_reported_with_its_line_not_retried(adb_env, tflite_model):
    with emulator("fail-always") as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        with pytest.raises(BenchmarkCrashError, match="Benchmarking failed"):
            dev.benchmark(tflite_model, QUICK)
        assert emu.counters.snapshot()["benchmarks_started"] == 1


@pytest.mark.tflite
def test_crash_is_reported(adb_env, tflite_model):
    with emulator("crash-once") as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        with pytest.raises(BenchmarkCrashError, match="Segmentation fault"):
            dev.benchmark(tflite_model, QUICK)


@pytest.mark.tflite
def test_gpu_delegate_unavailable_is_a_clear_error(adb_env, tflite_model):
    with emulator() as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial,
                                                       delegate="gpu") as dev:
        with pytest.raises(BenchmarkCrashError, match="GPU"):
            dev.benchmark(tflite_model, QUICK)
        assert "--use_gpu=true" in dev.benchmark_command("/m.tflite", QUICK)


# --- (d) thermal gate -----------------------------------------------------------------------------


@pytest.mark.tflite
def test_hot_phone_waits_until_cool_then_measures(adb_env, tflite_model, tmp_path):
    from latkit.devices.emulator.phone import ThermalModel

    path = profile_variant(tmp_path, thermal={"limit_c": 40, "cooldown_max_s": 20, "poll_s": 0.1})
    with emulator() as emu, AndroidDevice.from_profile(path, serial=emu.serial) as dev:
        dev.prepare(tflite_model)
        # from now on: 46 C falling 4 C per idle second, so below 40 C in about 1.5 s
        emu.phone.thermal = ThermalModel(emu.profile, forced_mc=46000, decay_c_per_s=4.0)
        m = dev.benchmark(tflite_model, QUICK)
    assert m.env["thermal_gate"] == "ok"
    assert 0.3 <= m.env["cooldown_waited_s"] < 20
    assert max(m.env["temperatures_before_c"].values()) <= 40


def test_phone_that_stays_hot_stops_with_a_clear_message(adb_env, tmp_path):
    path = profile_variant(tmp_path, thermal={"limit_c": 40, "cooldown_max_s": 0.6, "poll_s": 0.2})
    model = tmp_path / "never_run.tflite"  # the gate stops before benchmark_model starts
    model.write_bytes(b"\0\0\0\0TFL3")
    t0 = time.monotonic()
    with emulator("temp=48000") as emu, AndroidDevice.from_profile(path, serial=emu.serial) as dev:
        with pytest.raises(DeviceError) as info:
            dev.benchmark(model, QUICK)
        assert 0.6 <= time.monotonic() - t0 < 10
        assert emu.counters.snapshot()["benchmarks_started"] == 0
    msg = str(info.value)
    assert "still 48.0 C (limit 40 C)" in msg and "cooldown_max_s" in msg


@pytest.mark.tflite
def test_phone_that_stays_hot_is_measured_and_flagged_when_asked(adb_env, tmp_path, tflite_model):
    path = profile_variant(tmp_path, thermal={"limit_c": 40, "cooldown_max_s": 0.4, "poll_s": 0.2,
                                              "on_hot": "wait_then_measure"})
    with emulator("temp=48000") as emu, AndroidDevice.from_profile(path, serial=emu.serial) as dev:
        m = dev.benchmark(tflite_model, QUICK)
    assert m.env["thermal_gate"].startswith("hot: 48.0 C > 40 C")
    assert m.median_ms > 0


# --- (e) push skipped when the hash matches --------------------------------------------------------


@pytest.mark.tflite
def test_push_skipped_when_remote_hash_matches(adb_env, tflite_model, tmp_path):
    with emulator() as emu:
        with AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
            first = dev.prepare(tflite_model)
            assert first["pushed"] and dev.pushes == 2  # benchmark_model + the model
            dev.benchmark(tflite_model, QUICK)
            again = dev.prepare(tflite_model)
            assert not again["pushed"] and dev.pushes == 2
        with AndroidDevice.from_profile("pixel4", serial=emu.serial) as fresh:  # a new session
            assert not fresh.prepare(tflite_model)["pushed"] and fresh.pushes == 0
            changed = tmp_path / "tiny.tflite"
            changed.write_bytes(tflite_model.read_bytes() + b"\0")  # same name, other bytes
            assert fresh.prepare(changed)["pushed"] and fresh.pushes == 1
            assert sorted(fresh.cleanup()) == ["/data/local/tmp/latkit/tiny.tflite"]
            out, rc = fresh._sh(["test", "-e", "/data/local/tmp/latkit/tiny.tflite"])
            assert rc == 1
        # benchmark_model, the model, the changed model, and the lock marker of the one benchmark
        assert emu.counters.snapshot()["files_pushed"] == 4


def test_missing_benchmark_model_says_how_to_set_it(adb_env, monkeypatch, tflite_model):
    monkeypatch.delenv("LATKIT_BENCHMARK_MODEL")
    with emulator() as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        with pytest.raises(DeviceError, match="LATKIT_BENCHMARK_MODEL"):
            dev.prepare(tflite_model)


# --- (f) the adb key -------------------------------------------------------------------------------


def test_key_created_once_with_mode_0600(tmp_path):
    key = tmp_path / "sub" / "adbkey"
    _, notes = ensure_adb_key(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "sub" / "adbkey.pub").read_text().strip()
    assert any("created" in n for n in notes)
    before = key.read_bytes()
    _, notes = ensure_adb_key(key)
    assert key.read_bytes() == before and notes == []


def test_key_pair_is_owner_only_under_umask_000(tmp_path):
    """Issue 17: under umask 000 the public key came out 0666; both halves are 0600."""
    old = os.umask(0)
    try:
        ensure_adb_key(tmp_path / "adbkey")
        (tmp_path / "adbkey.pub").unlink()  # a lost .pub is written again, owner-only too
        ensure_adb_key(tmp_path / "adbkey")
        ensure_adb_key(tmp_path / "new" / "adbkey")
    finally:
        os.umask(old)
    for f in ("adbkey", "adbkey.pub", "new/adbkey", "new/adbkey.pub"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o600, f


def test_key_with_open_mode_is_repaired(tmp_path):
    key = tmp_path / "adbkey"
    ensure_adb_key(key)
    os.chmod(key, 0o644)
    _, notes = ensure_adb_key(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert any("644" in n for n in notes)


def test_garbage_key_is_a_clear_error(tmp_path):
    key = tmp_path / "adbkey"
    key.write_text("not a key")
    os.chmod(key, 0o600)
    with pytest.raises(DeviceError, match="unusable"):
        ensure_adb_key(key)


def test_default_key_location_honours_env(adb_env):
    with emulator() as emu, AndroidDevice.from_profile("pixel4", serial=emu.serial) as dev:
        dev.check()
    key = adb_env / "keys" / "adbkey"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


# --- (g) unreachable serial: one line, exit 2 -----------------------------------------------------


def test_unreachable_serial_is_one_line_exit_2(adb_env, capsys, tmp_path):
    serial = f"127.0.0.1:{closed_port()}"
    assert main(["device", "check", "--device", "pixel4", "--serial", serial]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and serial in err and "failed after 3 attempts" in err
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0\0\0\0TFL3")
    assert main(["bench", "--device", "pixel4", "--serial", serial, str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and serial in err


def test_device_check_cli(adb_env, capsys):
    with emulator() as emu:
        assert main(["device", "check", "--serial", emu.serial, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert main(["device", "check", "--serial", emu.serial]) == 0
        text = capsys.readouterr().out
    assert info["model"] == "Pixel 4" and info["sdk"] == "33" and not info["benchmark_model_present"]
    assert info["frequencies_khz"]["cpu7"] == 2841600
    assert set(info["temperatures_c"]) == {f"cpu-{c}-{i}-usr" for c in (0, 1) for i in range(4)}
    assert "Pixel 4" in text and "cpu7 2.84 GHz" in text


def test_usb_serial_without_libusb_is_a_clear_error(adb_env):
    pytest.importorskip("adb_shell")
    try:
        import usb1  # noqa: F401
        pytest.skip("libusb1 is installed")
    except ImportError:
        pass
    with pytest.raises(DeviceError, match="libusb1.*--serial"):
        AndroidDevice.from_profile("pixel4", serial="9B011FFAZ005UW").check()


def test_no_serial_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    with pytest.raises(DeviceError, match="--serial"):
        AndroidDevice.from_profile("pixel4")


# --- the profile ------------------------------------------------------------------------------------


def test_shipped_profile_loads():
    p = load_profile("pixel4")
    assert (p.name, p.model, p.taskset_mask, p.threads, p.delegate) == ("pixel4", "Pixel 4", "70",
                                                                        1, "cpu")
    assert p.remote_dir == "/data/local/tmp/latkit" and p.retries == 3
    assert p.thermal.limit_c == 40 and p.thermal.on_hot == "wait_then_fail"
    assert (p.protocol.warmup_runs, p.protocol.min_runs, p.protocol.min_time_s,
            p.protocol.max_time_s) == (10, 50, 1.0, 150.0)
    assert [c["cpus"] for c in p.cores] == [[0, 1, 2, 3], [4, 5, 6], [7]]
    assert load_profile(SHIPPED) == p


@pytest.mark.parametrize("changes, needle", [
    ({"colour": "blue"}, "unknown key 'colour'"),
    ({"thermal": {"limit": 40}}, "unknown key 'thermal.limit'"),
    ({"threads": "1"}, "key 'threads' must be an integer"),
    ({"threads": True}, "key 'threads' must be an integer"),
    ({"thermal": {"limit_c": "hot"}}, "key 'thermal.limit_c' must be a number"),
    ({"protocol": {"num_runs": 1.5}}, "key 'protocol.num_runs' must be an integer"),
    ({"taskset_mask": "0"}, "key 'taskset_mask'"),
    ({"delegate": "hexagon"}, "key 'delegate'"),
    ({"thermal": {"on_hot": "ignore"}}, "key 'thermal.on_hot'"),
    ({"thermal": {"zones": ["/sys/class/thermal/zone;rm -rf /"]}}, "thermal.zones"),
    ({"remote_dir": "data/local/tmp"}, "key 'remote_dir'"),
    ({"retries": 0}, "key 'retries'"),
    ({"benchmark_model": {"local_path": 3}}, "benchmark_model.local_path' must be a string or null"),
])
def test_bad_profiles_name_the_file_and_key(tmp_path, changes, needle):
    path = profile_variant(tmp_path, **changes)
    with pytest.raises(DeviceError) as info:
        load_profile(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_key_and_unknown_profile(tmp_path):
    data = yaml.safe_load(SHIPPED.read_text())
    del data["soc"]
    path = tmp_path / "nosoc.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DeviceError, match="missing key 'soc'"):
        load_profile(path)
    with pytest.raises(DeviceError, match="no Android device profile 'pixel99'"):
        load_profile("pixel99")


def test_overrides_from_profile(monkeypatch):
    dev = AndroidDevice.from_profile("pixel4", serial="127.0.0.1:5", threads=4, affinity="0xf0",
                                     delegate="nnapi", protocol=QUICK)
    argv = dev.benchmark_command("/data/local/tmp/latkit/m.tflite", dev.protocol)
    assert argv[:3] == ["taskset", "f0", "/data/local/tmp/latkit/benchmark_model"]
    assert "--num_threads=4" in argv and "--use_nnapi=true" in argv and "--num_runs=10" in argv
    assert AndroidDevice.from_profile("pixel4", serial="h:1", affinity=[7]).taskset_mask == "80"
    with pytest.raises(DeviceError, match="affinity"):
        AndroidDevice.from_profile("pixel4", serial="h:1", affinity="zz")
    with pytest.raises(DeviceError, match="delegate"):
        AndroidDevice.from_profile("pixel4", serial="h:1", delegate="tpu")


# --- the adb helpers --------------------------------------------------------------------------------


def test_commands_are_quoted_and_globs_checked():
    assert quote_command(["echo", "a b", "$(reboot)"]) == "echo 'a b' '$(reboot)'"
    assert quote_command(["ls", Glob("/sys/class/thermal/thermal_zone*/temp")]) == \
        "ls /sys/class/thermal/thermal_zone*/temp"
    for bad in ("/sys/*;reboot", "/a b", "$(x)"):
        with pytest.raises(DeviceError):
            Glob(bad)
    with pytest.raises(DeviceError):
        quote_command("echo hi")  # type: ignore[arg-type]


def test_exit_status_marker():
    assert split_status("hello\n__LATKIT_RC=0\n") == ("hello\n", 0)
    assert split_status("no newline__LATKIT_RC=127\n") == ("no newline", 127)
    with pytest.raises(LinkError, match="without its exit status"):
        split_status("INFO: Running benchmark for at least 50 iterations")


def test_serials():
    assert parse_serial("127.0.0.1:5600") == ("127.0.0.1", 5600)
    assert parse_serial("[::1]:5600") == ("::1", 5600)
    assert parse_serial("9B011FFAZ005UW") is None
    with pytest.raises(DeviceError):
        parse_serial("host:port")


def test_lat_device_emulate_serves_a_phone(adb_env, capsys):
    """``lat device emulate`` in a subprocess; ``lat device check`` reaches it."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "latkit", "device", "emulate", "--port", "0",
                             "--no-auth"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()
        serial = line.strip().rsplit("serial ", 1)[-1].rstrip(")")
        assert line.startswith("emulating pixel4 on 127.0.0.1:") and parse_serial(serial)
        assert main(["device", "check", "--serial", serial, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["model"] == "Pixel 4"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
