"""Injected faults of the ADB emulator behave as ``FaultSpec`` documents."""

from __future__ import annotations

import time

import pytest

from latkit.devices.emulator import EmulatorServer, FaultSpec, PhoneProfile

pytest.importorskip("adb_shell")
from adb_shell.adb_device import AdbDeviceTcp  # noqa: E402
from adb_shell.auth.keygen import keygen  # noqa: E402
from adb_shell.auth.sign_pythonrsa import PythonRSASigner  # noqa: E402

GRAPH = "/data/local/tmp/tiny.tflite"
RUN = (f"benchmark_model --graph={GRAPH} --warmup_runs=1 --warmup_min_secs=0 --num_runs=3 --min_secs=0"
       "; echo __RC=$?")
ZONE0 = "cat /sys/class/thermal/thermal_zone0/temp"


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> PythonRSASigner:
    path = tmp_path_factory.mktemp("faultkey") / "adbkey"
    keygen(str(path))
    return PythonRSASigner.FromRSAKeyPath(str(path))


def server(faults: str, **profile_changes) -> EmulatorServer:
    profile = PhoneProfile().replace(preinstalled=True, **profile_changes)
    return EmulatorServer(port=0, profile=profile, faults=FaultSpec.parse(faults))


def connect(emu: EmulatorServer, signer, timeout_s: float = 10) -> AdbDeviceTcp:
    dev = AdbDeviceTcp("127.0.0.1", emu.port, default_transport_timeout_s=timeout_s)
    dev.connect(rsa_keys=[signer], auth_timeout_s=5)
    return dev


def setup_model(dev: AdbDeviceTcp, tflite_model) -> None:
    dev.push(str(tflite_model), GRAPH)


@pytest.mark.tflite
def test_drop_after_n_breaks_the_connection_mid_output(signer, tflite_model):
    with server("drop-after=2") as emu:
        dev = connect(emu, signer)
        setup_model(dev, tflite_model)
        assert dev.shell(RUN, read_timeout_s=30).endswith("__RC=0\n")
        with pytest.raises(Exception) as info:
            dev.shell(RUN, read_timeout_s=30)
        assert "__RC" not in str(info.value)
        dev.close()
        dev = connect(emu, signer)  # the phone is still there: reconnect and carry on
        assert dev.shell(RUN, read_timeout_s=30).endswith("__RC=0\n")
        snap = emu.counters.snapshot()
        assert snap["drops"] == 1 and snap["benchmarks_started"] == 3 and snap["benchmarks_completed"] == 2
        assert snap["connections_accepted"] == 2


@pytest.mark.tflite
def test_hang_once_goes_silent_until_the_client_gives_up(signer, tflite_model):
    with server("hang-once,hang-s=60") as emu:
        dev = connect(emu, signer, timeout_s=1.0)
        setup_model(dev, tflite_model)
        t0 = time.perf_counter()
        with pytest.raises(Exception):  # noqa: B017 -- adb-shell's timeout types vary by version
            dev.shell(RUN, read_timeout_s=1.0, transport_timeout_s=1.0)
        assert time.perf_counter() - t0 < 10
        dev.close()
        dev = connect(emu, signer)
        assert dev.shell(RUN, read_timeout_s=30).endswith("__RC=0\n")
        assert emu.counters.hangs == 1


@pytest.mark.tflite
def test_short_hang_then_finishes(signer, tflite_model):
    with server("hang-once,hang-s=0.6") as emu:
        dev = connect(emu, signer)
        setup_model(dev, tflite_model)
        t0 = time.perf_counter()
        out = dev.shell(RUN, read_timeout_s=30)
        assert out.endswith("__RC=0\n") and time.perf_counter() - t0 >= 0.6


@pytest.mark.tflite
def test_crash_once_then_healthy(signer, tflite_model):
    with server("crash-once") as emu:
        dev = connect(emu, signer)
        setup_model(dev, tflite_model)
        out = dev.shell(RUN, read_timeout_s=30)
        assert "Running benchmark for at least 1 iterations" in out
        assert "Segmentation fault" in out and out.endswith("__RC=139\n")
        assert "Inference timings" not in out
        assert dev.shell(RUN, read_timeout_s=30).endswith("__RC=0\n")
        assert emu.counters.crashes == 1


@pytest.mark.tflite
def test_fail_always(signer, tflite_model):
    with server("fail-always") as emu:
        dev = connect(emu, signer)
        setup_model(dev, tflite_model)
        for _ in range(2):
            out = dev.shell(RUN, read_timeout_s=30)
            assert "failed to invoke." in out and "ERROR: Benchmarking failed." in out
            assert out.endswith("__RC=1\n")
        assert emu.counters.benchmarks_completed == 0


def test_forced_temperature_decays(signer):
    with server("temp=48000,temp-decay=5") as emu:
        dev = connect(emu, signer)
        first = int(dev.shell(ZONE0))
        time.sleep(1.0)
        second = int(dev.shell(ZONE0))
        assert 45000 <= first <= 48000 and first - second >= 4000
        skin = dev.shell("cat /sys/class/thermal/thermal_zone*/type | grep -n skin").split(":")[0]
        assert int(dev.shell(f"cat /sys/class/thermal/thermal_zone{int(skin) - 1}/temp")) < second


def test_forced_temperature_without_decay_stays_and_throttles(signer):
    with server("temp=52000") as emu:
        dev = connect(emu, signer)
        assert int(dev.shell(ZONE0)) == 52000
        big = int(dev.shell("cat /sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq"))
        little = int(dev.shell("cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"))
        assert big < 2841600 and little == 1785600


@pytest.mark.tflite
def test_benchmarks_heat_the_phone(signer, tflite_model):
    with server("", heat_c_per_busy_s=200.0) as emu:
        dev = connect(emu, signer)
        setup_model(dev, tflite_model)
        before = int(dev.shell(ZONE0))
        dev.shell(RUN.replace("--min_secs=0", "--min_secs=0.2"), read_timeout_s=30)
        assert int(dev.shell(ZONE0)) > before + 1000


def test_slow_replies(signer):
    with server("slow=0.05") as emu:
        dev = connect(emu, signer)
        t0 = time.perf_counter()
        assert dev.shell("echo hi") == "hi\n"
        assert time.perf_counter() - t0 >= 0.15  # OKAY, WRTE and CLSE each delayed
