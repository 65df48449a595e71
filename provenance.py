"""Provenance: what every file latkit writes records about how it was made (STYLE 11).

One place for it, so that a lookup table, a predictor, a checkpoint, an export and a search result
all carry the same fields in the same form:

- ``versions()``: one key set, always the same: latkit, python and the distributions latkit runs on
  (``"missing"`` for one that is not installed). Read from package metadata, so nothing is imported.
- ``command_line(prog, argv)``: the command exactly as typed, quoted so that pasting it into a shell
  in ``cwd`` runs it again. ``latkit.cli.main`` computes it once per invocation and hands it to the
  command as ``args.command_line``; library callers pass their own (or nothing).
- ``now_iso()``: the timestamp format of every record (local time with its UTC offset).
- ``host()``: the machine a record was made on.
- ``record(command)``: all of the above in one mapping, for writers that store a provenance block.
"""

from __future__ import annotations

import os
import platform
import shlex
import time
from collections.abc import Sequence
from typing import Any

from latkit import __version__

#: The distributions whose versions every record carries, by their PyPI names.
DISTRIBUTIONS: tuple[str, ...] = (
    "numpy", "torch", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert", "scikit-learn",
    "xgboost", "adb-shell",
)
MISSING = "missing"


def versions() -> dict[str, str]:
    """latkit's, Python's and each of ``DISTRIBUTIONS``' version (``"missing"`` if not installed)."""
    from importlib import metadata  # noqa: PLC0415 -- 20 ms: only when a file is written, not at start-up

    out = {"latkit": __version__, "python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = MISSING
    return out


def command_line(prog: str, argv: Sequence[str]) -> str:
    """``prog`` and ``argv`` as one shell-quoted string that re-runs the command as typed.

    ``prog`` is the program name the user typed (``lat``, ``lat-fit``...), ``argv`` its arguments.
    """
    return shlex.join([prog, *map(str, argv)])


def now_iso() -> str:
    """Local time with its UTC offset, e.g. ``2026-12-01T09:30:00+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def host() -> dict[str, str]:
    """The machine: host name, architecture, operating system."""
    return {"host": platform.node(), "machine": platform.machine(), "system": platform.system()}


def record(command: str | None = None) -> dict[str, Any]:
    """The provenance block of a written file: command, working directory, time, host, versions."""
    return {
        "command": command or "",
        "cwd": os.getcwd(),
        "created": now_iso(),
        **host(),
        "versions": versions(),
    }
