"""The services an emulated phone offers on an ADB stream: shell (raw and v2) and sync.

Each service runs in its own thread with a ``stream`` (see ``server._Stream``) offering
``write(bytes)`` (blocks until the host acknowledged the previous WRTE), ``read_some()`` (next
payload, ``None`` at end), ``read_exact(n)``, ``close()`` and ``hooks`` (``SessionHooks``).

- ``shell:CMD`` / ``exec:CMD``: stdout and stderr merged, no exit status, then CLSE.
- ``shell,v2[,raw|,pty][,TERM=...]:CMD``: shell protocol v2 packets (stdout 1, stderr 2), then an
  exit packet (3) and CLSE. Stdin packets are accepted and ignored for commands; an empty CMD starts
  a line-by-line interactive shell fed by stdin packets (close-stdin or ``exit`` ends it).
- ``sync:``: STAT, STA2, LST2, LIST, LIS2, SEND, RECV, QUIT (see ``protocol.py``). SEND creates
  missing parent directories (feature ``fixed_push_mkdir``) and answers OKAY or ``FAIL`` + reason
  after DONE; RECV answers DATA chunks of at most 64 KiB then DONE, or FAIL.
"""

from __future__ import annotations

import posixpath
import stat as stat_mod

import latkit.devices.emulator.protocol as P
from latkit.devices.emulator.filesystem import FsError
from latkit.devices.emulator.phone import EmulatedPhone
from latkit.devices.emulator.shell import Session, run_script

__all__ = ["is_supported", "run_service"]


def is_supported(service: str) -> bool:
    return service.startswith(("shell:", "shell,", "exec:")) or service == "sync:"


def run_service(service: str, stream, phone: EmulatedPhone, faults) -> None:
    """Serve one stream to completion; connection errors end it quietly."""
    try:
        if service == "sync:":
            _sync(stream, phone)
        elif service.startswith("exec:"):
            _shell_raw(service[5:], stream, phone, faults)
        else:
            opts, _, command = service.partition(":")
            options = opts.split(",")[1:]
            if "v2" in options:
                _shell_v2(command, "pty" in options, stream, phone, faults)
            else:
                _shell_raw(command, stream, phone, faults)
    except (ConnectionError, OSError, EOFError):
        pass
    finally:
        try:
            stream.close()
        except (ConnectionError, OSError):
            pass


def _session(stream, phone: EmulatedPhone, faults) -> Session:
    return Session(phone, hooks=stream.hooks, faults=faults)


def _shell_raw(command: str, stream, phone: EmulatedPhone, faults) -> None:
    session = _session(stream, phone, faults)
    if command.strip():
        run_script(command, session, stream.write, stream.write)
        return
    pending = bytearray()
    while True:
        data = stream.read_some()
        if data is None:
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            run_script(line.decode("utf-8", errors="replace"), session, stream.write, stream.write)
            if _exited(line):
                return


def _exited(line: bytes) -> bool:
    return line.strip().split(b" ", 1)[0] == b"exit"


def _shell_v2(command: str, pty: bool, stream, phone: EmulatedPhone, faults) -> None:
    session = _session(stream, phone, faults)
    limit = max(1, stream.max_payload - P.SHELL_PACKET_HEADER.size)

    def sender(packet_id: int):
        def send(data: bytes) -> None:
            for off in range(0, len(data), limit):
                stream.write(P.shell_packet(packet_id, data[off:off + limit]))
        return send

    out, err = sender(P.SHELL_STDOUT), sender(P.SHELL_STDERR)
    if command.strip():
        status = run_script(command, session, out, err)
    else:
        status = _interactive_v2(stream, session, out, err, pty)
    stream.write(P.shell_packet(P.SHELL_EXIT, bytes([status & 0xFF])))


def _interactive_v2(stream, session: Session, out, err, pty: bool) -> int:
    def prompt() -> None:
        if pty:
            out(f"{session.phone.profile.product}:{session.cwd} $ ".encode())

    prompt()
    buffer, pending = bytearray(), bytearray()
    while True:
        data = stream.read_some()
        if data is None:
            return session.status
        buffer.extend(data)
        for packet_id, payload in P.split_shell_packets(buffer):
            if packet_id == P.SHELL_CLOSE_STDIN:
                return session.status
            if packet_id != P.SHELL_STDIN:
                continue
            pending.extend(payload.replace(b"\r", b"\n"))
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                run_script(line.decode("utf-8", errors="replace"), session, out, err)
                if _exited(line):
                    return session.status
                prompt()


# --- sync ---------------------------------------------------------------------------------------


def _sync(stream, phone: EmulatedPhone) -> None:
    fs = phone.fs
    while True:
        try:
            ident, length = P.SYNC_REQUEST.unpack(stream.read_exact(P.SYNC_REQUEST.size))
        except EOFError:
            return
        if ident == b"QUIT":
            return
        if length > P.SYNC_PATH_MAX:
            stream.write(P.sync_status(b"FAIL", b"path too long"))
            return
        raw = stream.read_exact(length).decode("utf-8", errors="replace")
        if ident in (b"STAT", b"STA2", b"LST2"):
            path = fs.norm(raw)
            try:
                st = fs.stat(path)
            except FsError:
                st = P.FileStat(0, 0, 0, error=2)  # ENOENT
            if ident == b"STAT":
                stream.write(P.stat_v1(st if not st.error else P.FileStat(0, 0, 0)))
            else:
                stream.write(P.stat_v2(st, ident))
        elif ident in (b"LIST", b"LIS2"):
            _list(stream, fs, fs.norm(raw), v2=ident == b"LIS2")
        elif ident == b"SEND":
            if not _send(stream, phone, raw):
                return
        elif ident == b"RECV":
            _recv(stream, phone, fs.norm(raw))
        else:
            stream.write(P.sync_status(b"FAIL", f"unknown sync command {ident!r}".encode()))
            return


def _list(stream, fs, path: str, v2: bool) -> None:
    out = bytearray()
    try:
        names = [".", ".."] + fs.listdir(path)
    except FsError:
        names = []
    for name in names:
        try:
            st = fs.stat(path if name in (".", "..") else posixpath.join(path, name))
        except FsError:
            continue
        out += (P.dent_v2 if v2 else P.dent_v1)(name.encode(), st)
    out += P.done_v2() if v2 else P.done_v1()
    stream.write(bytes(out))


def _send(stream, phone: EmulatedPhone, spec: str) -> bool:
    """One SEND; False when the stream must end (a protocol error)."""
    fs = phone.fs
    path_text, _, mode_text = spec.rpartition(",")
    try:
        mode = int(mode_text)
    except ValueError:
        path_text, mode = spec, 0o100644
    path = fs.norm(path_text)
    error, f = None, None
    if stat_mod.S_ISLNK(mode):
        error = "symlinks are not supported by the latkit emulator"
    else:
        try:
            f = fs.open_for_push(path, mode)
        except FsError as exc:
            error = f"couldn't create file: {exc}"
    try:
        while True:
            ident, size = P.SYNC_REQUEST.unpack(stream.read_exact(P.SYNC_REQUEST.size))
            if ident == b"DATA":
                if size > P.SYNC_DATA_MAX:
                    stream.write(P.sync_status(b"FAIL", b"data chunk larger than 64 KiB"))
                    return False
                data = stream.read_exact(size)
                if f is not None:
                    f.write(data)
            elif ident == b"DONE":
                break
            else:
                stream.write(P.sync_status(b"FAIL", b"invalid data message"))
                return False
    finally:
        if f is not None:
            f.close()
    if error:
        stream.write(P.sync_status(b"FAIL", error.encode()))
        return True
    fs.set_mtime(path, size)
    phone.counters.bump("files_pushed")
    stream.write(P.sync_status(b"OKAY"))
    return True


def _recv(stream, phone: EmulatedPhone, path: str) -> None:
    fs = phone.fs
    try:
        if fs.isdir(path):
            raise FsError("Is a directory")
        data = fs.read(path)
    except FsError as exc:
        stream.write(P.sync_status(b"FAIL", str(exc).encode()))
        return
    batch = bytearray()
    for off in range(0, len(data), P.SYNC_DATA_MAX):
        batch += P.sync_status(b"DATA", data[off:off + P.SYNC_DATA_MAX])
        if len(batch) >= stream.max_payload:
            stream.write(bytes(batch))
            batch.clear()
    batch += P.sync_status(b"DONE")
    stream.write(bytes(batch))
    phone.counters.bump("files_pulled")
