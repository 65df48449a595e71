"""An ADB device emulator: a real ADB peer (device side) over TCP, for testing the phone path.

Debian's ``adb`` client (``adb connect 127.0.0.1:PORT``) and the pure-Python ``adb-shell`` library
both talk to it. Behind the transport sits an emulated Pixel 4 (``phone.py``): a sandboxed
filesystem, ``getprop``, thermal zones and cpufreq files, a small shell interpreted in Python
(``shell.py``; nothing a client sends runs on the host) and an emulated ``benchmark_model``
that runs pushed ``.tflite`` files for real with LiteRT on the host CPU (``benchmark.py``).

Usage::

    with EmulatorServer(port=0) as emu:            # background thread, loopback only
        AdbDeviceTcp("127.0.0.1", emu.port) ...     # or: adb connect 127.0.0.1:<emu.port>
        emu.counters.snapshot()                     # connections, benchmarks, pushes, faults...

Transport behaviour: CNXN (version answered as min(host, 0x01000001), max payload 256 KiB; every
message we send carries a correct checksum; incoming checksums are verified for hosts on the old
version), AUTH (token, RSA signature check against known keys, RSAPUBLICKEY accepted like a user
tapping "allow" unless ``authorized_keys`` restricts it; a rejected key gets no answer, as a phone
whose user ignores the dialog), OPEN/OKAY/WRTE/CLSE with one unacknowledged WRTE per stream in
each direction, CLSE answered with CLSE, any number of streams and connections (a thread each).
Unknown services (``reboot:``, ``root:``, ``remount:``...) are refused with CLSE.
The device banner advertises ``shell_v2,stat_v2,ls_v2,fixed_push_mkdir``.

Faults (``FaultSpec.parse``): see ``faults.py``. Command line: ``python -m latkit.devices.emulator``
or ``lat device emulate``.
"""

from __future__ import annotations

import argparse
import ipaddress
import queue
import secrets
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import latkit.devices.emulator.protocol as P
from latkit.devices.emulator.faults import FaultSpec
from latkit.devices.emulator.phone import EmulatedPhone, EmulatorCounters, PhoneProfile, ThermalModel
from latkit.devices.emulator.services import is_supported, run_service
from latkit.devices.emulator.session import SessionHooks
from latkit.errors import DeviceError, LatkitError

__all__ = ["EmulatorServer", "FaultSpec", "add_arguments", "main", "serve_forever_cli"]

FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")
MAX_INCOMING_PAYLOAD = 1024 * 1024 + 64


class _Stream:
    """One ADB stream (device side)."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.ready = threading.Event()
        self.ready.set()
        self.closed = threading.Event()
        self.sent_close = False
        self._close_lock = threading.Lock()
        self._buf = bytearray()
        self._eof = False
        self.hooks = SessionHooks(drop=conn.drop, wait_closed=self._wait_closed)

    @property
    def max_payload(self) -> int:
        return self.conn.max_out

    def _wait_closed(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if self.closed.is_set() or self.conn.closed.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.closed.wait(min(left, 0.05))

    def write(self, data: bytes) -> None:
        step = self.conn.max_out
        for off in range(0, len(data), step):
            while not self.ready.wait(0.1):
                if self.closed.is_set() or self.conn.closed.is_set():
                    raise ConnectionAbortedError("stream closed")
            if self.closed.is_set():
                raise ConnectionAbortedError("stream closed")
            self.ready.clear()
            self.conn.send(P.Message(b"WRTE", self.local_id, self.remote_id, data[off:off + step]))

    def read_some(self) -> bytes | None:
        if self._buf:
            data, self._buf = bytes(self._buf), bytearray()
            return data
        if self._eof:
            return None
        data = self.inbox.get()
        if data is None:
            self._eof = True
        return data

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof:
                raise EOFError("stream closed")
            data = self.inbox.get()
            if data is None:
                self._eof = True
                continue
            self._buf.extend(data)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def remote_closed(self) -> None:
        self.closed.set()
        self.ready.set()
        self.inbox.put(None)

    def claim_close(self) -> bool:
        """True exactly once: whoever gets it sends our CLSE."""
        with self._close_lock:
            first, self.sent_close = not self.sent_close, True
            return first

    def close(self) -> None:
        self.closed.set()
        self.conn.forget(self)
        if self.claim_close() and not self.conn.closed.is_set():
            self.conn.send(P.Message(b"CLSE", self.local_id, self.remote_id))


class _Connection:
    """One TCP connection from a host; runs in its own thread."""

    def __init__(self, server: EmulatorServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.closed = threading.Event()
        self.send_lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.streams_lock = threading.Lock()
        self.client_version: int | None = None
        self.max_out = P.MAX_PAYLOAD_LEGACY
        self.token: bytes | None = None
        self.online = False

    def send(self, msg: P.Message) -> None:
        with self.send_lock:
            if self.server.faults.slow_s:
                time.sleep(self.server.faults.slow_s)
            if self.closed.is_set():
                raise ConnectionAbortedError("connection closed")
            self.sock.sendall(msg.pack())

    def drop(self) -> None:
        """Abruptly close the TCP connection with a reset (injected fault, or server stop)."""
        self.closed.set()
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RD)  # wakes our reader; the last close sends a RST
        except OSError:
            pass
        self.sock.close()

    def forget(self, stream: _Stream) -> None:
        with self.streams_lock:
            self.streams.pop(stream.local_id, None)

    def run(self) -> None:
        try:
            while not self.closed.is_set():
                verify = self.client_version is None or self.client_version < P.VERSION_SKIP_CHECKSUM
                msg = P.read_message(self.sock, MAX_INCOMING_PAYLOAD, verify_checksum=verify,
                                     allow_zero_checksum=self.client_version is None)
                self.dispatch(msg)
        except (ConnectionError, OSError, DeviceError):
            pass
        finally:
            self.closed.set()
            with self.streams_lock:
                streams, self.streams = list(self.streams.values()), {}
            for s in streams:
                s.remote_closed()
            try:
                self.sock.close()
            except OSError:
                pass
            self.server._forget(self)

    def send_cnxn(self) -> None:
        self.online = True
        version = max(P.VERSION_MIN, min(self.client_version or P.VERSION_MIN, P.VERSION_SKIP_CHECKSUM))
        banner = P.device_banner(self.server.phone.props, FEATURES)
        self.send(P.Message(b"CNXN", version, P.MAX_PAYLOAD, banner))

    def send_token(self) -> None:
        self.token = secrets.token_bytes(P.TOKEN_SIZE)
        self.server.counters.bump("auth_tokens_sent")
        self.send(P.Message(b"AUTH", P.AUTH_TOKEN, 0, self.token))

    def dispatch(self, msg: P.Message) -> None:
        cmd = msg.command
        if cmd == b"CNXN":
            self.client_version = msg.arg0
            self.max_out = min(msg.arg1 or P.MAX_PAYLOAD_LEGACY, P.MAX_PAYLOAD)
            if self.server.require_auth and not self.online:
                self.send_token()
            else:
                self.send_cnxn()
        elif cmd == b"AUTH":
            self.on_auth(msg)
        elif not self.online:
            return
        elif cmd == b"OPEN":
            self.on_open(msg)
        elif cmd in (b"OKAY", b"WRTE", b"CLSE"):
            with self.streams_lock:
                stream = self.streams.get(msg.arg1)
            if stream is None:
                return
            if cmd == b"OKAY":
                stream.ready.set()
            elif cmd == b"WRTE":
                stream.inbox.put(msg.data)
                self.send(P.Message(b"OKAY", stream.local_id, stream.remote_id))
            else:
                self.forget(stream)
                stream.remote_closed()
                if stream.claim_close():
                    self.send(P.Message(b"CLSE", stream.local_id, stream.remote_id))

    def on_auth(self, msg: P.Message) -> None:
        if self.online or self.token is None:
            return
        if msg.arg0 == P.AUTH_SIGNATURE:
            if self.server._verify(self.token, msg.data):
                self.server.counters.bump("auth_signatures_ok")
                self.send_cnxn()
            else:
                self.send_token()
        elif msg.arg0 == P.AUTH_RSAPUBLICKEY:
            try:
                key = P.AndroidPublicKey.parse(msg.data)
            except DeviceError:
                return
            if self.server._accept_key(key):
                self.server.counters.bump("auth_keys_accepted")
                self.send_cnxn()

    def on_open(self, msg: P.Message) -> None:
        service = msg.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        if not is_supported(service):
            self.send(P.Message(b"CLSE", 0, msg.arg0))
            return
        with self.streams_lock:
            local_id = self.server._next_id()
            stream = _Stream(self, local_id, msg.arg0)
            self.streams[local_id] = stream
        self.server.counters.bump("streams_opened")
        self.send(P.Message(b"OKAY", local_id, msg.arg0))
        threading.Thread(target=run_service, args=(service, stream, self.server.phone, self.server.faults),
                         name=f"adb-emu-stream-{local_id}", daemon=True).start()


class EmulatorServer:
    """A TCP ADB device on a loopback address. ``start()``/``stop()`` or use as a context manager."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        profile: str | Path | PhoneProfile = "pixel4",
        faults: FaultSpec | str | None = None,
        root: Path | None = None,
        require_auth: bool = True,
        authorized_keys: list[str] | None = None,
        benchmark_model: bool = False,
    ) -> None:
        _check_loopback(host)
        self.host, self.require_auth = host, require_auth
        self.faults = FaultSpec.parse(faults) if isinstance(faults, str) else (faults or FaultSpec())
        self.profile = PhoneProfile.load(profile)
        self.counters = EmulatorCounters()
        self._trusted = (None if authorized_keys is None
                         else [P.AndroidPublicKey.parse(k) for k in authorized_keys])
        self._accepted: list[P.AndroidPublicKey] = list(self._trusted or [])
        self._lock = threading.Lock()
        self._ids = 0
        self._conns: set[_Connection] = set()
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="latkit-adb-emu-")
        self.root = Path(root) if root is not None else Path(self._tmp.name)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise DeviceError(f"emulator cannot listen on {host}:{port}: {exc}; pick another port") from None
        self.port = self._sock.getsockname()[1]
        self.serial = f"{host}:{self.port}"
        thermal = ThermalModel(self.profile, self.faults.temp_mc, self.faults.temp_decay_c_per_s)
        self.phone = EmulatedPhone(self.profile, self.root, self.serial, self.counters, thermal)
        if benchmark_model:
            install_benchmark_model(self.phone)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> EmulatorServer:
        if self._thread is None:
            self._sock.listen(16)
            self._thread = threading.Thread(target=self._accept_loop, name="adb-emu-accept", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.drop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            with self._lock:
                self._conns.add(conn)
            self.counters.bump("connections_accepted")
            threading.Thread(target=conn.run, name="adb-emu-conn", daemon=True).start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _verify(self, token: bytes, signature: bytes) -> bool:
        with self._lock:
            keys = list(self._accepted)
        return any(k.verify_token(token, signature) for k in keys)

    def _accept_key(self, key: P.AndroidPublicKey) -> bool:
        with self._lock:
            if self._trusted is not None and all(k.modulus != key.modulus for k in self._trusted):
                return False
            if all(k.modulus != key.modulus for k in self._accepted):
                self._accepted.append(key)
            return True


#: where a developer's phone holds benchmark_model (TFLite's docs push it to /data/local/tmp)
DEVELOPER_BENCHMARK_MODEL = "/data/local/tmp/benchmark_model"


def emulated_tool_bytes(abi: str) -> bytes:
    """The file standing for benchmark_model on the emulated phone: a 64-byte ELF header of the
    phone's ABI (what a host check of the build reads) and a note; running it runs ``benchmark.py``."""
    elf_class, machine = {"arm64-v8a": (2, 183), "armeabi-v7a": (1, 40), "x86_64": (2, 62),
                          "x86": (1, 3)}.get(abi, (2, 183))
    ident = b"\x7fELF" + bytes([elf_class, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    return header + b"latkit ADB emulator: benchmark_model (real LiteRT inference on the host CPU)\n"


def install_benchmark_model(phone: EmulatedPhone, remote: str = DEVELOPER_BENCHMARK_MODEL) -> str:
    """Put the emulated benchmark_model where a developer's phone has it (executable); its path."""
    phone.fs.write(remote, emulated_tool_bytes(phone.profile.abi), mode=0o755)
    phone.fs.chmod(remote, 0o755)
    return remote


def _check_loopback(host: str) -> None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is None or not addr.is_loopback:
        raise DeviceError(
            f"the ADB emulator only binds loopback addresses (127.0.0.1, ::1), got {host!r}: "
            "it accepts any adb key and must not be reachable from other machines"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLI options ``serve_forever_cli`` reads (for whoever wires it into ``lat``)."""
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one; avoid 5555-5585)")
    phone_option(parser)
    parser.add_argument("--faults", default="", help="fault spec, e.g. 'drop-after=2,slow=0.1'")
    parser.add_argument("--root", type=Path, default=None, help="directory standing for the phone's /")
    parser.add_argument("--no-auth", dest="no_auth", action="store_true", help="skip ADB RSA auth")
    bare_option(parser)


def phone_option(parser: argparse.ArgumentParser) -> None:
    """``--phone NAME`` (alias ``--profile``): which phone to play."""
    parser.add_argument("--phone", "--profile", dest="profile", default="pixel4", metavar="NAME",
                        help="the phone to play: a device profile name (pixel4, pixel7, galaxy-s22, "
                        "budget-a55, any of `lat device list`) or a YAML path (default pixel4)")


def bare_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bare", action="store_true",
                        help=f"a bare phone: no benchmark_model on it (by default it is at "
                        f"{DEVELOPER_BENCHMARK_MODEL}, as on a developer's phone)")


def serve_forever_cli(args: argparse.Namespace) -> int:
    """Run an emulator until Ctrl-C; prints one line with the serial to connect to."""
    server = EmulatorServer(
        port=args.port, host=getattr(args, "host", "127.0.0.1"), profile=args.profile,
        faults=FaultSpec.parse(args.faults), root=args.root, require_auth=not args.no_auth,
        benchmark_model=not getattr(args, "bare", False),
    )
    server.start()
    tool = "bare: no benchmark_model" if getattr(args, "bare", False) else \
        f"benchmark_model at {DEVELOPER_BENCHMARK_MODEL}"
    print(f"emulating {server.profile.name} on {server.host}:{server.port} (serial {server.serial})",
          flush=True)
    print(f"  {server.profile.model} ({server.profile.soc or server.profile.board}, "
          f"{len(server.profile.cpu_max_khz)} CPUs, Android {server.profile.release}); {tool}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m latkit.devices.emulator --port 5600``: a user error is one line, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m latkit.devices.emulator",
                                     description="ADB device emulator (latkit)")
    add_arguments(parser)
    try:
        return serve_forever_cli(parser.parse_args(argv))
    except LatkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

