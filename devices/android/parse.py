"""Strict, pure parsers for the output of TFLite's ``benchmark_model`` tool.

Input is the merged stdout+stderr text of one run (as adb's ``shell`` returns it); output is a
frozen ``BenchmarkResult``. Nothing here touches a device. Anything unexpected raises a named
error carrying the offending line(s) (STYLE 6): a failed parse is never 0 ms.

What the tool prints (tensorflow/lite/tools/benchmark, tsl/util/stats_calculator):

* Log lines, prefixed ``INFO: `` / ``WARN: `` / ``ERROR: `` in newer builds, bare in older ones.
* Parameter echoes such as ``Num threads: [4]`` and ``Graph: [/path/model.tflite]``.
* Two measurement phases, each announced by ``Running benchmark for at least N iterations and at
  least S seconds but terminate if exceeding M seconds.`` and followed by one statistics line
  (microseconds): first the warm-up, then the timed ("regular") runs. Statistics lines are
  ``count=N first=F curr=C min=M max=X avg=A std=S``, with `` p5=.. median=.. p95=..`` appended by
  newer builds, or ``count=N curr=X(all same)`` when every run took the same time (``count=1 curr=X``
  for a single run, ``count=0`` for none). Very old builds print ``curr=`` before ``count=``.
  Averages use C++ stream formatting (``2.95034e+06``).
* One summary line, in one of three forms:
  ``Inference timings in us: Init: A, First inference: B, Warmup (avg): C, Inference (avg): D``;
  older ``Average inference timings in us: Warmup: C, Init: A, Inference: D``; oldest
  ``Average inference timings in us: Warmup: C, Init: A, no stats: D``.
* With ``--enable_op_profiling=true``: tables headed ``==== Run Order ====``, ``==== Top by
  Computation Time ====``, ``==== Summary by node type ====`` whose cells are separated by TABS
  (node types such as ``Convolution (NHWC, F32) IGEMM`` contain spaces). Older builds have a
  ``[start]`` column. Newer builds print one group for initialisation and one for the regular runs.
* ``Unconsumed cmdline flags: ...`` when a flag is unknown (the tool only warns: we fail).

The timed-run statistics are located structurally: the statistics line that follows the LAST
"Running benchmark for at least" announcement (the first one belongs to the warm-up).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from latkit.errors import ParseError

# ---------------------------------------------------------------------------------------------
# Errors and data types
# ---------------------------------------------------------------------------------------------


class BenchmarkFlagError(ParseError):
    """benchmark_model ignored command-line flags (``Unconsumed cmdline flags:``)."""

    def __init__(self, message: str, flags: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.flags = flags


class BenchmarkCrashError(ParseError):
    """benchmark_model crashed or reported an error instead of a result."""


@dataclass(frozen=True)
class RunStats:
    """One statistics line, in microseconds. ``first_us`` is None for "all same"/legacy lines."""

    count: int
    curr_us: float
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    first_us: float | None = None
    p5_us: float | None = None
    median_us: float | None = None
    p95_us: float | None = None
    all_same: bool = False

    @property
    def cv(self) -> float:
        """Coefficient of variation std/avg (0 when avg is 0)."""
        return self.std_us / self.avg_us if self.avg_us > 0 else 0.0


@dataclass(frozen=True)
class OpRow:
    """One row of a per-operator table (Run Order, Top by Computation Time...). Times in ms."""

    node_type: str
    first_ms: float
    avg_ms: float
    pct: float
    cdf_pct: float
    mem_kb: float
    times_called: int
    name: str
    start_ms: float | None = None


@dataclass(frozen=True)
class NodeTypeRow:
    """One row of the "Summary by node type" table. Times in ms."""

    node_type: str
    count: int
    avg_ms: float
    pct: float
    cdf_pct: float
    mem_kb: float
    times_called: int


@dataclass(frozen=True)
class OpProfile:
    """The op-profiling tables of one phase (initialisation or regular runs), primary graph."""

    title: str
    run_order: tuple[OpRow, ...] = ()
    top_by_time: tuple[OpRow, ...] = ()
    by_node_type: tuple[NodeTypeRow, ...] = ()
    nodes_executed: int | None = None
    timings: RunStats | None = None


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything one benchmark_model run reported. Times in microseconds unless named _ms/_mb."""

    summary_format: str  # "modern" | "legacy" | "no_stats"
    init_us: float
    first_us: float | None
    warmup_avg_us: float | None
    inference_avg_us: float
    stats: RunStats
    warmup_stats: RunStats | None
    num_threads: int | None = None
    graph: str | None = None
    model_size_mb: float | None = None
    init_mem_mb: float | None = None
    overall_mem_mb: float | None = None
    op_profile: OpProfile | None = None
    init_profile: OpProfile | None = None
    warnings: tuple[str, ...] = ()

    @property
    def op_rows(self) -> tuple[OpRow, ...]:
        """Run-order rows of the regular runs (empty without op profiling)."""
        return self.op_profile.run_order if self.op_profile else ()

    @property
    def node_type_rows(self) -> tuple[NodeTypeRow, ...]:
        return self.op_profile.by_node_type if self.op_profile else ()


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

_MAX_EXCERPT = 300
_PREFIX = re.compile(r"^(INFO|WARN|WARNING|ERROR|FATAL): ?")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(rf"^{_NUM}$")
_RUN_HEADER = re.compile(
    r"^Running benchmark for at least (\d+) iterations and at least (\S+) seconds but "
    r"terminate if exceeding (\S+) seconds\.$"
)
_MODERN = re.compile(
    rf"^Inference timings in us: Init: (?P<init>\S+), First inference: (?P<first>\S+), "
    rf"Warmup \(avg\): (?P<warmup>\S+), Inference \(avg\): (?P<inference>\S+)$"
)
_LEGACY = re.compile(
    r"^Average inference timings in us: Warmup: (?P<warmup>\S+), Init: (?P<init>\S+), "
    r"(?P<kind>Inference|no stats): (?P<inference>\S+)$"
)
_SUMMARY_START = ("Inference timings in us:", "Average inference timings in us:")
_TABLE_TITLE = re.compile(r"^=+ (?P<title>.+?) =+$")
# Shell and dynamic-linker messages for a process that died or never started.
_CRASH = re.compile(
    r"(\bSegmentation fault\b|\bAborted\b|\bBus error\b|\bIllegal instruction\b"
    r"|^Killed\b|\bKilled\s+\S*benchmark_model|CANNOT LINK EXECUTABLE"
    r"|: (?:inaccessible or )?not found$|: Permission denied$|: can't execute)"
)
_GROUP_TITLES = (
    "Profiling Info for Benchmark Initialization:",
    "Operator-wise Profiling Info for Regular Benchmark Runs:",
)


def excerpt(text: str, limit: int = _MAX_EXCERPT) -> str:
    """``text`` shortened to about ``limit`` characters, keeping both ends, on one line."""
    flat = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if len(flat) <= limit:
        return flat
    half = limit // 2
    return f"{flat[:half]} ... {flat[-half:]}"


def _strip_prefix(line: str) -> tuple[str, str]:
    """(level, message) of one log line; level is "" for unprefixed lines."""
    m = _PREFIX.match(line)
    if m:
        return m.group(1), line[m.end():].rstrip()
    return "", line.rstrip()


def _number(text: str, line: str, what: str) -> float:
    if not _NUM_RE.match(text):
        raise ParseError(f"benchmark_model output: {what} is not a number "
                         f"({excerpt(text, 40)!r}) in line: {excerpt(line)}")
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(f"benchmark_model output: {what} is not finite in line: {excerpt(line)}")
    return value


def _integer(text: str, line: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ParseError(f"benchmark_model output: {what} is not a non-negative integer "
                         f"({excerpt(text, 40)!r}) in line: {excerpt(line)}")
    return int(text)


# ---------------------------------------------------------------------------------------------
# Statistics lines
# ---------------------------------------------------------------------------------------------

_STAT_KEYS = ("count", "first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")


def parse_stats_line(line: str) -> RunStats | None:
    """Parse one ``count=...`` statistics line; None for ``count=0``. Raises ``ParseError``."""
    _, body = _strip_prefix(line)
    # "(all same)" is glued to the value before it ("curr=812(all same)"; very old builds glue it
    # to "count=5"): take it off before splitting the line into key=value tokens.
    body, n_same = re.subn(r"(\b(?:curr|count)=[^\s(]+)\(all same\)", r"\1", body.strip())
    all_same = n_same == 1
    if n_same > 1 or "(all same)" in body:
        raise ParseError(f"benchmark_model statistics: misplaced '(all same)' in line: "
                         f"{excerpt(line)}")
    values: dict[str, str] = {}
    for token in body.split():
        key, sep, value = token.partition("=")
        if not sep or key not in _STAT_KEYS or key in values:
            raise ParseError(f"benchmark_model statistics: unexpected token "
                             f"{excerpt(token, 40)!r} (expected count=N curr=.. min=.. max=.. "
                             f"avg=.. std=..) in line: {excerpt(line)}")
        values[key] = value
    if "count" not in values:
        raise ParseError(f"benchmark_model statistics: no count= in line: {excerpt(line)}")
    count = _integer(values["count"], line, "count")
    if count == 0:
        if len(values) != 1:
            raise ParseError(f"benchmark_model statistics: count=0 with values in line: "
                             f"{excerpt(line)}")
        return None
    nums = {k: _number(v, line, k) for k, v in values.items() if k != "count"}
    pct = {k: nums.pop(k) for k in ("p5", "median", "p95") if k in nums}
    if pct and len(pct) != 3:
        raise ParseError(f"benchmark_model statistics: incomplete percentiles (need p5, median, "
                         f"p95) in line: {excerpt(line)}")
    if set(nums) == {"curr"} and (all_same or count == 1):
        curr = nums["curr"]
        stats = RunStats(count=count, curr_us=curr, min_us=curr, max_us=curr, avg_us=curr,
                         std_us=0.0, all_same=True, p5_us=pct.get("p5"),
                         median_us=pct.get("median"), p95_us=pct.get("p95"))
    elif not all_same and set(nums) - {"first"} == {"curr", "min", "max", "avg", "std"}:
        stats = RunStats(count=count, first_us=nums.get("first"), curr_us=nums["curr"],
                         min_us=nums["min"], max_us=nums["max"], avg_us=nums["avg"],
                         std_us=nums["std"], p5_us=pct.get("p5"), median_us=pct.get("median"),
                         p95_us=pct.get("p95"))
    else:
        raise ParseError(f"benchmark_model statistics: unexpected set of fields "
                         f"{sorted(values)} (count={count}) in line: {excerpt(line)}")
    _check_stats(stats, line)
    return stats


def _check_stats(s: RunStats, line: str) -> None:
    tol = 1e-6 * max(1.0, abs(s.max_us))
    # avg is printed with 6 significant digits: allow that rounding against min/max.
    avg_tol = max(tol, 5e-6 * abs(s.avg_us) + 1e-9)
    ok = (
        s.min_us >= 0
        and s.std_us >= 0
        and s.min_us <= s.max_us + tol
        and s.min_us - avg_tol <= s.avg_us <= s.max_us + avg_tol
        and all(v is None or s.min_us - tol <= v <= s.max_us + tol
                for v in (s.first_us, s.curr_us, s.p5_us, s.median_us, s.p95_us))
    )
    if ok and s.p5_us is not None:
        ok = s.p5_us <= s.median_us + tol and s.median_us <= s.p95_us + tol  # type: ignore[operator]
    if not ok:
        raise ParseError(f"benchmark_model statistics are inconsistent (need 0 <= min <= avg, "
                         f"percentiles <= max, std >= 0): {excerpt(line)}")


# ---------------------------------------------------------------------------------------------
# Op-profiling tables
# ---------------------------------------------------------------------------------------------

_OP_COLUMNS = {
    "[node type]": "node_type", "[start]": "start_ms", "[first]": "first_ms",
    "[avg ms]": "avg_ms", "[%]": "pct", "[cdf%]": "cdf_pct", "[mem KB]": "mem_kb",
    "[times called]": "times_called", "[Name]": "name",
}
_TYPE_COLUMNS = {
    "[Node type]": "node_type", "[count]": "count", "[avg ms]": "avg_ms", "[avg %]": "pct",
    "[cdf %]": "cdf_pct", "[mem KB]": "mem_kb", "[times called]": "times_called",
}
_OP_REQUIRED = set(_OP_COLUMNS.values()) - {"start_ms"}


def _cells(line: str) -> list[str]:
    parts = line.rstrip("\n").split("\t")
    if parts and parts[0].strip() == "":
        parts = parts[1:]  # every field is written as "\t" + padded value
    return [p.strip() for p in parts]


def _header_map(line: str, known: dict[str, str], title: str) -> list[str]:
    if "\t" not in line:
        raise ParseError(f"benchmark_model op profile '{title}': header is not tab-separated "
                         f"(tables must be split on tabs): {excerpt(line)}")
    names = _cells(line)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ParseError(f"benchmark_model op profile '{title}': unknown columns {unknown} in "
                         f"header: {excerpt(line)}")
    fields = [known[n] for n in names]
    if len(set(fields)) != len(fields):
        raise ParseError(f"benchmark_model op profile '{title}': repeated column in header: "
                         f"{excerpt(line)}")
    return fields


def _row_values(line: str, fields: list[str], title: str) -> dict[str, str]:
    cells = _cells(line)
    if len(cells) < len(fields):
        raise ParseError(f"benchmark_model op profile '{title}': expected {len(fields)} "
                         f"tab-separated cells, found {len(cells)} in row: {excerpt(line)}")
    if len(cells) > len(fields):
        if fields[-1] != "name":
            raise ParseError(f"benchmark_model op profile '{title}': expected {len(fields)} "
                             f"cells, found {len(cells)} in row: {excerpt(line)}")
        cells = cells[: len(fields) - 1] + ["\t".join(cells[len(fields) - 1:])]
    return dict(zip(fields, cells))


def _pct(text: str, line: str, what: str) -> float:
    if not text.endswith("%"):
        raise ParseError(f"benchmark_model op profile: {what} {excerpt(text, 40)!r} lacks '%' in row: "
                         f"{excerpt(line)}")
    return _number(text[:-1], line, what)


def _op_row(line: str, fields: list[str], title: str) -> OpRow:
    v = _row_values(line, fields, title)
    return OpRow(
        node_type=v["node_type"],
        first_ms=_number(v["first_ms"], line, "[first]"),
        avg_ms=_number(v["avg_ms"], line, "[avg ms]"),
        pct=_pct(v["pct"], line, "[%]"),
        cdf_pct=_pct(v["cdf_pct"], line, "[cdf%]"),
        mem_kb=_number(v["mem_kb"], line, "[mem KB]"),
        times_called=_integer(v["times_called"], line, "[times called]"),
        name=v["name"],
        start_ms=_number(v["start_ms"], line, "[start]") if "start_ms" in v else None,
    )


def _type_row(line: str, fields: list[str], title: str) -> NodeTypeRow:
    v = _row_values(line, fields, title)
    return NodeTypeRow(
        node_type=v["node_type"],
        count=_integer(v["count"], line, "[count]"),
        avg_ms=_number(v["avg_ms"], line, "[avg ms]"),
        pct=_pct(v["pct"], line, "[avg %]"),
        cdf_pct=_pct(v["cdf_pct"], line, "[cdf %]"),
        mem_kb=_number(v["mem_kb"], line, "[mem KB]"),
        times_called=_integer(v["times_called"], line, "[times called]"),
    )


def _parse_table(lines: list[str], i: int, title: str) -> tuple[list, int]:
    """Parse the table whose header is ``lines[i]``; returns (rows, index after the table)."""
    if i >= len(lines):
        raise ParseError(f"benchmark_model op profile '{title}': output ends before the header")
    by_type = title == "Summary by node type"
    fields = _header_map(lines[i], _TYPE_COLUMNS if by_type else _OP_COLUMNS, title)
    required = set(_TYPE_COLUMNS.values()) if by_type else _OP_REQUIRED
    if not required <= set(fields):
        raise ParseError(f"benchmark_model op profile '{title}': header lacks columns "
                         f"{sorted(required - set(fields))}: {excerpt(lines[i])}")
    rows = []
    i += 1
    while i < len(lines) and lines[i].strip():
        rows.append(_type_row(lines[i], fields, title) if by_type
                    else _op_row(lines[i], fields, title))
        i += 1
    return rows, i


def _parse_profiles(lines: list[str]) -> tuple[OpProfile | None, OpProfile | None]:
    """(regular-runs profile, initialisation profile) from the whole output, primary graph only."""
    groups: dict[str, dict] = {}
    group = _GROUP_TITLES[1]  # older builds print the tables without a group title
    primary = True
    i = 0
    while i < len(lines):
        _, msg = _strip_prefix(lines[i])
        if msg in _GROUP_TITLES:
            group, primary = msg, True
            i += 1
            continue
        if msg.startswith("Subgraph (index:") or msg.startswith("Delegate internal:"):
            primary = False
        elif msg.startswith("Primary graph"):
            primary = True
        m = _TABLE_TITLE.match(msg)
        if m:
            title = m.group("title")
            rows, i = _parse_table(lines, i + 1, title)
            if primary:
                g = groups.setdefault(group, {})
                if title in g:
                    raise ParseError(f"benchmark_model op profile: table '{title}' appears twice "
                                     f"in '{group}'")
                g[title] = rows
            continue
        if primary and group in groups:
            nm = re.match(r"^Number of nodes executed: (\d+)$", msg)
            if nm:
                groups[group]["nodes"] = int(nm.group(1))
            elif msg.startswith("Timings (microseconds): "):
                groups[group]["timings"] = parse_stats_line(msg[len("Timings (microseconds): "):])
        i += 1

    def build(title: str) -> OpProfile | None:
        g = groups.get(title)
        if not g:
            return None
        return OpProfile(
            title=title.rstrip(":"),
            run_order=tuple(g.get("Run Order", ())),
            top_by_time=tuple(g.get("Top by Computation Time", ())),
            by_node_type=tuple(g.get("Summary by node type", ())),
            nodes_executed=g.get("nodes"),
            timings=g.get("timings"),
        )

    return build(_GROUP_TITLES[1]), build(_GROUP_TITLES[0])


# ---------------------------------------------------------------------------------------------
# Failure detection
# ---------------------------------------------------------------------------------------------


def _unconsumed_flags(lines: list[str]) -> None:
    for line in lines:
        _, msg = _strip_prefix(line)
        if msg.startswith("Unconsumed cmdline flags:"):
            flags = tuple(msg[len("Unconsumed cmdline flags:"):].split())
            raise BenchmarkFlagError(
                f"benchmark_model did not understand the flags {' '.join(flags) or '(empty)'} "
                f"(\"{excerpt(msg)}\"); this benchmark_model build does not support them: "
                f"update benchmark_model or drop the option",
                flags,
            )


def _crash_lines(lines: list[str]) -> list[str]:
    """Lines saying the process crashed or the tool failed (fatal regardless of a summary)."""
    out = []
    for line in lines:
        level, msg = _strip_prefix(line)
        if level == "FATAL" or msg.startswith("Benchmarking failed") or (
            not level and "\t" not in msg and _CRASH.search(msg)
            and not msg.startswith(("Graph:", "Loaded model"))
        ):
            out.append(line.strip())
    return out


def _error_lines(lines: list[str]) -> list[str]:
    return [ln.strip() for ln in lines if _strip_prefix(ln)[0] == "ERROR"]


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _summary(lines: list[str]) -> tuple[str, dict[str, str], str]:
    found = []
    for line in lines:
        _, msg = _strip_prefix(line)
        if msg.startswith(_SUMMARY_START):
            found.append((line, msg))
    if not found:
        raise ParseError(
            "benchmark_model output has no summary line ('Inference timings in us: ...' or "
            "'Average inference timings in us: ...'); the run did not finish. Last lines: "
            f"{excerpt(chr(10).join(lines[-6:]))}"
        )
    if len(found) > 1:
        raise ParseError(f"benchmark_model output has {len(found)} summary lines, expected one: "
                         f"{excerpt(chr(10).join(f[0] for f in found))}")
    line, msg = found[0]
    m = _MODERN.match(msg)
    if m:
        return "modern", m.groupdict(), line
    m = _LEGACY.match(msg)
    if m:
        kind = "no_stats" if m.group("kind") == "no stats" else "legacy"
        return kind, m.groupdict(), line
    raise ParseError(f"benchmark_model summary line has an unknown form: {excerpt(line)}")


def _phase_stats(lines: list[str]) -> tuple[RunStats | None, RunStats, int]:
    """(warm-up stats, timed-run stats, timed-run announcement's iteration count)."""
    headers = [i for i, ln in enumerate(lines) if _RUN_HEADER.match(_strip_prefix(ln)[1])]
    if len(headers) < 2:
        raise ParseError(
            f"benchmark_model output has {len(headers)} 'Running benchmark for at least ...' "
            f"announcements, expected 2 (warm-up, timed runs); output was cut short? Last lines: "
            f"{excerpt(chr(10).join(lines[-6:]))}"
        )

    def stats_after(h: int) -> tuple[RunStats | None, str]:
        end = headers[headers.index(h) + 1] if h != headers[-1] else len(lines)
        for ln in lines[h + 1:end]:
            _, msg = _strip_prefix(ln)
            if msg.startswith(("count=", "curr=")):
                return parse_stats_line(msg), ln
        raise ParseError(f"benchmark_model output has no statistics line after "
                         f"'{excerpt(lines[h], 120)}'; output was cut short?")

    warm, _ = stats_after(headers[-2])
    timed, line = stats_after(headers[-1])
    if timed is None:
        raise ParseError(f"benchmark_model made 0 timed runs (line: {excerpt(line)}); raise "
                         f"--max_secs or check the model")
    min_runs = int(_RUN_HEADER.match(_strip_prefix(lines[headers[-1]])[1]).group(1))
    return warm, timed, min_runs


def _echo(lines: list[str], pattern: str) -> str | None:
    rx = re.compile(pattern)
    for line in lines:
        m = rx.match(_strip_prefix(line)[1])
        if m:
            return m.group(1)
    return None


def parse_benchmark_output(text: str) -> BenchmarkResult:
    """Parse the full output of one ``benchmark_model`` run.

    Raises ``BenchmarkFlagError`` for unconsumed flags, ``BenchmarkCrashError`` for crashes and
    tool errors, and ``ParseError`` for anything missing or malformed; messages quote the lines.
    """
    if not isinstance(text, str):
        raise ParseError(f"benchmark_model output must be text, got {type(text).__name__}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    _unconsumed_flags(lines)
    crashes = _crash_lines(lines)
    errors = _error_lines(lines)
    if crashes:
        ordered = [ln.strip() for ln in lines if ln.strip() in set(crashes) | set(errors)]
        raise BenchmarkCrashError(f"benchmark_model failed: {excerpt(chr(10).join(ordered))}")
    try:
        kind, fields, line = _summary(lines)
    except ParseError as exc:
        if errors:
            raise BenchmarkCrashError(f"benchmark_model failed: {excerpt(chr(10).join(errors))}")
        raise exc
    warm, timed, _ = _phase_stats(lines)

    init_us = _number(fields["init"], line, "Init")
    inference_avg = _number(fields["inference"], line, "Inference (avg)")
    first_us = _number(fields["first"], line, "First inference") if "first" in fields else None
    if warm is None and fields["warmup"].lstrip("-").lower() == "nan":
        warmup_avg = None
    else:
        warmup_avg = _number(fields["warmup"], line, "Warmup (avg)")
    if abs(inference_avg - timed.avg_us) > max(1.0, 1e-4 * timed.avg_us):
        raise ParseError(f"benchmark_model summary says Inference (avg) {fields['inference']} us "
                         f"but the timed-run statistics say avg={timed.avg_us:g} us: "
                         f"{excerpt(line)}")
    if warm is not None and warmup_avg is not None and (
        abs(warmup_avg - warm.avg_us) > max(1.0, 1e-4 * warm.avg_us)
    ):
        raise ParseError(f"benchmark_model summary says Warmup (avg) {fields['warmup']} us but the "
                         f"warm-up statistics say avg={warm.avg_us:g} us: {excerpt(line)}")

    threads = _echo(lines, r"^Num threads: \[(-?\d+)\]$")
    size = _echo(lines, rf"^The input model file size \(MB\): ({_NUM})$")
    mem = None
    for ln in lines:
        m = re.match(rf"^Memory footprint delta from the start of the tool \(MB\): "
                     rf"init=({_NUM}) overall=({_NUM})$", _strip_prefix(ln)[1])
        if m:
            mem = (float(m.group(1)), float(m.group(2)))
    op_profile, init_profile = _parse_profiles(lines)
    return BenchmarkResult(
        summary_format=kind,
        init_us=init_us,
        first_us=first_us,
        warmup_avg_us=warmup_avg,
        inference_avg_us=inference_avg,
        stats=timed,
        warmup_stats=warm,
        num_threads=int(threads) if threads is not None else None,
        graph=_echo(lines, r"^Graph: \[(.*)\]$"),
        model_size_mb=float(size) if size is not None else None,
        init_mem_mb=mem[0] if mem else None,
        overall_mem_mb=mem[1] if mem else None,
        op_profile=op_profile,
        init_profile=init_profile,
        warnings=tuple(errors),
    )
