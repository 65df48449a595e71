"""Files: the one atomic writer and the one sha256 of latkit.

Every file latkit writes goes through ``atomic_path`` (or its shorthands ``write_text`` and
``write_bytes``): the content is written to a temporary file in the destination's directory, flushed
to disk, and renamed over the destination in one step, so a reader (or a resumed campaign) never
sees half a file and a killed writer leaves the old file intact.

A destination that exists must be a regular file: a symlink, a FIFO, a device node (``-o /dev/full``)
or a directory is refused with an ``OutputError`` naming it, never replaced. A new file gets the
permissions the umask gives; a replaced file keeps its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from latkit.errors import OutputError

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_writable(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is absent or a regular file; else an ``OutputError``."""
    p = Path(path)
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror}") from None
    for is_kind, what in _KINDS:
        if is_kind(mode):
            raise OutputError(f"refusing to write {p}: it is {what}, not a regular file; "
                              "give the path of a regular file")
    return p


def make_dir(path: str | Path) -> Path:
    """``path`` as a directory (created with its parents if missing); an ``OutputError`` if a file
    or anything else that is not a directory stands in its way."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the output directory {p}: {exc.strerror} (a file of that "
                          "name?); give another output directory") from None
    return p


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it goes.

    For writers that need a path rather than a file object (``onnx.save``, a converter's
    ``export``, ``torch.save``). The parent directory is created if needed.
    """
    dst = check_writable(path)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(os.stat(dst).st_mode)
        except FileNotFoundError:
            mode = _new_file_mode()
        os.chmod(tmp, mode)
        check_writable(dst)  # the destination may have changed while we wrote
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode(encoding))
