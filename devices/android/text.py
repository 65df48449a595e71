"""Text helpers the whole android package shares, and nothing else: it imports no other module of it.

* ``excerpt`` shortens tool output and values for one-line error messages (parser, profile, agent).
* ``Glob`` marks a remote-command argument the phone's shell must expand, and ``quote_command``
  turns an argument list into one remote shell string: every argument ``shlex.quote``-d (STYLE 5)
  except ``Glob``s, which are checked to hold only path and glob characters and left bare.

The profile loader needs ``Glob`` (to check the globs a profile names) and ``excerpt``; keeping them
here lets the profile module, and the emulator that reads profiles through it, stay free of the adb
transport and the parser.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from latkit.errors import DeviceError

MAX_EXCERPT = 300
_SAFE_GLOB = re.compile(r"[A-Za-z0-9_./*?\[\]-]+")


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    """``text`` shortened to about ``limit`` characters, keeping both ends, on one line."""
    flat = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if len(flat) <= limit:
        return flat
    half = limit // 2
    return f"{flat[:half]} ... {flat[-half:]}"


class Glob(str):
    """An argument the phone's shell must expand (``/sys/.../thermal_zone*/temp``): left unquoted,
    so it may only hold path characters and the glob characters ``*?[]``."""

    def __new__(cls, pattern: str) -> Glob:
        if not _SAFE_GLOB.fullmatch(pattern):
            raise DeviceError(f"glob {pattern!r} may only contain letters, digits, '/._-' and "
                              f"'*?[]' (it is passed to the phone's shell unquoted)")
        return super().__new__(cls, pattern)


def quote_command(argv: Sequence[str]) -> str:
    """One remote shell command from an argument list: each argument quoted, ``Glob``s left bare."""
    if isinstance(argv, (str, bytes)) or not argv:
        raise DeviceError(f"a remote command must be a non-empty argument list, got {argv!r}")
    return " ".join(a if isinstance(a, Glob) else shlex.quote(str(a)) for a in argv)
