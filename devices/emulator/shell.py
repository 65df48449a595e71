"""A small ``/system/bin/sh`` for the emulated phone: expansion and execution.

It interprets commands itself; nothing a client sends ever runs on the host. Supported syntax:
words with single/double quotes and backslashes (everything ``shlex.quote`` produces),
``$?``, ``$VAR``, ``${VAR}``, ``$(cmd)``, globs (``*?[``) over the emulated filesystem, ``NAME=value``
assignments, pipelines ``|``, lists ``;`` ``&&`` ``||`` ``&`` (run in the foreground) and newlines,
redirections ``>``, ``>>``, ``<``, ``N>``, ``N>&M``, ``&>``, comments. Compound commands (``if``,
``for``, ``while``, ``case``, subshells, functions) are refused with a syntax error naming the
emulator, so a client that needs them fails loudly instead of silently doing less.

The command line is split and parsed by ``shell_syntax.py``; commands are looked up in
``commands.COMMANDS``; a path ending in ``benchmark_model`` runs the
emulated benchmark tool (``benchmark.py``); a missing command prints
``/system/bin/sh: NAME: inaccessible or not found`` and returns 127, as mksh does on Android.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable

from latkit.devices.emulator.benchmark import run_benchmark_model
from latkit.devices.emulator.commands import COMMANDS
from latkit.devices.emulator.filesystem import FsError
from latkit.devices.emulator.session import SH, Ctx, Session, SessionHooks, ShellExit
from latkit.devices.emulator.shell_syntax import Command, ShellSyntax, lex, parse

__all__ = ["SH", "Session", "SessionHooks", "ShellSyntax", "execute", "run_script"]


def _discard(data: bytes) -> None:
    """A sink for ``/dev/null``."""


# --- expansion ----------------------------------------------------------------------------------


def _var(session: Session, name: str) -> str:
    if name == "?":
        return str(session.status)
    if name == "$":
        return "4242"
    if name == "#":
        return "0"
    return session.vars.get(name, "")


def expand_word(parts: list[tuple[str, str]], session: Session, glob: bool = True) -> list[str]:
    """Expand one word into fields: variables, command substitution, splitting, globbing."""
    fields: list[list[tuple[str, bool]]] = [[]]
    saw_quoted = False
    for kind, text in parts:
        if kind == "lit":
            fields[-1].append((text, True))
        elif kind == "q":
            fields[-1].append((text, False))
            saw_quoted = True
        elif kind in ("qvar", "qcmd"):
            value = _var(session, text) if kind == "qvar" else command_output(text, session)
            fields[-1].append((value, False))
            saw_quoted = True
        else:  # unquoted var / cmd: split on whitespace
            value = _var(session, text) if kind == "var" else command_output(text, session)
            pieces = value.split()
            if not pieces:
                continue
            if value[:1].isspace() and fields[-1]:
                fields.append([])
            for j, piece in enumerate(pieces):
                if j:
                    fields.append([])
                fields[-1].append((piece, False))
            if value[-1:].isspace():
                fields.append([])
    result: list[str] = []
    for f in fields:
        if not f:
            continue
        text = "".join(t for t, _ in f)
        magic = glob and any(g and any(ch in t for ch in "*?[") for t, g in f)
        if magic:
            pattern = "".join(t if g else "".join(f"[{ch}]" if ch in "*?[" else ch for ch in t) for t, g in f)
            matches = _glob(pattern, session)
            result.extend(matches if matches else [text])
        else:
            result.append(text)
    if not result and saw_quoted and len(fields) == 1:
        result.append("")
    return result


def _glob(pattern: str, session: Session) -> list[str]:
    fs = session.phone.fs
    absolute = pattern.startswith("/")
    base = "/" if absolute else session.cwd
    candidates = [("", base)]
    for comp in [c for c in pattern.split("/") if c]:
        nxt = []
        for shown, real in candidates:
            if any(ch in comp for ch in "*?["):
                try:
                    names = fs.listdir(real)
                except FsError:
                    continue
                for name in names:
                    if fnmatch.fnmatchcase(name, comp) and (comp.startswith(".") or not name.startswith(".")):
                        shown_name = posixpath.join(shown, name) if shown else name
                        nxt.append((shown_name, posixpath.join(real, name)))
            else:
                lit = comp.replace("[*]", "*").replace("[?]", "?").replace("[[]", "[")
                nxt.append((posixpath.join(shown, lit) if shown else lit, posixpath.join(real, lit)))
        candidates = [(s, r) for s, r in nxt if fs.exists(fs.norm(r))]
    return sorted(("/" + s if absolute else s) for s, _ in candidates)


def command_output(src: str, session: Session) -> str:
    """``$(src)``: run in a child shell, return stdout without trailing newlines."""
    buf = bytearray()
    child = session.child()
    run_script(src, child, buf.extend, lambda b: None)
    session.status = child.status
    return buf.decode("utf-8", errors="replace").rstrip("\n")


# --- execution ----------------------------------------------------------------------------------


class _FileSink:
    def __init__(self, fs, path: str) -> None:
        self.fs, self.path, self.chunks = fs, path, []

    def __call__(self, data: bytes) -> None:
        self.chunks.append(data)

    def flush(self) -> None:
        if self.chunks:
            self.fs.write(self.path, b"".join(self.chunks), append=True)
            self.chunks = []


def run_script(src: str, session: Session, out: Callable[[bytes], None], err: Callable[[bytes], None],
               stdin: bytes = b"") -> int:
    """Run a command line; returns the exit status (also left in ``session.status``)."""
    try:
        script = parse(lex(src))
    except ShellSyntax as exc:
        err(f"{SH}: {exc}\n".encode())
        session.status = 2
        return 2
    try:
        for andor in script:
            for connector, pipeline in andor:
                if connector == "&&" and session.status != 0:
                    continue
                if connector == "||" and session.status == 0:
                    continue
                session.status = _run_pipeline(pipeline, session, out, err, stdin)
    except ShellExit:
        pass
    return session.status


def _run_pipeline(pipeline: list[Command], session: Session, out, err, stdin: bytes) -> int:
    data = stdin
    status = 0
    for k, cmd in enumerate(pipeline):
        last = k == len(pipeline) - 1
        buf = bytearray()
        status = _run_command(cmd, session, out if last else buf.extend, err, data)
        data = bytes(buf)
    return status


def _run_command(cmd: Command, session: Session, out, err, stdin: bytes) -> int:
    fs = session.phone.fs
    argv: list[str] = []
    for w in cmd.words:
        argv.extend(expand_word(w, session))
    assigns = {}
    while argv and "=" in argv[0] and argv[0].split("=", 1)[0].isidentifier() and cmd.words:
        name, value = argv.pop(0).split("=", 1)
        assigns[name] = value
    sinks: dict[int, Callable[[bytes], None]] = {1: out, 2: err}
    files: list[_FileSink] = []
    for fd, op, target_parts in cmd.redirs:
        targets = expand_word(target_parts, session)
        if len(targets) != 1:
            err(f"{SH}: {''.join(t for _, t in target_parts)}: ambiguous redirect\n".encode())
            return 1
        target = targets[0]
        if op in (">&", "<&"):
            src_fd = 1 if fd is None else fd
            if target == "-":
                sinks[src_fd] = lambda b: None
            elif target.isdigit() and int(target) in sinks:
                sinks[src_fd] = sinks[int(target)]
            else:
                err(f"{SH}: {target}: bad file descriptor\n".encode())
                return 1
            continue
        path = fs.norm(target, session.cwd)
        try:
            if op == "<":
                stdin = fs.read(path)
                continue
            if path == "/dev/null":
                sink: Callable[[bytes], None] = _discard
            else:
                fs.write(path, b"", append=(op == ">>"))
                sink = _FileSink(fs, path)
                files.append(sink)
        except FsError as exc:
            verb = "open" if op == "<" else "create"
            err(f"{SH}: can't {verb} {target}: {exc}\n".encode())
            return 1
        if op == "&>":
            sinks[1] = sinks[2] = sink
        else:
            sinks[1 if fd is None else fd] = sink
    if not argv:
        session.vars.update(assigns)
        for f in files:
            f.flush()
        return session.status if cmd.words else 0
    ctx = Ctx(session, stdin, sinks.get(1, out), sinks.get(2, err), execute=execute)
    try:
        status = execute(argv, ctx)
    finally:
        for f in files:
            try:
                f.flush()
            except FsError:
                pass
    return status


def execute(argv: list[str], ctx: Ctx) -> int:
    """Run one expanded command (also what ``Ctx.run`` does for ``taskset``)."""
    ctx.phone.counters.bump("commands_run")
    name = argv[0]
    fs = ctx.fs
    if "/" in name:
        path = ctx.path(name)
        base = posixpath.basename(path)
        if (posixpath.dirname(path) in ("/system/bin", "/system/xbin", "/vendor/bin") and base in COMMANDS
                and not fs.isfile(path)):
            return _guarded(COMMANDS[base], [base] + argv[1:], ctx)
        if path == "/system/bin/benchmark_model" and ctx.phone.profile.preinstalled and not fs.isfile(path):
            return _guarded(run_benchmark_model, argv, ctx)
        if not fs.exists(path):
            ctx.err(f"{SH}: {name}: inaccessible or not found\n")
            return 127
        if fs.isdir(path):
            ctx.err(f"{SH}: {name}: can't execute: Is a directory\n")
            return 126
        if not fs.is_executable(path):
            ctx.err(f"{SH}: {name}: can't execute: Permission denied\n")
            return 126
        if posixpath.basename(path) == "benchmark_model":
            if not _elf_runs_here(fs.read(path)[:20], ctx.phone.profile.abi):
                ctx.err(f"{SH}: {name}: can't execute: Exec format error\n")
                return 126
            return _guarded(run_benchmark_model, argv, ctx)
        head = fs.read(path)[:64]
        if head.startswith((b"#!/system/bin/sh", b"#!/bin/sh")):
            child = ctx.session.child()
            return run_script(fs.read(path).decode("utf-8", errors="replace"), child, ctx.out_sink,
                              ctx.err_sink, ctx.stdin)
        ctx.err(f"{SH}: {name}: can't execute: Exec format error\n")
        return 126
    if name in COMMANDS:
        return _guarded(COMMANDS[name], argv, ctx)
    if name == "benchmark_model" and ctx.phone.profile.preinstalled:
        return _guarded(run_benchmark_model, argv, ctx)
    ctx.err(f"{SH}: {name}: inaccessible or not found\n")
    return 127


#: ELF (class, machine) of each ABI the emulated phone can be
_ABI_ELF = {"arm64-v8a": (2, 183), "armeabi-v7a": (1, 40), "x86_64": (2, 62), "x86": (1, 3)}


def _elf_runs_here(head: bytes, abi: str) -> bool:
    """False for a well-formed ELF header of another machine than the phone's (the kernel's ENOEXEC).
    Anything else named benchmark_model runs the emulated tool (tests push short stand-ins)."""
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] != 1:
        return True
    want = _ABI_ELF.get(abi)
    machine = int.from_bytes(head[18:20], "little")
    arm32_on_arm64 = abi == "arm64-v8a" and (head[4], machine) == (1, 40)
    return want is None or (head[4], machine) == want or arm32_on_arm64


def _guarded(fn, argv: list[str], ctx: Ctx) -> int:
    """Run a command; a bug in the emulator becomes a loud stderr line and status 1, not a hang."""
    try:
        return fn(argv, ctx)
    except (ShellExit, OSError):  # exit, and connection errors (dropped client), pass through
        raise
    except Exception as exc:  # noqa: BLE001 -- any emulator bug must reach the client, not kill the stream
        ctx.err(f"{SH}: {argv[0]}: latkit emulator error: {type(exc).__name__}: {exc}\n")
        return 1
