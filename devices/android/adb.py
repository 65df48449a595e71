"""The adb link of the Android device agent: key, connection, shell with exit status, push.

Only ``devices/android/`` knows adb (DESIGN). This one wraps the pure-Python ``adb-shell``
client (the ``android`` extra) and adds what it lacks:

* **The host key.** adb authenticates the host with an RSA key pair. ``ensure_adb_key`` creates it
  once (``adb_shell.auth.keygen``) at ``~/.latkit/adbkey`` (or ``$LATKIT_ADB_KEY``), with file mode
  0600 from the first byte, and repairs a key file that others can read.
* **Exit status.** ``shell()`` merges stderr into stdout and returns no exit status, so every command
  is sent as ``<command>; echo __LATKIT_RC=$?`` and the marker is parsed off the end. Output without
  the marker means the stream was cut: a link failure, not a result.
* **A closed connection.** adb-shell's TCP transport treats ``recv() == b""`` as "no data yet" and
  spins until the read timeout (minutes, for a benchmark); ``_EofTcpTransport`` raises at once. It
  also sets ``TCP_NODELAY`` (adb-shell writes header and payload separately; with Nagle's algorithm
  every command waited ~40 ms for a delayed ACK).
* **One failure type.** Timeouts, resets, broken pipes and bad checksums all become ``LinkError``,
  which the device answers by closing, reconnecting and retrying (bounded).

Commands are argument lists; ``quote_command`` (``android/text.py``) turns them into a remote shell
string with ``shlex.quote`` on every argument (STYLE 5), except ``Glob`` arguments, left bare for the
phone's shell to expand.

``adb_shell`` is imported inside the functions that talk to a phone: it is the ``android`` extra,
and ``lat --help`` and the profile loader must work without loading it.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latkit.devices.android.text import Glob, quote_command
from latkit.errors import DeviceError

__all__ = ["AdbLink", "Glob", "LinkError", "ensure_adb_key", "key_path_from", "parse_serial",
           "quote_command", "split_status"]

RC_MARKER = "__LATKIT_RC="
_RC_TAIL = re.compile(re.escape(RC_MARKER) + r"(\d+)\s*\Z")
_TCP_SERIAL = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+):(?P<port>\d{1,5})$")
DEFAULT_KEY_PATH = Path("~/.latkit/adbkey")


class LinkError(Exception):
    """The adb connection failed (timeout, reset, broken pipe, cut output): reconnect and retry."""


def split_status(output: str) -> tuple[str, int]:
    """(output without the exit-status marker, exit status). Raises ``LinkError`` if it is missing."""
    m = _RC_TAIL.search(output)
    if m is None:
        tail = output.strip().splitlines()[-1:] or ["(no output)"]
        raise LinkError(f"the command's output ended without its exit status (last line: "
                        f"{tail[0][:120]!r}); the connection was probably cut")
    return output[: m.start()], int(m.group(1))


def parse_serial(serial: str) -> tuple[str, int] | None:
    """(host, port) for a ``host:port`` serial, None for a USB serial."""
    m = _TCP_SERIAL.match(serial.strip())
    if not m:
        if ":" in serial:
            raise DeviceError(f"adb serial {serial!r} looks like host:port but is not one; use e.g. "
                              f"192.168.1.20:5555 (adb over TCP) or a USB serial such as 9B011FFAZ")
        return None
    port = int(m.group("port"))
    if not 0 < port < 65536:
        raise DeviceError(f"adb serial {serial!r}: port must be 1..65535")
    return m.group("host").strip("[]"), port


# ---------------------------------------------------------------------------------------------
# The host key
# ---------------------------------------------------------------------------------------------


def key_path_from(key_path: str | Path | None) -> Path:
    """The key file to use: the argument, else ``$LATKIT_ADB_KEY``, else ``~/.latkit/adbkey``."""
    chosen = key_path or os.environ.get("LATKIT_ADB_KEY") or DEFAULT_KEY_PATH
    return Path(chosen).expanduser()


_KEY_LOCK = threading.Lock()  # one campaign opens several phones at once: create the key once


def ensure_adb_key(key_path: str | Path | None = None) -> tuple[Any, list[str]]:
    """(signer, notes) for the host key, created with mode 0600 if missing, repaired if too open."""
    with _KEY_LOCK:
        return _ensure_adb_key(key_path)


def _owner_only(path: Path) -> None:
    """An empty file at ``path`` with mode 0600 (a symlink or other non-file there is refused)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OSError(f"{path} is not a regular file")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _ensure_adb_key(key_path: str | Path | None) -> tuple[Any, list[str]]:
    path = key_path_from(key_path)
    notes: list[str] = []
    try:
        from adb_shell.auth.keygen import keygen, write_public_keyfile
        from adb_shell.auth.sign_pythonrsa import PythonRSASigner
    except ImportError as exc:
        raise DeviceError(f"android devices need the android extra ({exc.name} is missing); "
                          f"install it with `pip install latkit[android]`") from None
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Create both files 0600 first (whatever the umask): keygen() then truncates them,
            # keeping the mode. A .pub left without its private key is replaced.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            _owner_only(Path(f"{path}.pub"))
            keygen(str(path))
            notes.append(f"created adb key {path}")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            notes.append(f"adb key {path} had mode {mode:o}; set it to 600")
        if not Path(f"{path}.pub").exists():
            _owner_only(Path(f"{path}.pub"))
            write_public_keyfile(str(path), f"{path}.pub")
        signer = PythonRSASigner.FromRSAKeyPath(str(path))
    except PermissionError as exc:
        raise DeviceError(f"adb key {path}: {exc.strerror}; make it readable only by you "
                          f"(chmod 600 {path}) or point LATKIT_ADB_KEY elsewhere") from None
    except (ValueError, OSError) as exc:
        raise DeviceError(f"adb key {path} is unusable ({exc}); delete it (a new one is created, "
                          f"and the phone asks to allow it once) or set LATKIT_ADB_KEY") from None
    return signer, notes


# ---------------------------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------------------------


def _transient_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as ex

    return (OSError, EOFError, ex.TcpTimeoutException, ex.AdbTimeoutError, ex.AdbConnectionError,
            ex.InvalidChecksumError, ex.InvalidCommandError, ex.InvalidResponseError,
            ex.UsbReadFailedError, ex.UsbWriteFailedError, ex.AdbCommandFailureException)


def _eof_tcp_transport(host: str, port: int) -> Any:
    from adb_shell.transport.tcp_transport import TcpTransport

    class _EofTcpTransport(TcpTransport):
        def connect(self, transport_timeout_s: Any) -> None:
            super().connect(transport_timeout_s)
            # adb-shell writes a message's header and payload separately: without NODELAY,
            # Nagle's algorithm and delayed ACKs add ~40 ms to every command.
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes: int, transport_timeout_s: Any) -> bytes:
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(f"{host}:{port} closed the connection")
            return data

    return _EofTcpTransport(host, port)


class AdbLink:
    """One adb connection to one phone, opened lazily, reopened after ``close``."""

    def __init__(self, serial: str, signer: Any, *, connect_timeout_s: float,
                 auth_timeout_s: float) -> None:
        self.serial = serial
        self.tcp = parse_serial(serial)
        self._signer = signer
        self.connect_timeout_s = float(connect_timeout_s)
        self.auth_timeout_s = float(auth_timeout_s)
        self._dev: Any = None
        self.connects = 0

    # --- connection ---------------------------------------------------------------------------
    def _new_device(self) -> Any:
        if self.tcp is not None:
            from adb_shell.adb_device import AdbDevice

            return AdbDevice(_eof_tcp_transport(*self.tcp),
                             default_transport_timeout_s=self.connect_timeout_s)
        try:
            import usb1  # noqa: F401, PLC0415 -- adb-shell's USB transport needs libusb1 (optional)
            from adb_shell.adb_device import AdbDeviceUsb
        except ImportError:
            raise DeviceError(
                f"USB serial {self.serial!r} needs libusb1 (`pip install latkit[android] libusb1`); "
                f"or connect over TCP: `adb tcpip 5555` once, then pass --serial <phone-ip>:5555"
            ) from None
        from adb_shell import exceptions as ex

        try:
            return AdbDeviceUsb(serial=self.serial,
                                default_transport_timeout_s=self.connect_timeout_s)
        except (ex.UsbDeviceNotFoundError, ex.InvalidTransportError) as exc:
            raise LinkError(f"no USB device with serial {self.serial!r} ({exc})") from None

    def connect(self) -> None:
        if self._dev is not None:
            return
        from adb_shell import exceptions as ex

        dev = self._new_device()
        try:
            ok = dev.connect(rsa_keys=[self._signer], auth_timeout_s=self.auth_timeout_s,
                             read_timeout_s=self.connect_timeout_s)
        except ex.DeviceAuthError as exc:
            dev.close()
            raise DeviceError(f"{self.serial} refused our adb key ({exc}); accept the 'Allow USB "
                              f"debugging?' prompt on the phone and try again") from None
        except _transient_errors() as exc:
            dev.close()
            if (isinstance(exc, ex.TcpTimeoutException)
                    and f"({self.auth_timeout_s} seconds)" in str(exc)
                    and self.auth_timeout_s != self.connect_timeout_s):
                # the phone answered with an AUTH challenge, then never accepted our key
                raise DeviceError(
                    f"{self.serial} did not accept this computer's adb key within "
                    f"{self.auth_timeout_s:g} s (auth refused or not yet allowed); accept the 'Allow "
                    f"USB debugging?' prompt on the phone (or give more time) and try again") from None
            raise LinkError(f"cannot connect: {_describe(exc)}") from None
        if not ok:
            dev.close()
            raise LinkError("the phone did not complete the adb handshake")
        self._dev = dev
        self.connects += 1

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                dev.close()
            except Exception:  # noqa: BLE001 -- closing a broken link must not raise, whatever adb-shell throws
                pass

    @property
    def connected(self) -> bool:
        return self._dev is not None

    # --- commands -----------------------------------------------------------------------------
    def shell(self, *commands: Sequence[str], timeout_s: float) -> tuple[str, int]:
        """Run argument-list commands (joined by ``;``): (merged output, exit status of the last).

        ``timeout_s`` bounds both the whole command and any silence in its output.
        """
        text = "; ".join(quote_command(c) for c in commands)
        out = self._call(lambda d: d.shell(f"{text}; echo {RC_MARKER}$?",
                                           transport_timeout_s=timeout_s,
                                           read_timeout_s=timeout_s, timeout_s=timeout_s))
        return split_status(out)

    def push(self, local: Path, remote: str, mode: int, timeout_s: float) -> None:
        from adb_shell import exceptions as ex

        try:
            self._call(lambda d: d.push(str(local), remote, st_mode=stat.S_IFREG | mode,
                                        transport_timeout_s=timeout_s, read_timeout_s=timeout_s))
        except ex.PushFailedError as exc:
            raise DeviceError(f"{self.serial}: pushing {local.name} to {remote} failed: "
                              f"{_describe(exc)}") from None

    def _call(self, fn: Any) -> Any:
        self.connect()
        try:
            return fn(self._dev)
        except _transient_errors() as exc:
            self.close()
            raise LinkError(_describe(exc)) from None


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    msg = lines[0][:160] if lines else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
