"""The ADB emulator against Debian's ``adb`` client, an independent implementation of the host side.

Isolated from any real adb setup: its own HOME (so its own ~/.android/adbkey), its own server port
(ANDROID_ADB_SERVER_PORT, never 5037), the emulator off the 5555-5585 range the server probes, and
``adb kill-server`` at the end. If ``adb`` is missing and we are root with apt, it is installed once
(``apt-get install -y adb``); otherwise the tests skip saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from latkit.devices.emulator import EmulatorServer

pytestmark = pytest.mark.adb
_install_attempted: list[str] = []


def _find_adb() -> str | None:
    adb = shutil.which("adb")
    if adb or _install_attempted:
        return adb
    _install_attempted.append("yes")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        if subprocess.run(["apt-get", "install", "-y", "adb"], env=env, capture_output=True, timeout=300).returncode:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "adb"], env=env, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("adb")


def _free_port(avoid: range = range(5037, 5600)) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


class Adb:
    def __init__(self, exe: str, home, server_port: int) -> None:
        self.exe = exe
        self.env = dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(server_port),
                        ADB_MDNS="0", ADB_MDNS_AUTO_CONNECT="0")
        self.env.pop("ANDROID_SERIAL", None)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def adb(tmp_path_factory):
    exe = _find_adb()
    if exe is None:
        pytest.skip("Debian's adb client is not installed and could not be installed "
                    "(run: apt-get install -y adb)")
    home = tmp_path_factory.mktemp("adbhome")
    client = Adb(exe, home, _free_port())
    try:
        started = client("start-server", timeout=60)
        assert started.returncode == 0, started.stderr
        yield client
    finally:
        client("kill-server", timeout=30)


@pytest.fixture(scope="module")
def device(adb):
    with EmulatorServer(port=_free_port()) as emu:
        serial = emu.serial
        out = adb("connect", serial, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        ready = adb("-s", serial, "wait-for-device", timeout=30)
        assert ready.returncode == 0, ready.stderr
        yield emu, serial
        adb("disconnect", serial, timeout=30)


def test_devices_lists_the_emulated_phone(adb, device):
    emu, serial = device
    out = adb("devices", "-l").stdout
    assert f"{serial}" in out and "device product:flame model:Pixel_4 device:flame" in out
    assert emu.counters.auth_keys_accepted >= 1  # Debian adb sent its own key from $HOME/.android


def test_shell_output_exit_code_and_stderr(adb, device):
    _, serial = device
    out = adb("-s", serial, "shell", "echo", "hi")
    assert (out.returncode, out.stdout) == (0, "hi\n")
    assert adb("-s", serial, "shell", "exit 3").returncode == 3
    out = adb("-s", serial, "shell", "echo out; echo err >&2; getprop ro.product.model")
    assert out.stdout == "out\nPixel 4\n" and out.stderr == "err\n"


def test_push_pull_5mb_byte_identical(adb, device, tmp_path):
    emu, serial = device
    data = os.urandom(5 * 1024 * 1024)
    src, back = tmp_path / "five.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    pushed = adb("-s", serial, "push", str(src), "/data/local/tmp/")
    assert pushed.returncode == 0, pushed.stderr
    assert "1 file pushed" in pushed.stdout
    assert (emu.root / "data/local/tmp/five.bin").read_bytes() == data
    pulled = adb("-s", serial, "pull", "/data/local/tmp/five.bin", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert back.read_bytes() == data
    listing = adb("-s", serial, "ls", "/data/local/tmp").stdout
    assert "five.bin" in listing
    denied = adb("-s", serial, "push", str(src), "/system/bin/evil")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr + denied.stdout
