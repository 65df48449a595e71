"""The ADB wire format, device side: messages, checksums, auth keys, shell v2 and sync framing.

Everything here is pure (bytes in, values out) except ``read_message``, which reads one message
from a socket. The emulator's server (``server.py``) builds on it.

Transport message: a 24-byte header of six little-endian uint32 -- command, arg0, arg1,
data_length, data_crc32 (really the byte sum of the payload, mod 2**32) and magic
(command ^ 0xffffffff) -- followed by ``data_length`` payload bytes. Commands are four ASCII
letters read as a little-endian integer (``b"CNXN"`` -> 0x4e584e43).

Auth (device side): the device sends ``AUTH(TOKEN=1, 0, 20 random bytes)``; the host answers
``AUTH(SIGNATURE=2, 0, sig)`` where ``sig`` is an RSA PKCS#1 v1.5 signature of the token treated as
an already computed SHA-1 digest; failing that, ``AUTH(RSAPUBLICKEY=3, 0, key)`` where ``key`` is
base64 of the 524-byte mincrypt ``RSAPublicKey`` struct followed by `` user@host`` and a NUL.

Shell protocol v2 (services ``shell,v2,...:``): a byte stream of packets ``id (1 byte) + length
(uint32 LE) + data``; ids 0 stdin, 1 stdout, 2 stderr, 3 exit (1 data byte), 4 close-stdin,
5 window-size change.

Sync protocol (service ``sync:``): requests are ``id (4 ASCII) + length (uint32 LE) + path``.
Responses are fixed structs (``STAT``: mode, size, mtime; ``STA2``/``LST2``: the 72-byte stat_v2;
``DENT``: mode, size, mtime, namelen + name; ``DNT2``: the 76-byte dent_v2 + name) or
``id + length + data`` (``DATA``, ``DONE``, ``OKAY``, ``FAIL``). DATA chunks are at most 64 KiB.
"""

from __future__ import annotations

import base64
import binascii
import socket
import struct
from dataclasses import dataclass

from latkit.errors import DeviceError

# --- transport ---------------------------------------------------------------------------------

HEADER_FORMAT = "<6I"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)  # 24

#: protocol versions: the original one, and the one that lets the receiver skip checksums
VERSION_MIN = 0x01000000
VERSION_SKIP_CHECKSUM = 0x01000001
#: payload limits: what this device accepts and sends at most (modern adbd uses 256 KiB)
MAX_PAYLOAD = 256 * 1024
MAX_PAYLOAD_LEGACY = 4096

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20


def cmd_to_int(cmd: bytes) -> int:
    """``b"CNXN"`` -> 0x4e584e43 (the four letters read as a little-endian uint32)."""
    return struct.unpack("<I", cmd)[0]


def int_to_cmd(value: int) -> bytes:
    return struct.pack("<I", value)


A_SYNC, A_CNXN, A_AUTH = cmd_to_int(b"SYNC"), cmd_to_int(b"CNXN"), cmd_to_int(b"AUTH")
A_OPEN, A_OKAY, A_CLSE, A_WRTE = (cmd_to_int(c) for c in (b"OPEN", b"OKAY", b"CLSE", b"WRTE"))
A_STLS = cmd_to_int(b"STLS")
KNOWN_COMMANDS = frozenset({A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_STLS})


def checksum(data: bytes) -> int:
    """The 'crc32' field of a message: the plain byte sum of the payload, modulo 2**32."""
    return sum(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Message:
    """One transport message. ``command`` is the 4-letter name (``b"WRTE"``)."""

    command: bytes
    arg0: int
    arg1: int
    data: bytes = b""

    def pack(self) -> bytes:
        """Header + payload, always with a correct checksum (adb-shell verifies it)."""
        cmd = cmd_to_int(self.command)
        header = struct.pack(
            HEADER_FORMAT,
            cmd,
            self.arg0 & 0xFFFFFFFF,
            self.arg1 & 0xFFFFFFFF,
            len(self.data),
            checksum(self.data),
            cmd ^ 0xFFFFFFFF,
        )
        return header + self.data


@dataclass(frozen=True)
class Header:
    command: bytes
    arg0: int
    arg1: int
    data_length: int
    data_check: int


def unpack_header(raw: bytes) -> Header:
    """Parse a 24-byte header; raises ``DeviceError`` on a bad magic or an unknown command."""
    if len(raw) != HEADER_SIZE:
        raise DeviceError(f"adb header must be {HEADER_SIZE} bytes, got {len(raw)}")
    cmd, arg0, arg1, length, check, magic = struct.unpack(HEADER_FORMAT, raw)
    if magic != cmd ^ 0xFFFFFFFF:
        raise DeviceError(f"adb header magic {magic:#x} does not match command {cmd:#x}")
    if cmd not in KNOWN_COMMANDS:
        raise DeviceError(f"unknown adb command {int_to_cmd(cmd)!r}")
    return Header(int_to_cmd(cmd), arg0, arg1, length, check)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes; raises ``ConnectionError`` when the peer closes first."""
    chunks = []
    remaining = n
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket, max_payload: int, verify_checksum: bool,
                 allow_zero_checksum: bool = False) -> Message:
    """Read one message; with ``allow_zero_checksum`` a 0 checksum (a host that skips them)
    passes even when checksums are verified."""
    header = unpack_header(recv_exact(sock, HEADER_SIZE))
    if header.data_length > max_payload:
        raise DeviceError(f"adb payload of {header.data_length} bytes exceeds {max_payload}")
    data = recv_exact(sock, header.data_length) if header.data_length else b""
    if allow_zero_checksum and header.data_check == 0:
        return Message(header.command, header.arg0, header.arg1, data)
    if verify_checksum and header.data_check != checksum(data):
        raise DeviceError(f"adb checksum mismatch on {header.command!r}")
    return Message(header.command, header.arg0, header.arg1, data)


def device_banner(props: dict[str, str], features: tuple[str, ...]) -> bytes:
    """``device::ro.product.name=flame;ro.product.model=Pixel 4;...;features=a,b`` (no NUL)."""
    fields = [f"{k}={props[k]}" for k in ("ro.product.name", "ro.product.model", "ro.product.device")]
    fields.append("features=" + ",".join(features))
    return ("device::" + ";".join(fields)).encode()


def parse_connect_banner(data: bytes) -> str:
    """The host's CNXN banner (``host::features=...``) without its NUL."""
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")


# --- auth keys ---------------------------------------------------------------------------------

ANDROID_PUBKEY_WORDS = 64  # 2048-bit modulus
ANDROID_PUBKEY_FORMAT = f"<II{4 * ANDROID_PUBKEY_WORDS}s{4 * ANDROID_PUBKEY_WORDS}sI"
ANDROID_PUBKEY_SIZE = struct.calcsize(ANDROID_PUBKEY_FORMAT)  # 524


@dataclass(frozen=True)
class AndroidPublicKey:
    """An adb host key: RSA modulus and exponent, plus the ``user@host`` comment."""

    modulus: int
    exponent: int
    comment: str

    @classmethod
    def parse(cls, text: bytes | str) -> AndroidPublicKey:
        """Decode ``base64(RSAPublicKey struct) [user@host][\\0]`` (an AUTH type 3 payload or
        one line of ``adbkey.pub``)."""
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("ascii", errors="replace")
        parts = text.strip().split(None, 1)
        if not parts:
            raise DeviceError("empty adb public key")
        try:
            raw = base64.b64decode(parts[0], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DeviceError(f"adb public key is not base64: {exc}") from None
        if len(raw) != ANDROID_PUBKEY_SIZE:
            raise DeviceError(
                f"adb public key must decode to {ANDROID_PUBKEY_SIZE} bytes, got {len(raw)}"
            )
        words, _n0inv, mod_le, _rr, exponent = struct.unpack(ANDROID_PUBKEY_FORMAT, raw)
        if words != ANDROID_PUBKEY_WORDS:
            raise DeviceError(f"adb public key has {words} modulus words, expected 64")
        modulus = int.from_bytes(mod_le, "little")
        if modulus < 3 or exponent < 3:
            raise DeviceError("adb public key has an invalid modulus or exponent")
        return cls(modulus, exponent, parts[1] if len(parts) > 1 else "")

    def verify_token(self, token: bytes, signature: bytes) -> bool:
        """True when ``signature`` is the PKCS#1 v1.5 signature of ``token`` taken as a SHA-1
        digest (what adb hosts send as AUTH SIGNATURE)."""
        # only a host's RSA signature check needs cryptography (the android extra)
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 -- optional extra
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 -- optional extra
        from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils  # noqa: PLC0415 -- optional extra

        if len(token) != TOKEN_SIZE:
            return False
        try:
            key = rsa.RSAPublicNumbers(self.exponent, self.modulus).public_key()
            key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        except (InvalidSignature, ValueError):
            return False
        return True


# --- shell protocol v2 -------------------------------------------------------------------------

SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = range(6)
SHELL_PACKET_HEADER = struct.Struct("<BI")


def shell_packet(packet_id: int, data: bytes) -> bytes:
    return SHELL_PACKET_HEADER.pack(packet_id, len(data)) + data


def split_shell_packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Remove every complete shell-v2 packet from the front of ``buffer`` and return them."""
    packets = []
    size = SHELL_PACKET_HEADER.size
    while len(buffer) >= size:
        packet_id, length = SHELL_PACKET_HEADER.unpack_from(buffer)
        if len(buffer) < size + length:
            break
        packets.append((packet_id, bytes(buffer[size : size + length])))
        del buffer[: size + length]
    return packets


# --- sync protocol -----------------------------------------------------------------------------

SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024
SYNC_REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")  # id, error, dev, ino, mode, nlink, uid, gid, size, a/m/ctime
DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # stat_v2 fields + namelen


@dataclass(frozen=True)
class FileStat:
    """What the sync protocol reports about a path (``mode`` 0 means missing)."""

    mode: int
    size: int
    mtime: int
    ino: int = 0
    nlink: int = 1
    uid: int = 2000
    gid: int = 2000
    error: int = 0


def stat_v1(st: FileStat) -> bytes:
    return STAT_V1.pack(b"STAT", st.mode, st.size & 0xFFFFFFFF, st.mtime & 0xFFFFFFFF)


def stat_v2(st: FileStat, ident: bytes = b"STA2") -> bytes:
    if st.error:
        return STAT_V2.pack(ident, st.error, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return STAT_V2.pack(
        ident, 0, 0xFD00, st.ino, st.mode, st.nlink, st.uid, st.gid, st.size, st.mtime, st.mtime,
        st.mtime,
    )


def dent_v1(name: bytes, st: FileStat) -> bytes:
    return DENT_V1.pack(b"DENT", st.mode, st.size & 0xFFFFFFFF, st.mtime & 0xFFFFFFFF, len(name)) + name


def dent_v2(name: bytes, st: FileStat) -> bytes:
    return DENT_V2.pack(
        b"DNT2", 0, 0xFD00, st.ino, st.mode, st.nlink, st.uid, st.gid, st.size, st.mtime,
        st.mtime, st.mtime, len(name),
    ) + name


def done_v1() -> bytes:
    """The DONE that ends a LIST: a dent_v1 struct of zeros."""
    return DENT_V1.pack(b"DONE", 0, 0, 0, 0)


def done_v2() -> bytes:
    """The DONE that ends a LIS2: a dent_v2 struct of zeros."""
    return DENT_V2.pack(b"DONE", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def sync_status(ident: bytes, payload: bytes = b"") -> bytes:
    """``OKAY``/``FAIL``/``DATA``/``DONE`` + length + payload."""
    return SYNC_REQUEST.pack(ident, len(payload)) + payload
