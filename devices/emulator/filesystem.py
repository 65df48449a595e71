"""The emulated phone's filesystem: a host directory standing for ``/``, plus virtual files.

Only ``/data/local/tmp`` and ``/sdcard`` are writable (as for Android's shell user); ``/sys``
(thermal zones, cpufreq) and ``/proc`` are virtual read-only files computed on each read. Emulated
paths are normalised before they touch the host, so no path can leave ``root``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat as stat_mod
import time
from collections.abc import Callable
from pathlib import Path

from latkit.devices.emulator.protocol import FileStat

__all__ = ["FsError", "PhoneFS", "REAL_DIRS", "WRITABLE_PREFIXES"]

WRITABLE_PREFIXES = ("/data/local/tmp", "/sdcard")
REAL_DIRS = ("/data/local/tmp", "/sdcard", "/system/bin", "/vendor/bin")


class FsError(Exception):
    """A filesystem error with the strerror text a toybox tool would print."""


class PhoneFS:
    """The emulated filesystem: host directory ``root`` for ``/`` plus virtual read-only files."""

    def __init__(self, root: Path, virtual: dict[str, Callable[[], bytes]]) -> None:
        self.root = Path(os.path.realpath(root))
        self.virtual = virtual
        self.virtual_dirs = {"/"}
        for p in list(virtual) + list(REAL_DIRS):
            while p != "/":
                p = posixpath.dirname(p)
                self.virtual_dirs.add(p)
        for d in REAL_DIRS:
            self.host(d).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def norm(path: str, cwd: str = "/") -> str:
        joined = posixpath.normpath(posixpath.join(cwd, path))
        return "/" + joined.lstrip("/")

    def host(self, path: str) -> Path:
        p = self.norm(path)
        target = self.root / p.lstrip("/") if p != "/" else self.root
        real = os.path.realpath(target)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise FsError("Permission denied")
        return target

    @staticmethod
    def writable(path: str) -> bool:
        return any(path == w or path.startswith(w + "/") for w in WRITABLE_PREFIXES)

    def exists(self, path: str) -> bool:
        return path in self.virtual or path in self.virtual_dirs or self.host(path).exists()

    def isdir(self, path: str) -> bool:
        return path in self.virtual_dirs or (path not in self.virtual and self.host(path).is_dir())

    def isfile(self, path: str) -> bool:
        return path in self.virtual or (path not in self.virtual_dirs and self.host(path).is_file())

    def listdir(self, path: str) -> list[str]:
        if not self.isdir(path):
            raise FsError("Not a directory" if self.exists(path) else "No such file or directory")
        names = set()
        prefix = path.rstrip("/") + "/"
        for p in list(self.virtual) + list(self.virtual_dirs):
            if p.startswith(prefix) and p != path:
                names.add(p[len(prefix):].split("/", 1)[0])
        h = self.host(path)
        if h.is_dir():
            names.update(os.listdir(h))
        return sorted(names)

    def read(self, path: str) -> bytes:
        if path in self.virtual:
            return self.virtual[path]()
        if self.isdir(path):
            raise FsError("Is a directory")
        h = self.host(path)
        if not h.is_file():
            raise FsError("No such file or directory")
        return h.read_bytes()

    def stat(self, path: str) -> FileStat:
        if path in self.virtual:
            return FileStat(stat_mod.S_IFREG | 0o644, 4096, int(time.time()), uid=0, gid=0)
        h = self.host(path)
        if h.exists():
            st = h.stat()
            kind = stat_mod.S_IFDIR if h.is_dir() else stat_mod.S_IFREG
            return FileStat(kind | (st.st_mode & 0o777), st.st_size if kind == stat_mod.S_IFREG else 4096,
                            int(st.st_mtime), ino=st.st_ino, nlink=st.st_nlink)
        if path in self.virtual_dirs:
            return FileStat(stat_mod.S_IFDIR | 0o755, 4096, 0, uid=0, gid=0)
        raise FsError("No such file or directory")

    def _check_write(self, path: str) -> Path:
        if not self.writable(path):
            denied = any(path == d or path.startswith(d + "/") for d in ("/sys", "/proc", "/data"))
            raise FsError("Permission denied" if denied else "Read-only file system")
        return self.host(path)

    def write(self, path: str, data: bytes, append: bool = False, mode: int | None = None) -> None:
        if path == "/dev/null":
            return
        h = self._check_write(path)
        if h.is_dir():
            raise FsError("Is a directory")
        if not h.parent.is_dir():
            raise FsError("No such file or directory")
        with open(h, "ab" if append else "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(h, (mode & 0o777) | 0o600)

    def open_for_push(self, path: str, mode: int):
        """A host file object for a sync SEND, creating parent directories like adbd does."""
        h = self._check_write(path)
        if h.is_dir():
            raise FsError("Is a directory")
        h.parent.mkdir(parents=True, exist_ok=True)
        f = open(h, "wb")
        os.chmod(h, (mode & 0o777) | 0o600)
        return f

    def mkdir(self, path: str, parents: bool = False) -> None:
        h = self._check_write(path) if not self.isdir(path) else self.host(path)
        if self.isdir(path):
            if not parents:
                raise FsError("File exists")
            return
        if self.exists(path):
            raise FsError("File exists")
        if not parents and not h.parent.is_dir():
            raise FsError("No such file or directory")
        h.mkdir(parents=parents, exist_ok=parents)

    def remove(self, path: str, recursive: bool = False) -> None:
        h = self._check_write(path)
        if h.is_dir():
            if not recursive:
                raise FsError("Is a directory")
            shutil.rmtree(h)
        elif h.exists():
            h.unlink()
        else:
            raise FsError("No such file or directory")

    def chmod(self, path: str, mode: int) -> None:
        h = self._check_write(path)
        if not h.exists():
            raise FsError("No such file or directory")
        os.chmod(h, (mode & 0o777) | 0o600)

    def set_mtime(self, path: str, mtime: int) -> None:
        os.utime(self.host(path), (mtime, mtime))

    def is_executable(self, path: str) -> bool:
        return self.isfile(path) and path not in self.virtual and bool(self.stat(path).mode & 0o111)
