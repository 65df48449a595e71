"""The ADB device emulator end to end with the pure-Python ``adb-shell`` client and a raw client."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time

import pytest

from latkit.devices.emulator import EmulatorServer, PhoneProfile
from latkit.devices.emulator import protocol as P
from latkit.errors import DeviceError

adb_shell = pytest.importorskip("adb_shell")
from adb_shell.adb_device import AdbDeviceTcp  # noqa: E402
from adb_shell.auth.keygen import keygen  # noqa: E402
from adb_shell.auth.sign_pythonrsa import PythonRSASigner  # noqa: E402

BENCH = "/data/local/tmp/latkit/benchmark_model"
GRAPH = "/data/local/tmp/latkit/tiny.tflite"
QUICK = "--warmup_runs=2 --warmup_min_secs=0 --num_runs=10 --min_secs=0.05"
STATS = re.compile(r"^INFO: count=(\d+) first=\d+ curr=\d+ min=(\d+) max=(\d+) avg=([\d.e+]+) std=\d+ "
                   r"p5=\d+ median=(\d+) p95=\d+$", re.M)


def _make_key(directory) -> PythonRSASigner:
    path = directory / "adbkey"
    keygen(str(path))
    return PythonRSASigner.FromRSAKeyPath(str(path))


@pytest.fixture(scope="session")
def signer(tmp_path_factory) -> PythonRSASigner:
    return _make_key(tmp_path_factory.mktemp("adbkey"))


@pytest.fixture
def emu():
    with EmulatorServer(port=0) as server:
        yield server


def connect(emu: EmulatorServer, signer, **kw) -> AdbDeviceTcp:
    dev = AdbDeviceTcp("127.0.0.1", emu.port, default_transport_timeout_s=10)
    dev.connect(rsa_keys=[signer] if signer else None, auth_timeout_s=kw.get("auth_timeout_s", 5))
    return dev


def install_benchmark(dev: AdbDeviceTcp, tflite, tmp_path) -> None:
    fake = tmp_path / "benchmark_model"
    fake.write_bytes(b"\x7fELF not really")
    dev.shell("mkdir -p /data/local/tmp/latkit")
    dev.push(str(fake), BENCH)
    dev.push(str(tflite), GRAPH)
    assert dev.shell(f"chmod 755 {BENCH}; echo __RC=$?").strip() == "__RC=0"


# --- protocol units -----------------------------------------------------------------------------


def test_message_pack_and_header_checks():
    raw = P.Message(b"WRTE", 1, 2, b"hello").pack()
    assert len(raw) == 24 + 5
    header = P.unpack_header(raw[:24])
    assert (header.command, header.arg0, header.arg1, header.data_length) == (b"WRTE", 1, 2, 5)
    assert header.data_check == sum(b"hello")
    bad = bytearray(raw[:24])
    bad[20] ^= 1
    with pytest.raises(DeviceError, match="magic"):
        P.unpack_header(bytes(bad))


def test_android_public_key_signature_check(signer):
    key = P.AndroidPublicKey.parse(signer.GetPublicKey())
    token = os.urandom(P.TOKEN_SIZE)
    assert key.verify_token(token, signer.Sign(token))
    assert not key.verify_token(os.urandom(P.TOKEN_SIZE), signer.Sign(token))
    with pytest.raises(DeviceError):
        P.AndroidPublicKey.parse("bm90IGEga2V5 user@host")


def test_emulator_binds_loopback_only():
    with pytest.raises(DeviceError, match="loopback"):
        EmulatorServer(port=0, host="0.0.0.0")


# --- adb-shell ----------------------------------------------------------------------------------


def test_auth_new_key_then_known_key(emu, signer):
    dev = connect(emu, signer)
    assert dev.shell("echo hello") == "hello\n"
    dev.close()
    assert emu.counters.auth_keys_accepted == 1 and emu.counters.auth_signatures_ok == 0
    dev = connect(emu, signer)  # the key is known now: the signature alone authenticates
    assert dev.shell("getprop ro.product.model") == "Pixel 4\n"
    dev.close()
    assert emu.counters.auth_signatures_ok == 1 and emu.counters.connections_accepted == 2


def test_authorized_keys_restrict_access(signer, tmp_path):
    other = _make_key(tmp_path)
    with EmulatorServer(port=0, authorized_keys=[other.GetPublicKey()]) as emu:
        assert connect(emu, other).shell("echo in") == "in\n"
        # no answer to an unknown key, as when nobody taps "allow": adb-shell's timeout types vary
        with pytest.raises(Exception):  # noqa: B017
            connect(emu, signer, auth_timeout_s=0.5)
        assert emu.counters.auth_keys_accepted == 0


def test_no_auth_mode():
    with EmulatorServer(port=0, require_auth=False) as emu:
        dev = connect(emu, None)
        assert dev.shell("echo open") == "open\n"
        assert emu.counters.auth_tokens_sent == 0


def test_push_pull_5mb_byte_identical(emu, signer, tmp_path):
    data = os.urandom(5 * 1024 * 1024)
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    dev = connect(emu, signer)
    t0 = time.perf_counter()
    dev.push(str(src), "/data/local/tmp/new/dir/src.bin")
    push_s = time.perf_counter() - t0
    dev.pull("/data/local/tmp/new/dir/src.bin", str(back))
    assert back.read_bytes() == data
    assert push_s < 5.0
    out = dev.shell("sha256sum /data/local/tmp/new/dir/src.bin; stat -c %s /data/local/tmp/new/dir/src.bin")
    assert out.split()[0] == hashlib.sha256(data).hexdigest() and out.split()[-1] == str(len(data))
    mode, size, _ = dev.stat("/data/local/tmp/new/dir/src.bin")
    assert size == len(data) and mode & 0o170000 == 0o100000
    assert [f.filename for f in dev.list("/data/local/tmp/new/dir")] == [b".", b"..", b"src.bin"]
    with pytest.raises(Exception, match="Read-only|couldn't create"):
        dev.push(str(src), "/system/bin/evil")
    assert emu.counters.files_pushed == 1 and emu.counters.files_pulled == 1


def test_shell_exit_status_quoting_and_errors(emu, signer):
    dev = connect(emu, signer)
    assert dev.shell("ls /nope; echo __RC=$?").splitlines() == ["ls: /nope: No such file or directory", "__RC=1"]
    assert dev.shell("'exit' 4; echo unreachable") == ""
    assert dev.shell("frob 2>&1; echo $?").splitlines()[-1] == "127"
    assert dev.shell("taskset 70 getprop ro.product.device") == "flame\n"
    assert emu.counters.taskset_masks == ["70"]


def test_concurrent_connections(emu, signer):
    results, errors = [], []

    def work() -> None:
        try:
            dev = connect(emu, signer)
            results.append(dev.shell("sleep 0.5; echo done"))
            dev.close()
        except Exception as exc:  # noqa: BLE001 -- a thread's failure of any kind is reported below
            errors.append(exc)

    connect(emu, signer).close()  # get the key accepted first
    threads = [threading.Thread(target=work) for _ in range(3)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and results == ["done\n"] * 3
    assert time.perf_counter() - t0 < 1.4  # the three sleeps overlapped


# --- raw protocol: shell v2 and refused services -------------------------------------------------


def _raw_connect(port: int, version: int = P.VERSION_SKIP_CHECKSUM) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(P.Message(b"CNXN", version, P.MAX_PAYLOAD, b"host::features=shell_v2\0").pack())
    msg = P.read_message(s, 1 << 20, verify_checksum=True)
    assert msg.command == b"CNXN" and msg.arg0 == version
    assert b"features=shell_v2" in msg.data and b"ro.product.model=Pixel 4" in msg.data
    return s


def _run_v2(s: socket.socket, command: str, local_id: int = 7) -> tuple[bytes, bytes, int | None]:
    s.sendall(P.Message(b"OPEN", local_id, 0, f"shell,v2,raw:{command}\0".encode()).pack())
    okay = P.read_message(s, 1 << 20, verify_checksum=True)
    assert okay.command == b"OKAY" and okay.arg1 == local_id
    stream = bytearray()
    while True:
        msg = P.read_message(s, 1 << 20, verify_checksum=True)
        if msg.command == b"WRTE":
            stream += msg.data
            s.sendall(P.Message(b"OKAY", local_id, okay.arg0).pack())
        elif msg.command == b"CLSE":
            s.sendall(P.Message(b"CLSE", local_id, okay.arg0).pack())
            break
    out, err, code = b"", b"", None
    for packet_id, data in P.split_shell_packets(stream):
        if packet_id == P.SHELL_STDOUT:
            out += data
        elif packet_id == P.SHELL_STDERR:
            err += data
        elif packet_id == P.SHELL_EXIT:
            code = data[0]
    return out, err, code


def test_shell_v2_separates_streams_and_reports_exit_code():
    with EmulatorServer(port=0, require_auth=False) as emu:
        s = _raw_connect(emu.port)
        assert _run_v2(s, "echo out; echo err >&2; exit 3") == (b"out\n", b"err\n", 3)
        assert _run_v2(s, "cat /nope", local_id=8) == (b"", b"cat: /nope: No such file or directory\n", 1)
        s.sendall(P.Message(b"OPEN", 9, 0, b"reboot:\0").pack())
        refused = P.read_message(s, 1 << 20, verify_checksum=True)
        assert (refused.command, refused.arg1) == (b"CLSE", 9)
        s.close()


def test_old_protocol_clients_get_checksums_verified():
    with EmulatorServer(port=0, require_auth=False) as emu:
        s = _raw_connect(emu.port, version=P.VERSION_MIN)
        bad = bytearray(P.Message(b"OPEN", 1, 0, b"shell:echo x\0").pack())
        bad[16] ^= 0xFF  # corrupt the checksum field
        s.sendall(bytes(bad))
        s.settimeout(5)
        assert s.recv(1) == b""  # the device hangs up
        s.close()


# --- the emulated benchmark_model ---------------------------------------------------------------


@pytest.mark.tflite
def test_benchmark_model_runs_the_model_for_real(emu, signer, tflite_model, tmp_path):
    dev = connect(emu, signer)
    install_benchmark(dev, tflite_model, tmp_path)
    out = dev.shell(f"taskset 70 {BENCH} --graph={GRAPH} --num_threads=1 {QUICK}; echo __RC=$?",
                    read_timeout_s=60)
    assert out.rstrip().endswith("__RC=0"), out
    assert "INFO: STARTING!" in out and f"INFO: Graph: [{GRAPH}]" in out and "INFO: Num threads: [1]" in out
    assert f"INFO: Loaded model {GRAPH}" in out
    stats = STATS.findall(out)
    assert len(stats) == 2, out  # warm-up and timed runs
    count, lo, hi, avg, median = stats[1]
    assert int(count) >= 10 and 0 < int(lo) <= int(median) <= int(hi) and float(avg) > 0
    summary = re.search(r"^INFO: Inference timings in us: Init: (\d+), First inference: (\d+), "
                        r"Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)$", out, re.M)
    assert summary and int(summary.group(1)) > 0 and float(summary.group(4)) == float(avg)
    assert "Memory footprint delta from the start of the tool (MB): init=" in out
    assert emu.counters.benchmarks_completed == 1 and emu.counters.taskset_masks == ["70"]


@pytest.mark.tflite
def test_benchmark_model_errors(emu, signer, tflite_model, tmp_path):
    dev = connect(emu, signer)
    install_benchmark(dev, tflite_model, tmp_path)
    out = dev.shell(f"{BENCH} --graph=/data/local/tmp/missing.tflite; echo __RC=$?")
    assert "ERROR: Could not open '/data/local/tmp/missing.tflite'." in out and out.endswith("__RC=1\n")
    out = dev.shell(f"{BENCH} --graph={BENCH}; echo __RC=$?")
    assert "ERROR: The model is not a valid Flatbuffer buffer" in out and "__RC=1" in out
    out = dev.shell(f"{BENCH} --graph={GRAPH} --use_gpu=true; echo __RC=$?")
    assert "ERROR: Failed to apply GPU delegate." in out and "ERROR: Benchmarking failed." in out
    out = dev.shell(f"{BENCH} --graph={GRAPH} --frobnicate=1 {QUICK}; echo __RC=$?", read_timeout_s=60)
    assert "WARN: Unconsumed cmdline flags: --frobnicate=1" in out and out.endswith("__RC=0\n")
    out = dev.shell(f"{BENCH} --graph={GRAPH} --num_runs=many; echo __RC=$?")
    assert "ERROR: Failed to parse flag" in out and "__RC=1" in out
    assert dev.shell(f"chmod 644 {BENCH}; {BENCH} --graph={GRAPH}; echo $?").endswith("126\n")


@pytest.mark.tflite
@pytest.mark.parametrize("fmt", ["modern", "legacy", "nostats"])
def test_benchmark_formats_and_op_profiling(signer, tflite_model, tmp_path, fmt):
    profile = PhoneProfile().replace(format=fmt, preinstalled=True)
    with EmulatorServer(port=0, profile=profile) as emu:
        dev = connect(emu, signer)
        dev.push(str(tflite_model), GRAPH)
        out = dev.shell(f"benchmark_model --graph={GRAPH} {QUICK} --enable_op_profiling=true 2>&1; echo __RC=$?",
                        read_timeout_s=60)
    assert out.endswith("__RC=0\n"), out
    if fmt == "modern":
        assert "p5=" in out and "Inference timings in us: Init:" in out
        assert "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:" in out
    else:
        assert "p5=" not in out and "INFO:" not in out
        label = "Inference" if fmt == "legacy" else "no stats"
        assert re.search(rf"^Average inference timings in us: Warmup: [\d.e+]+, Init: \d+, {label}: [\d.e+]+$", out, re.M)
    tables = out.split("Operator-wise Profiling Info for Regular Benchmark Runs:")[1]
    header = next(line for line in tables.splitlines() if "[node type]" in line)
    cells = [c.strip() for c in header.split("\t") if c.strip()]
    expected = ["[node type]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]", "[Name]"]
    if fmt != "modern":
        expected.insert(1, "[start]")
    assert cells == expected
    rows = [line.split("\t")[1:] for line in tables.split("Top by Computation Time")[0].splitlines()
            if line.startswith("\t") and "[node type]" not in line]
    assert {r[0].strip() for r in rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D"}
    assert all(float(r[-3].strip()) == 0.0 and r[-1].endswith(f":{i}") for i, r in enumerate(rows))
    assert "Summary by node type" in tables and re.search(r"^\d+ nodes observed$", tables, re.M)


@pytest.mark.tflite
def test_output_parses_with_the_android_parser(signer, tflite_model):
    parser = pytest.importorskip("latkit.devices.android.parse")
    with EmulatorServer(port=0, profile=PhoneProfile().replace(preinstalled=True)) as emu:
        dev = connect(emu, signer)
        dev.push(str(tflite_model), GRAPH)
        out = dev.shell(f"taskset f0 benchmark_model --graph={GRAPH} --num_threads=2 {QUICK} "
                        "--enable_op_profiling=true", read_timeout_s=60)
    result = parser.parse_benchmark_output(out)
    assert result.stats.count >= 10 and result.num_threads == 2 and result.stats.median_us > 0


def test_command_line_entry_point():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "latkit.devices.emulator", "--port", "0", "--no-auth"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"emulating pixel4 on 127\.0\.0\.1:(\d+) \(serial 127\.0\.0\.1:(\d+)\)\n", line)
        assert m and m.group(1) == m.group(2), line + proc.stderr.read() if not m else line
        dev = AdbDeviceTcp("127.0.0.1", int(m.group(1)), default_transport_timeout_s=10)
        dev.connect(rsa_keys=None)
        assert dev.shell("echo cli") == "cli\n"
        dev.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    bad = subprocess.run([sys.executable, "-m", "latkit.devices.emulator", "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "loopback" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.tflite
def test_benchmark_model_runs_int8_and_fp16_models(emu, signer, tflite_model, tmp_path):
    """Quantized models run through LiteRT as fp32 ones do; a delegate the profile lacks still
    fails as the real tool fails."""
    pytest.importorskip("ai_edge_quantizer")
    import numpy as np

    from latkit.devices.precision import detect_precision
    from latkit.profiler.quantize import quantize_file

    dev = connect(emu, signer)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    for prec in ("int8", "fp16"):
        model = quantize_file(tflite_model, tmp_path / f"tiny-{prec}.tflite", "tflite", prec, calib)
        assert detect_precision(model) == prec
        install_benchmark(dev, model, tmp_path)
        out = dev.shell(f"{BENCH} --graph={GRAPH} --num_threads=1 {QUICK}; echo __RC=$?",
                        read_timeout_s=60)
        assert out.rstrip().endswith("__RC=0"), out
        count, lo, hi, avg, median = STATS.findall(out)[1]
        assert int(count) >= 10 and 0 < int(lo) <= int(median) <= int(hi)
        out = dev.shell(f"{BENCH} --graph={GRAPH} --use_nnapi=true; echo __RC=$?")
        assert "ERROR: Failed to apply NNAPI delegate." in out and "__RC=1" in out
