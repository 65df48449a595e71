"""What one command of the emulated shell runs in: its session, its context, and the hooks.

``Session`` is one shell (working directory, variables, last status); ``Ctx`` is what a command sees
(session, stdin, stdout/stderr writers) plus ``execute``, the shell's own way of running a nested
command line such as ``taskset MASK cmd ...``. The shell (``shell.py``) builds contexts and looks
commands up in ``commands.COMMANDS``; the commands see the shell only through ``Ctx``, so
``commands.py`` never imports ``shell.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latkit.devices.emulator.filesystem import PhoneFS
from latkit.devices.emulator.phone import EmulatedPhone

__all__ = ["Ctx", "SH", "Session", "SessionHooks", "ShellExit"]

SH = "/system/bin/sh"


class ShellExit(Exception):
    """Raised by ``exit`` to stop the script."""


@dataclass
class SessionHooks:
    """What the transport lets a command do to its connection (used by injected faults)."""

    drop: Callable[[], None] = lambda: None
    #: wait up to the given seconds; True if the connection closed meanwhile
    wait_closed: Callable[[float], bool] = lambda s: (time.sleep(s), False)[1]


@dataclass
class Session:
    """One shell: working directory, variables, last status."""

    phone: EmulatedPhone
    hooks: SessionHooks = field(default_factory=SessionHooks)
    cwd: str = "/"
    vars: dict[str, str] = field(default_factory=dict)
    status: int = 0
    faults: Any = None  # FaultSpec of the server (benchmark faults)

    def __post_init__(self) -> None:
        path = "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/vendor/bin"
        base = {"HOME": "/", "PATH": path,
                "TMPDIR": "/data/local/tmp", "USER": "shell", "HOSTNAME": "localhost", "SHELL": SH,
                "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system"}
        self.vars = {**base, **self.vars}

    def child(self) -> Session:
        return Session(self.phone, self.hooks, self.cwd, dict(self.vars), self.status, self.faults)


@dataclass
class Ctx:
    """What a command sees: its session, stdin, writers for stdout and stderr, and ``execute``."""

    session: Session
    stdin: bytes
    out_sink: Callable[[bytes], None]
    err_sink: Callable[[bytes], None]
    #: the shell's command runner, ``execute(argv, ctx) -> status`` (set by the shell)
    execute: Callable[[list[str], Ctx], int]
    affinity: str | None = None

    @property
    def phone(self) -> EmulatedPhone:
        return self.session.phone

    @property
    def fs(self) -> PhoneFS:
        return self.session.phone.fs

    def out(self, data: bytes | str) -> None:
        self.out_sink(data.encode() if isinstance(data, str) else data)

    def err(self, data: bytes | str) -> None:
        self.err_sink(data.encode() if isinstance(data, str) else data)

    def path(self, p: str) -> str:
        return self.fs.norm(p, self.session.cwd)

    def run(self, argv: list[str]) -> int:
        """Run ``argv`` as a nested command in this context (what ``taskset`` execs)."""
        return self.execute(argv, self)
