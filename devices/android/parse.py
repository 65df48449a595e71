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

Statistics lines are parsed in ``parse_stats``, op-profiling tables in ``parse_ops``; this module
finds the phases, the summary and the failures, and assembles the ``BenchmarkResult``.

The timed-run statistics are located structurally: the statistics line that follows the LAST
"Running benchmark for at least" announcement (the first one belongs to the warm-up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from latkit.devices.android.parse_ops import NodeTypeRow, OpProfile, OpRow, parse_profiles
from latkit.devices.android.parse_stats import (
    NUM,
    RunStats,
    parse_number,
    parse_stats_line,
    strip_level,
)
from latkit.devices.android.text import excerpt
from latkit.errors import ParseError

__all__ = ["BenchmarkCrashError", "BenchmarkFlagError", "BenchmarkResult", "parse_benchmark_output"]

_RUN_HEADER = re.compile(
    r"^Running benchmark for at least (\d+) iterations and at least (\S+) seconds but "
    r"terminate if exceeding (\S+) seconds\.$"
)
_MODERN = re.compile(
    r"^Inference timings in us: Init: (?P<init>\S+), First inference: (?P<first>\S+), "
    r"Warmup \(avg\): (?P<warmup>\S+), Inference \(avg\): (?P<inference>\S+)$"
)
_LEGACY = re.compile(
    r"^Average inference timings in us: Warmup: (?P<warmup>\S+), Init: (?P<init>\S+), "
    r"(?P<kind>Inference|no stats): (?P<inference>\S+)$"
)
_SUMMARY_START = ("Inference timings in us:", "Average inference timings in us:")
# Shell and dynamic-linker messages for a process that died or never started.
_CRASH = re.compile(
    r"(\bSegmentation fault\b|\bAborted\b|\bBus error\b|\bIllegal instruction\b"
    r"|^Killed\b|\bKilled\s+\S*benchmark_model|CANNOT LINK EXECUTABLE"
    r"|: (?:inaccessible or )?not found$|: Permission denied$|: can't execute)"
)

# ---------------------------------------------------------------------------------------------
# Errors and the result
# ---------------------------------------------------------------------------------------------


class BenchmarkFlagError(ParseError):
    """benchmark_model ignored command-line flags (``Unconsumed cmdline flags:``)."""

    def __init__(self, message: str, flags: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.flags = flags


class BenchmarkCrashError(ParseError):
    """benchmark_model crashed or reported an error instead of a result."""


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
# Failure detection
# ---------------------------------------------------------------------------------------------


def _unconsumed_flags(lines: list[str]) -> None:
    for line in lines:
        _, msg = strip_level(line)
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
        level, msg = strip_level(line)
        if level == "FATAL" or msg.startswith("Benchmarking failed") or (
            not level and "\t" not in msg and _CRASH.search(msg)
            and not msg.startswith(("Graph:", "Loaded model"))
        ):
            out.append(line.strip())
    return out


def _error_lines(lines: list[str]) -> list[str]:
    return [ln.strip() for ln in lines if strip_level(ln)[0] == "ERROR"]


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _summary(lines: list[str]) -> tuple[str, dict[str, str], str]:
    found = []
    for line in lines:
        _, msg = strip_level(line)
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
    headers = [i for i, ln in enumerate(lines) if _RUN_HEADER.match(strip_level(ln)[1])]
    if len(headers) < 2:
        raise ParseError(
            f"benchmark_model output has {len(headers)} 'Running benchmark for at least ...' "
            f"announcements, expected 2 (warm-up, timed runs); output was cut short? Last lines: "
            f"{excerpt(chr(10).join(lines[-6:]))}"
        )

    def stats_after(h: int) -> tuple[RunStats | None, str]:
        end = headers[headers.index(h) + 1] if h != headers[-1] else len(lines)
        for ln in lines[h + 1:end]:
            _, msg = strip_level(ln)
            if msg.startswith(("count=", "curr=")):
                return parse_stats_line(msg), ln
        raise ParseError(f"benchmark_model output has no statistics line after "
                         f"'{excerpt(lines[h], 120)}'; output was cut short?")

    warm, _ = stats_after(headers[-2])
    timed, line = stats_after(headers[-1])
    if timed is None:
        raise ParseError(f"benchmark_model made 0 timed runs (line: {excerpt(line)}); raise "
                         f"--max_secs or check the model")
    min_runs = int(_RUN_HEADER.match(strip_level(lines[headers[-1]])[1]).group(1))
    return warm, timed, min_runs


def _echo(lines: list[str], pattern: str) -> str | None:
    rx = re.compile(pattern)
    for line in lines:
        m = rx.match(strip_level(line)[1])
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
            raise BenchmarkCrashError(f"benchmark_model failed: {excerpt(chr(10).join(errors))}") from None
        raise exc
    warm, timed, _ = _phase_stats(lines)

    init_us = parse_number(fields["init"], line, "Init")
    inference_avg = parse_number(fields["inference"], line, "Inference (avg)")
    first_us = parse_number(fields["first"], line, "First inference") if "first" in fields else None
    if warm is None and fields["warmup"].lstrip("-").lower() == "nan":
        warmup_avg = None
    else:
        warmup_avg = parse_number(fields["warmup"], line, "Warmup (avg)")
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
    size = _echo(lines, rf"^The input model file size \(MB\): ({NUM})$")
    mem = None
    for ln in lines:
        m = re.match(rf"^Memory footprint delta from the start of the tool \(MB\): "
                     rf"init=({NUM}) overall=({NUM})$", strip_level(ln)[1])
        if m:
            mem = (float(m.group(1)), float(m.group(2)))
    op_profile, init_profile = parse_profiles(lines)
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
