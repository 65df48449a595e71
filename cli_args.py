"""Command-line options that several ``lat`` commands share: one definition, one help text each.

Each ``add_*`` function adds one option (or one group of options) to a parser or argument group and
returns what it added; keyword arguments cover what legitimately differs between commands (required
or not, a default, a sentence about what the value is for). Values stay plain: an option that needs
a search space to be understood (``--resolutions``, ``--arch``) is kept as text here and parsed in
the command's handler (``latkit.supernet.resolutions.parse_resolutions(text, space)``), since this
module sits below every product package and imports none of them.

The device-and-protocol options map onto the library through ``device_options(args)`` (the options
of a device: threads, affinity, delegate, serial) and ``protocol_overrides(args)`` (fields of
``devices.base.ProtocolSettings``); both leave out what was not given.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: numeric precisions a model is exported and measured in (``--precision``); fp32 is the default
PRECISIONS = ("fp32", "fp16", "int8")
#: TFLite delegates an android device accepts (``--delegate``)
DELEGATES = ("cpu", "gpu", "nnapi")
#: the options ``add_device_options`` adds, by their namespace names
DEVICE_OPTIONS = ("threads", "affinity", "delegate", "serial", "lock_timeout")
#: protocol option -> the ``ProtocolSettings`` field it sets
PROTOCOL_FIELDS = {"warmup_runs": "warmup_runs", "warmup_time": "warmup_s", "min_runs": "min_runs",
                   "min_time": "min_time_s", "max_time": "max_time_s"}
#: every option ``add_protocol_options`` can add, by namespace name
PROTOCOL_OPTIONS = (*PROTOCOL_FIELDS, "quick", "realtime", "passes")
#: the realtime priority ``--realtime`` takes when given without a value
DEFAULT_REALTIME_PRIORITY = 10

#: a parser or an argument group: anything ``add_argument`` can be called on
Parser = argparse._ActionsContainer

#: the most runtime threads a command accepts: twice this host's CPUs, at least 16 (a phone's
#: eight cores measured from a two-core laptop). More only oversubscribes: 10,000 hung a host.
MAX_THREADS = max(16, 2 * (os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------------
# Checked numbers: argparse types that refuse what cannot be meant (one line, exit 2)
# ---------------------------------------------------------------------------------------------


def integer(lo: int | None = None, hi: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse ``type``: an integer (``176``, not ``176.5``) in ``lo..hi`` (inclusive)."""
    def parse(text: str) -> int:
        try:
            v = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            span = f"in {lo}..{hi}" if hi is not None and lo is not None else (
                f">= {lo}" if hi is None else f"<= {hi}")
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           what: str = "number") -> Callable[[str], float]:
    """An argparse ``type``: a finite number (no nan/inf) in ``lo..hi`` (``lo_open``: above lo)."""
    def parse(text: str) -> float:
        try:
            v = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite {what}, got {text!r}")
        low = lo is not None and (v <= lo if lo_open else v < lo)
        if low or (hi is not None and v > hi):
            left = "none" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
            span = left if hi is None else f"{left} and <= {hi:g}"
            raise argparse.ArgumentTypeError(f"expected a {what} {span}, got {text!r}")
        return v

    parse.__name__ = "number"
    return parse


#: ``--threads``: 1..MAX_THREADS
THREADS = integer(1, MAX_THREADS, "a thread count")
#: a count of at least one (``-n``, ``--batch``, ``--min-runs``, ``--population``...)
POSITIVE = integer(1)
#: a count that may be zero (``--warmup-runs``, ``--checkpoint-every``)
NON_NEGATIVE = integer(0)
#: seconds that may be zero (``--warmup-time``)
SECONDS = number(0.0, what="number of seconds")
#: seconds above zero (``--min-time``, ``--max-time``, ``--lock-timeout``)
POSITIVE_SECONDS = number(0.0, lo_open=True, what="number of seconds")
#: a seed: numpy's random generators take 0..2**32-1
SEED = integer(0, 2**32 - 1, "a seed")


def _with_default(text: str, default: Any) -> str:
    return text if default is None else f"{text} (default {default})"


# ---------------------------------------------------------------------------------------------
# What to work on
# ---------------------------------------------------------------------------------------------


def add_space(p: Parser, *, required: bool = False, default: str | None = None,
              help: str | None = None, dest: str | None = None) -> argparse.Action:
    """``--space NAME``: a search space (``lat space list``); ``dest`` for a subcommand's own name."""
    return p.add_argument("--space", required=required, default=default, dest=dest or "space",
                          help=help or _with_default("search space (see `lat space list`)", default))


def add_resolutions(p: Parser, *, default: str = "all", help: str | None = None) -> argparse.Action:
    """``--resolutions TEXT``, kept as text: the handler parses it with ``parse_resolutions``."""
    return p.add_argument(
        "--resolutions", metavar="R",
        help=help or f"input resolutions: a list and/or ranges such as 128,160 or 128-224:8 (a range "
        f"steps by 4 by default), or 'all' (default {default})")


def add_seed(p: Parser, *, default: int | None = None, what: str = "random seed") -> argparse.Action:
    """``--seed N``; ``what`` says what the seed draws (``"sampling seed for -n"``...)."""
    return p.add_argument("--seed", type=SEED, default=default, help=_with_default(what, default))


def add_batch(p: Parser, *, default: int | None = None,
              help: str = "input batch size") -> argparse.Action:
    """``--batch N``: the input batch size of an exported or measured model."""
    return p.add_argument("--batch", type=POSITIVE, default=default, help=_with_default(help, default))


def add_precision(p: Parser, *, default: str | None = None, calib: bool = False,
                  help: str | None = None) -> list[argparse.Action]:
    """``--precision fp32|fp16|int8`` (and ``--calib-data`` with ``calib``: the images int8 is
    calibrated on, the built-in data set unless given)."""
    text = help or ("numeric precision of the model: fp32, fp16 weights, or full-integer int8 "
                    "(weights and activations, calibrated on images)")
    out = [p.add_argument("--precision", choices=PRECISIONS, default=default,
                          help=_with_default(text, default or "fp32"))]
    if calib:
        out.append(p.add_argument(
            "--calib-data", metavar="DIR", help="images int8 is calibrated on: a folder of images "
            "(searched recursively) or builtin:NAME (default builtin:gratings)"))
    return out


# ---------------------------------------------------------------------------------------------
# Where results go and how they are reported
# ---------------------------------------------------------------------------------------------


def add_out(p: Parser, *, required: bool = True, default: str | None = None, metavar: str = "DIR",
            help: str | None = None, dest: str | None = None) -> argparse.Action:
    """``--out PATH``: where the command writes (a directory unless ``metavar`` says a file)."""
    text = help or ("output directory" if metavar == "DIR" else "output file")
    return p.add_argument("--out", required=required, default=default, metavar=metavar,
                          dest=dest or "out", help=_with_default(text, default))


def add_json(p: Parser, *, help: str = "end by printing one JSON object") -> argparse.Action:
    """``--json``: machine-readable output."""
    return p.add_argument("--json", action="store_true", help=help)


def add_quiet(p: Parser, *, short: bool = False) -> argparse.Action:
    """``--quiet`` (and ``-q`` with ``short``): no progress output."""
    flags = ("-q", "--quiet") if short else ("--quiet",)
    return p.add_argument(*flags, action="store_true", help="no progress output")


# ---------------------------------------------------------------------------------------------
# Devices and the measurement protocol
# ---------------------------------------------------------------------------------------------


def add_device(p: Parser, *, several: bool = False, default: str | None = None,
               required: bool = False) -> argparse.Action:
    """``--device NAME`` (``NAME[,NAME...]`` with ``several``): a registered device."""
    what = "device name(s), comma-separated" if several else "device name"
    text = f"{what} (see `lat device list`" + (f"; default {default})" if default else ")")
    return p.add_argument("--device", required=required, default=default, help=text)


def add_device_options(p: Parser, *, options: Iterable[str] = DEVICE_OPTIONS) -> list[argparse.Action]:
    """``--threads``, ``--affinity``, ``--delegate``, ``--serial``, ``--lock-timeout``: how and where a
    device runs.

    ``options`` picks a subset of ``DEVICE_OPTIONS`` (namespace names), added in that order.
    """
    spec = {
        "threads": (("--threads",), dict(type=THREADS, help="runtime threads (default: the "
                                         f"device's; at most {MAX_THREADS}, twice this host's CPUs)")),
        "affinity": (("--affinity",), dict(
            metavar="MASK", help="CPU affinity as a hex mask, e.g. 1 or 0xf0 (taskset style)")),
        "delegate": (("--delegate",), dict(choices=DELEGATES, help="TFLite delegate (android devices)")),
        "serial": (("--serial",), dict(help="adb serial or host:port (android devices only)")),
        "lock_timeout": (("--lock-timeout",), dict(
            type=POSITIVE_SECONDS, metavar="S", help="seconds to wait for a phone another latkit process is "
            "measuring on (android devices; default 3600)")),
    }
    options = tuple(options)
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ValueError(f"unknown device option(s) {unknown}; known: {', '.join(spec)}")
    return [p.add_argument(*spec[name][0], **spec[name][1]) for name in options]


def add_protocol_options(p: Parser, *, options: Iterable[str] = PROTOCOL_OPTIONS,
                         defaults: Mapping[str, Any] | None = None) -> list[argparse.Action]:
    """The measurement protocol: warm-up, timed runs and time, ``--quick``, ``--realtime``.

    ``options`` picks a subset of ``PROTOCOL_OPTIONS`` (namespace names); ``defaults`` (namespace
    name -> value) only shows a default in the help: unset options stay None, so that the command
    knows what the user gave.
    """
    d = dict(defaults or {})
    spec = {
        "warmup_runs": (("--warmup-runs",), dict(type=int, help="minimum warm-up runs")),
        "warmup_time": (("--warmup-time",), dict(type=float, metavar="S",
                                                 help="minimum warm-up seconds")),
        "min_runs": (("--min-runs",), dict(type=int, help="minimum timed runs")),
        "min_time": (("--min-time",), dict(type=float, metavar="S",
                                           help="minimum timed seconds per measurement")),
        "max_time": (("--max-time",), dict(type=float, metavar="S",
                                           help="maximum timed seconds per measurement")),
        "quick": (("--quick",), dict(action="store_true", default=None,
                                     help="a tiny protocol for smoke runs and tests (noisy figures)")),
        "realtime": (("--realtime",), dict(
            type=int, nargs="?", const=DEFAULT_REALTIME_PRIORITY, metavar="PRIO",
            help="time each benchmark in SCHED_FIFO (Linux, root): steadier figures on a busy "
            f"machine (default priority {DEFAULT_REALTIME_PRIORITY})")),
        "passes": (("--passes",), dict(
            type=int, metavar="N",
            help="measure each model in N short passes spread over the run and report the median "
            "of the passes (averages the machine's drift; --quick: 1)")),
    }
    unknown = sorted(set(options) - set(spec))
    if unknown:
        raise ValueError(f"unknown protocol option(s) {unknown}; known: {', '.join(spec)}")
    types = {"warmup_runs": NON_NEGATIVE, "warmup_time": SECONDS, "min_runs": POSITIVE,
             "min_time": POSITIVE_SECONDS, "max_time": POSITIVE_SECONDS,
             "realtime": integer(1, 99, "a SCHED_FIFO priority")}
    actions = []
    for name in options:
        flags, kw = spec[name]
        if name in types:
            kw = {**kw, "type": types[name]}
        if name in d:
            kw = {**kw, "help": _with_default(kw["help"], d[name])}
        actions.append(p.add_argument(*flags, **kw))
    return actions


def add_device_and_protocol(p: argparse.ArgumentParser, *, title: str = "device and protocol",
                            protocol: Iterable[str] = PROTOCOL_OPTIONS,
                            defaults: Mapping[str, Any] | None = None) -> argparse._ArgumentGroup:
    """One help section with ``add_device_options`` and ``add_protocol_options``; returns it."""
    g = p.add_argument_group(title)
    add_device_options(g)
    add_protocol_options(g, options=protocol, defaults=defaults)
    return g


def device_options(args: argparse.Namespace, names: Iterable[str] = DEVICE_OPTIONS) -> dict[str, Any]:
    """The device options the user gave (``threads``, ``affinity``...), None ones left out."""
    return {k: v for k in names if (v := getattr(args, k, None)) is not None}


def protocol_overrides(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """``ProtocolSettings`` fields set by the protocol options given (``{"min_runs": 5, ...}``).

    ``args`` is a namespace or a mapping of namespace names (a campaign file's arguments).
    """
    get = args.get if isinstance(args, Mapping) else (lambda k: getattr(args, k, None))
    return {field: v for name, field in PROTOCOL_FIELDS.items() if (v := get(name)) is not None}


# ---------------------------------------------------------------------------------------------
# Latency budgets: one list for every device, or per device
# ---------------------------------------------------------------------------------------------

#: the exit status of a command that answered every (device, budget) it could but found one that
#: no subnet meets (reported with the fastest reachable latency); 2 stays for bad input
INFEASIBLE_EXIT = 3

#: help text of ``--budget-ms``
BUDGET_HELP = ("latency budgets in ms: B[,B...] for every device, or DEV=B[,B...] for one device "
               "(repeatable: --budget-ms cpu=3,5,8 --budget-ms pixel4=20,30; a plain list then "
               f"serves the devices not named). A budget no subnet meets is reported with the "
               f"fastest reachable latency, the others are still answered, and the exit status "
               f"is {INFEASIBLE_EXIT}")


def _milliseconds(text: str, whole: str) -> list[float]:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected milliseconds such as 5 or 2.5, got "
                                             f"{part.strip()!r} in {whole!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"budgets are positive milliseconds, got {part.strip()!r} "
                                             f"in {whole!r}")
        out.append(v)
    if not out:
        raise argparse.ArgumentTypeError(f"expected B[,B...] or DEV=B[,B...] in ms, got {whole!r}")
    return out


def budget_spec(text: str) -> tuple[str | None, list[float]]:
    """An argparse ``type``: ``5,10`` -> ``(None, [5.0, 10.0])``; ``cpu=3,5`` -> ``("cpu", [3.0, 5.0])``."""
    text = str(text)
    dev, sep, rest = text.partition("=")
    if sep:
        if not dev.strip():
            raise argparse.ArgumentTypeError(f"expected DEV=B[,B...], got {text!r} (no device name)")
        return dev.strip(), _milliseconds(rest, text)
    return None, _milliseconds(text, text)


def add_budgets(p: Parser, *, required: bool = True, help: str = BUDGET_HELP) -> argparse.Action:
    """``--budget-ms B[,B...] | DEV=B[,B...]`` (repeatable): see ``resolve_budgets``."""
    return p.add_argument("--budget-ms", dest="budget_ms", action="append", type=budget_spec,
                          required=required, metavar="[DEV=]B[,B...]", help=help)


def resolve_budgets(specs: Iterable[tuple[str | None, Iterable[float]]] | str | None,
                    devices: Iterable[str]) -> dict[str, list[float]]:
    """Each device -> its budgets (ascending, no repeats), from ``budget_spec`` values.

    A device named with ``DEV=`` takes its own list; every other device takes the plain list.
    ``ValueError`` (the CLI shows it as one line) for a device that is not a target, a device given
    twice, more than one plain list, or a target left without budgets. ``specs`` may be the text
    of one option (``"5,10"``, ``"cpu=3,5"``) or a ``;``-separated list of them.
    """
    if isinstance(specs, str):
        try:
            specs = [budget_spec(s) for s in specs.split(";") if s.strip()]
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--budget-ms: {exc}") from None
    devices = list(devices)
    plain: list[float] | None = None
    own: dict[str, list[float]] = {}
    for dev, values in specs or ():
        values = [float(v) for v in values]
        if dev is None:
            if plain is not None:
                raise ValueError("--budget-ms: give one plain list (for every device) and DEV=... "
                                 "lists for the others, not two plain lists")
            plain = values
        elif dev in own:
            raise ValueError(f"--budget-ms names device {dev} twice; give its budgets in one list")
        elif dev not in devices:
            raise ValueError(f"--budget-ms names device {dev!r}, which is not a target (targets: "
                             f"{', '.join(devices)})")
        else:
            own[dev] = values
    out = {}
    for d in devices:
        values = own.get(d, plain)
        if not values:
            raise ValueError(f"no --budget-ms for device {d}: give --budget-ms {d}=B[,B...] or a "
                             "plain list for every device")
        out[d] = sorted(set(values))
    return out
