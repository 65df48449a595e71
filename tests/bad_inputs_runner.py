"""Run many ``lat`` command lines, each in its own forked process, for tests/test_bad_inputs.py.

A fresh ``python -m latkit`` costs 0.2-2 s of imports per case (scikit-learn, torch); 150 cases
would add minutes to the suite. This runner imports what the commands import ONCE, does no work
of its own (so no thread pool exists when it forks), then forks one child per case: the child is a
real, separate process that runs ``latkit.cli.main(argv)`` in the case's directory with stdout and
stderr sent to files, exactly as ``lat ARGV`` would, and exits with its status. An exception that
escapes ``main`` prints its traceback to the child's stderr, as the interpreter would.

The parent hashes every file under the watched directory before and after each case and reports the
ones that changed or went. Protocol: one JSON object per line on stdin
``{"id", "argv", "cwd", "watch"}``, one per line on stdout ``{"id", "rc", "stdout", "stderr",
"changed", "seconds"}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

PRELOAD = ("numpy", "scipy.stats", "sklearn.linear_model", "xgboost", "yaml", "torch",
           "onnxruntime", "latkit.cli", "latkit.predictors.api", "latkit.predictors.accuracy",
           "latkit.search.run", "latkit.supernet.accuracy", "latkit.profiler.campaign_file",
           "latkit.profiler.store")
#: a case that runs longer than this is killed and reported (rc 124): the table checks for hangs
CASE_TIMEOUT_S = 60.0
#: files larger than this are compared by size, mtime and inode (an atomic replace changes both)
BIG = 1 << 20


def snapshot(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                out[p] = f"special:{os.lstat(p).st_mode:o}"
                continue
            st = os.stat(p)
            if st.st_size > BIG:  # a checkpoint: its size, time and inode, not 30 MB of hashing
                out[p] = f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
                continue
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


def child(case: dict, out_path: str, err_path: str) -> None:
    code = 99
    try:
        os.chdir(case["cwd"])
        for fd, path in ((1, out_path), (2, err_path)):
            f = os.open(path, os.O_WRONLY | os.O_TRUNC)
            os.dup2(f, fd)
            os.close(f)
        from latkit.cli import main

        code = main(case["argv"])
    except SystemExit as exc:  # argparse's exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 -- what escapes main is the finding: print it as Python would
        traceback.print_exc()
        code = 98
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def run(case: dict) -> dict:
    before = snapshot(case["watch"]) if case.get("watch") else {}
    with tempfile.NamedTemporaryFile(delete=False) as o, tempfile.NamedTemporaryFile(delete=False) as e:
        out_path, err_path = o.name, e.name
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(case, out_path, err_path)
    rc = None
    while time.monotonic() - t0 < CASE_TIMEOUT_S:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.005)
    if rc is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        rc = 124
    seconds = time.monotonic() - t0
    res = {"id": case["id"], "rc": rc, "seconds": round(seconds, 3),
           "stdout": Path(out_path).read_text(errors="replace"),
           "stderr": Path(err_path).read_text(errors="replace")}
    os.unlink(out_path)
    os.unlink(err_path)
    if case.get("watch"):
        after = snapshot(case["watch"])
        res["changed"] = sorted(p for p, h in before.items() if after.get(p) != h)
    return res


def main() -> None:
    import importlib

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from latkit.cli import build_parser

    build_parser()  # imports every subcommand module once, here, not in each child
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
