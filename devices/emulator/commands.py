"""The commands of the emulated phone's shell (toybox/mksh look-alikes), interpreted in Python.

Each command is ``fn(argv, ctx) -> exit status``; ``ctx`` is ``session.Ctx``. Messages copy
toybox's form (``cat: X: No such file or directory``). Only what latkit's Android agent
(``devices/android``), the adb clients (Debian's ``adb`` and ``adb-shell``: ``shell``, ``push``,
``pull``) and the tests use is here; see ``COMMANDS`` at the end. A command that runs another
(``taskset``) does it through ``ctx.run``: this module does not import the shell.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import stat as stat_mod
import time

from latkit.devices.emulator.filesystem import FsError
from latkit.devices.emulator.session import SH, ShellExit

__all__ = ["COMMANDS"]


def _read_inputs(name: str, args: list[str], ctx) -> tuple[list[tuple[str, bytes]], int]:
    """(label, content) for each file argument, or stdin when there is none."""
    if not args:
        return [("-", ctx.stdin)], 0
    items, status = [], 0
    for a in args:
        if a == "-":
            items.append(("-", ctx.stdin))
            continue
        try:
            items.append((a, ctx.fs.read(ctx.path(a))))
        except FsError as exc:
            ctx.err(f"{name}: {a}: {exc}\n")
            status = 1
    return items, status


def _flags(args: list[str], known: str) -> tuple[set[str], list[str]]:
    flags, rest = set(), []
    for i, a in enumerate(args):
        if a == "--":
            rest.extend(args[i + 1:])
            break
        if a.startswith("-") and len(a) > 1 and all(c in known for c in a[1:]):
            flags.update(a[1:])
        else:
            rest.append(a)
    return flags, rest


def c_echo(argv, ctx) -> int:
    args, newline, escapes = argv[1:], True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0] or (escapes and "E" not in args[0])
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = text.encode().decode("unicode_escape", errors="replace")
    ctx.out(text + ("\n" if newline else ""))
    return 0


def c_printf(argv, ctx) -> int:
    if len(argv) < 2:
        ctx.err("printf: Needs 1 argument\n")
        return 1
    fmt = argv[1].encode().decode("unicode_escape", errors="replace")
    args = argv[2:]
    specs = re.findall(r"%[-+ 0#]*\d*(?:\.\d+)?[sdixXfcgeb%]", fmt)
    n_specs = len([s for s in specs if s != "%%"])
    out = []
    while True:
        chunk, used = [], 0

        def repl(m, args=args):
            nonlocal used
            spec = m.group(0)
            if spec == "%%":
                return "%"
            value = args[used] if used < len(args) else ""
            used += 1
            conv = spec[-1]
            try:
                if conv in "dixX":
                    return (spec[:-1] + ("d" if conv == "i" else conv)) % int(value or 0)
                if conv in "fge":
                    return spec % float(value or 0)
                if conv == "b":
                    return value.encode().decode("unicode_escape", errors="replace")
                return spec % value
            except ValueError:
                ctx.err(f"printf: invalid number '{value}'\n")
                return "0"

        chunk.append(re.sub(r"%[-+ 0#]*\d*(?:\.\d+)?[sdixXfcgeb%]", repl, fmt))
        out.extend(chunk)
        args = args[used:]
        if not args or n_specs == 0:
            break
    ctx.out("".join(out))
    return 0


def c_cat(argv, ctx) -> int:
    items, status = _read_inputs("cat", [a for a in argv[1:] if a != "-u"], ctx)
    for _, data in items:
        ctx.out(data)
    return status


def _ls_line(ctx, path: str, shown: str) -> str:
    st = ctx.fs.stat(path)
    kind = "d" if stat_mod.S_ISDIR(st.mode) else "-"
    perms = "".join(c if st.mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    owner = "shell" if st.uid == 2000 else "root"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.mtime))
    return f"{kind}{perms} {st.nlink} {owner} {owner} {st.size} {when} {shown}\n"


def c_ls(argv, ctx) -> int:
    flags, args = _flags(argv[1:], "laA1dhR")
    status = 0
    targets = args or ["."]
    for k, a in enumerate(targets):
        p = ctx.path(a)
        if not ctx.fs.exists(p):
            ctx.err(f"ls: {a}: No such file or directory\n")
            status = 1
            continue
        if ctx.fs.isdir(p) and "d" not in flags:
            if len(targets) > 1:
                ctx.out(("\n" if k else "") + f"{a}:\n")
            names = ctx.fs.listdir(p)
            if "a" not in flags and "A" not in flags:
                names = [n for n in names if not n.startswith(".")]
            for name in names:
                child = posixpath.join(p, name)
                ctx.out(_ls_line(ctx, child, name) if "l" in flags else name + "\n")
        else:
            ctx.out(_ls_line(ctx, p, a) if "l" in flags else a + "\n")
    return status


def c_rm(argv, ctx) -> int:
    flags, args = _flags(argv[1:], "frRv")
    status = 0
    for a in args:
        p = ctx.path(a)
        if not ctx.fs.exists(p):
            if "f" not in flags:
                ctx.err(f"rm: {a}: No such file or directory\n")
                status = 1
            continue
        try:
            ctx.fs.remove(p, recursive=bool(flags & {"r", "R"}))
        except FsError as exc:
            ctx.err(f"rm: {a}: {exc}\n")
            status = 1
    return status


def c_rmdir(argv, ctx) -> int:
    status = 0
    for a in argv[1:]:
        p = ctx.path(a)
        try:
            if ctx.fs.listdir(p):
                raise FsError("Directory not empty")
            ctx.fs.remove(p, recursive=True)
        except FsError as exc:
            ctx.err(f"rmdir: {a}: {exc}\n")
            status = 1
    return status


def c_mkdir(argv, ctx) -> int:
    args, parents, status = [], False, 0
    it = iter(argv[1:])
    for a in it:
        if a == "-p":
            parents = True
        elif a == "-m":
            next(it, None)
        elif a.startswith("-m"):
            continue
        else:
            args.append(a)
    for a in args:
        try:
            ctx.fs.mkdir(ctx.path(a), parents=parents)
        except FsError as exc:
            ctx.err(f"mkdir: '{a}': {exc}\n")
            status = 1
    return status


def _parse_mode(spec: str, current: int) -> int | None:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = current & 0o7777
    for clause in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)([+\-=])([rwx]*)", clause)
        if not m:
            return None
        who = m.group(1) or "a"
        bits = sum({"r": 4, "w": 2, "x": 1}[c] for c in m.group(3))
        mask = 0
        for w, shift in (("u", 6), ("g", 3), ("o", 0)):
            if w in who or "a" in who:
                mask |= bits << shift
        if m.group(2) == "+":
            mode |= mask
        elif m.group(2) == "-":
            mode &= ~mask
        else:
            clear = sum(7 << s for w, s in (("u", 6), ("g", 3), ("o", 0)) if w in who or "a" in who)
            mode = (mode & ~clear) | mask
    return mode


def c_chmod(argv, ctx) -> int:
    flags, args = _flags(argv[1:], "Rfv")
    if len(args) < 2:
        ctx.err("chmod: Needs 2 arguments\n")
        return 1
    status = 0
    for a in args[1:]:
        p = ctx.path(a)
        try:
            mode = _parse_mode(args[0], ctx.fs.stat(p).mode)
            if mode is None:
                ctx.err(f"chmod: bad mode '{args[0]}'\n")
                return 1
            ctx.fs.chmod(p, mode)
        except FsError as exc:
            ctx.err(f"chmod: {a}: {exc}\n")
            status = 1
    return status


def _hash_cmd(algo: str):
    def run(argv, ctx) -> int:
        items, status = _read_inputs(f"{algo}sum", [a for a in argv[1:] if a != "-b"], ctx)
        for label, data in items:
            ctx.out(f"{hashlib.new(algo, data).hexdigest()}  {label}\n")
        return status
    return run


def _test(args: list[str], ctx) -> bool | None:
    if not args:
        return False
    if args[0] == "!":
        r = _test(args[1:], ctx)
        return None if r is None else not r
    for op in ("-o", "-a"):
        if op in args[1:-1]:
            i = args.index(op, 1)
            left, right = _test(args[:i], ctx), _test(args[i + 1:], ctx)
            if left is None or right is None:
                return None
            return (left or right) if op == "-o" else (left and right)
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        op, val = args
        if op in ("-z", "-n"):
            return (val == "") == (op == "-z")
        p = ctx.path(val)
        fs = ctx.fs
        checks = {
            "-e": lambda: fs.exists(p), "-f": lambda: fs.isfile(p), "-d": lambda: fs.isdir(p),
            "-x": lambda: fs.exists(p) and (fs.isdir(p) or fs.is_executable(p)),
            "-r": lambda: fs.exists(p), "-w": lambda: fs.writable(p) and fs.exists(p),
            "-s": lambda: fs.isfile(p) and fs.stat(p).size > 0, "-L": lambda: False, "-h": lambda: False,
        }
        return checks[op]() if op in checks else None
    if len(args) == 3:
        a, op, b = args
        if op in ("=", "=="):
            return a == b
        if op == "!=":
            return a != b
        ints = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-le": int.__le__,
                "-gt": int.__gt__, "-ge": int.__ge__}
        if op in ints:
            try:
                return ints[op](int(a), int(b))
            except ValueError:
                return None
    return None


def c_test(argv, ctx) -> int:
    args = argv[1:]
    result = _test(args, ctx)
    if result is None:
        ctx.err(f"{SH}: {argv[0]}: bad expression: {' '.join(args)}\n")
        return 2
    return 0 if result else 1


def c_stat(argv, ctx) -> int:
    fmt, args = None, []
    it = iter(argv[1:])
    for a in it:
        if a == "-c":
            fmt = next(it, "")
        elif a.startswith("-c") or a.startswith("--format="):
            fmt = a[2:] if a.startswith("-c") else a.split("=", 1)[1]
        elif a not in ("-L",):
            args.append(a)
    status = 0
    for a in args:
        p = ctx.path(a)
        try:
            st = ctx.fs.stat(p)
        except FsError as exc:
            ctx.err(f"stat: '{a}': {exc}\n")
            status = 1
            continue
        if stat_mod.S_ISDIR(st.mode):
            kind = "directory"
        else:
            kind = "regular file" if st.size else "regular empty file"
        if fmt is None:
            blocks = (st.size + 511) // 512
            ctx.out(f"  File: {a}\n  Size: {st.size}\t Blocks: {blocks}\t IO Blocks: 4096\t{kind}\n")
            continue
        values = {"s": str(st.size), "n": a, "a": f"{st.mode & 0o7777:o}", "Y": str(st.mtime),
                  "F": kind, "U": "shell" if st.uid == 2000 else "root", "u": str(st.uid),
                  "f": f"{st.mode:x}", "i": str(st.ino), "h": str(st.nlink), "%": "%"}
        ctx.out(re.sub(r"%(.)", lambda m, values=values: values.get(m.group(1), "?"), fmt) + "\n")
    return status


def c_getprop(argv, ctx) -> int:
    props = ctx.phone.props
    if len(argv) > 1:
        ctx.out(props.get(argv[1], argv[2] if len(argv) > 2 else "") + "\n")
    else:
        ctx.out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
    return 0




def c_which(argv, ctx) -> int:
    """toybox ``which NAME...``: the first executable file of that name on ``$PATH``; 1 if any is
    missing. A ``preinstalled`` benchmark_model lives in /system/bin."""
    status = 0
    for name in argv[1:]:
        found = None
        for d in ctx.session.vars.get("PATH", "").split(":"):
            cand = posixpath.join(d or ".", name)
            if ctx.fs.isfile(cand) and ctx.fs.is_executable(cand):
                found = cand
                break
            if name == "benchmark_model" and d == "/system/bin" and ctx.phone.profile.preinstalled:
                found = cand
                break
        if found is None:
            status = 1
        else:
            ctx.out(found + "\n")
    return status


def c_uname(argv, ctx) -> int:
    parts = {"s": "Linux", "n": "localhost", "r": "4.14.302-g0000000000-ab000000",
             "v": "#1 SMP PREEMPT Mon Jan 1 00:00:00 UTC 2024", "m": "aarch64"}
    flags, _ = _flags(argv[1:], "asnrvmo")
    if "a" in flags:
        keys = "snrvm"
    else:
        keys = "".join(k for k in "snrvm" if k in flags) or "s"
    ctx.out(" ".join(parts[k] for k in keys) + ("  Toybox" if "a" in flags else "") + "\n")
    return 0


def c_nproc(argv, ctx) -> int:
    ctx.out(f"{len(ctx.phone.profile.cpu_max_khz)}\n")
    return 0


def c_exit(argv, ctx) -> int:
    try:
        code = int(argv[1]) & 0xFF if len(argv) > 1 else ctx.session.status
    except ValueError:
        ctx.err(f"{SH}: exit: {argv[1]}: bad number\n")
        code = 2
    ctx.session.status = code
    raise ShellExit()


def c_cd(argv, ctx) -> int:
    target = argv[1] if len(argv) > 1 else ctx.session.vars.get("HOME", "/")
    p = ctx.path(target)
    if not ctx.fs.isdir(p):
        ctx.err(f"{SH}: cd: {target}: No such file or directory\n")
        return 2
    ctx.session.cwd = p
    return 0


def c_pwd(argv, ctx) -> int:
    ctx.out(ctx.session.cwd + "\n")
    return 0




def c_taskset(argv, ctx) -> int:
    if len(argv) < 3 or argv[1].startswith("-"):
        ctx.err("usage: taskset [-ap] [mask] [PID | cmd [args...]]\n")
        return 1
    mask_text = argv[1]
    if not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", mask_text):
        ctx.err(f"taskset: bad mask '{mask_text}'\n")
        return 1
    mask = int(mask_text, 16)
    if mask & ((1 << len(ctx.phone.profile.cpu_max_khz)) - 1) == 0:
        ctx.err("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    with ctx.phone.counters.lock:
        ctx.phone.counters.taskset_masks.append(mask_text.lower())
    ctx.affinity = f"{mask:x}"
    return ctx.run(argv[2:])






def c_sleep(argv, ctx) -> int:
    try:
        seconds = float(argv[1].rstrip("s")) if len(argv) > 1 else 0.0
    except ValueError:
        ctx.err(f"sleep: invalid number '{argv[1]}'\n")
        return 1
    closed = ctx.session.hooks.wait_closed(min(seconds, 3600.0))
    return 130 if closed else 0


def c_head(argv, ctx) -> int:
    n, args, by_bytes = 10, [], False
    it = iter(argv[1:])
    for a in it:
        if a in ("-n", "-c"):
            by_bytes = a == "-c"
            n = int(next(it, "10").lstrip("+"))
        elif re.fullmatch(r"-\d+", a):
            n = int(a[1:])
        else:
            args.append(a)
    items, status = _read_inputs(argv[0], args, ctx)
    for _, data in items:
        if by_bytes:
            ctx.out(data[:n])
        else:
            lines = data.splitlines(keepends=True)
            ctx.out(b"".join(lines[:n]))
    return status


def c_wc(argv, ctx) -> int:
    flags, args = _flags(argv[1:], "lwc")
    items, status = _read_inputs("wc", args, ctx)
    for label, data in items:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        keys = [k for k in "lwc" if k in flags] or list("lwc")
        text = " ".join(str(counts[k]) for k in keys)
        ctx.out(text + ("" if label == "-" else f" {label}") + "\n")
    return status


def c_grep(argv, ctx) -> int:
    flags, args = _flags(argv[1:], "qvciEFn")
    if not args:
        ctx.err("grep: Needs 1 argument\n")
        return 2
    pattern = re.escape(args[0]) if "F" in flags else args[0]
    try:
        rx = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        ctx.err(f"grep: bad regex '{args[0]}': {exc}\n")
        return 2
    items, status = _read_inputs("grep", args[1:], ctx)
    found = 0
    for _, data in items:
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if bool(rx.search(line)) != ("v" in flags):
                found += 1
                if not flags & {"q", "c"}:
                    ctx.out((f"{number}:" if "n" in flags else "") + line + "\n")
    if "c" in flags:
        ctx.out(f"{found}\n")
    return status or (0 if found else 1)






















def c_true(argv, ctx) -> int:
    return 0


def c_false(argv, ctx) -> int:
    return 1


COMMANDS = {
    "echo": c_echo, "printf": c_printf, "cat": c_cat, "ls": c_ls, "rm": c_rm, "rmdir": c_rmdir,
    "mkdir": c_mkdir, "chmod": c_chmod, "sha256sum": _hash_cmd("sha256"), "test": c_test,
    "stat": c_stat, "getprop": c_getprop, "uname": c_uname, "nproc": c_nproc, "true": c_true,
    "false": c_false, "exit": c_exit, "cd": c_cd, "pwd": c_pwd, "taskset": c_taskset,
    "sleep": c_sleep, "head": c_head, "wc": c_wc, "grep": c_grep,
    "which": c_which,
}
