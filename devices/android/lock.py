"""One benchmark at a time per phone: a host-wide lock keyed by the phone's serial.

``PhoneLock(serial)`` is an exclusive ``fcntl.flock`` on ``$LATKIT_HOME/locks/<serial>.lock``, so every
latkit process of this user on this host (and every device object within one process: a flock
belongs to one open file) queues for the same phone. The kernel drops the lock when its holder
exits, however it exits: a lock left by a killed process is recovered by the next one to ask, and
nothing has to be cleaned. The file's text names the holder (host, pid, command, since) for the
error a waiter gets when ``timeout_s`` runs out. The agent also writes a marker on the phone
(``<remote_dir>/lock``) while it holds the lock, so a person with ``adb shell`` sees who is measuring.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from latkit.devices.paths import locks_dir
from latkit.errors import DeviceError
from latkit.provenance import now_iso

__all__ = ["DEFAULT_LOCK_TIMEOUT_S", "PhoneBusyError", "PhoneLock", "holder_text"]

#: how long a benchmark waits for the phone by default (a long campaign's benchmark takes minutes)
DEFAULT_LOCK_TIMEOUT_S = 3600.0


class PhoneBusyError(DeviceError):
    """The phone stayed locked by another latkit process for the whole ``--lock-timeout``."""


def holder_text(serial: str) -> str:
    """One line naming this process: what the lock file and the phone's marker say."""
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return f"host={socket.gethostname()} pid={os.getpid()} serial={serial} since={now_iso()} cmd={command}"


class PhoneLock:
    """``with PhoneLock(serial, timeout_s):``; ``waited_s`` says how long it queued."""

    def __init__(self, serial: str, timeout_s: float | None = DEFAULT_LOCK_TIMEOUT_S, *,
                 poll_s: float = 0.05, sleep: Callable[[float], None] = time.sleep) -> None:
        self.serial = serial
        self.timeout_s = DEFAULT_LOCK_TIMEOUT_S if timeout_s is None else float(timeout_s)
        if self.timeout_s < 0:
            raise DeviceError(f"--lock-timeout must be >= 0 seconds, got {timeout_s!r}")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", serial)
        self.path = locks_dir() / f"{safe}.lock"
        self.poll_s, self._sleep = poll_s, sleep
        self._file: IO[str] | None = None
        self.waited_s = 0.0
        self.text = ""

    def acquire(self) -> PhoneLock:
        if self._file is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")  # noqa: SIM115 -- held open for as long as the lock is held
        except OSError as exc:
            raise DeviceError(f"cannot open the phone lock {self.path}: {exc.strerror}; check "
                              f"LATKIT_HOME") from None
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= self.timeout_s:
                    f.seek(0)
                    holder = f.read().strip() or "another latkit process"
                    f.close()
                    raise PhoneBusyError(
                        f"phone {self.serial} is busy: locked by {holder}; waited {waited:.0f} s "
                        f"(--lock-timeout {self.timeout_s:g}); try again later or raise --lock-timeout"
                    ) from None
                self._sleep(min(self.poll_s, max(0.0, self.timeout_s - waited)))
        self.waited_s = time.monotonic() - start
        self.text = holder_text(self.serial)
        f.seek(0)
        f.truncate()
        f.write(self.text + "\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            try:
                f.seek(0)
                f.truncate()  # the text names only a live holder
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            finally:
                f.close()

    @property
    def held(self) -> bool:
        return self._file is not None

    def __enter__(self) -> PhoneLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"PhoneLock({self.serial!r}, path={str(self.path)!r}, held={self.held})"


def lock_file(serial: str) -> Path:
    """Where the lock of ``serial`` lives (for tests and ``lat device check``)."""
    return PhoneLock(serial, 0).path
