"""benchmark_model's statistics lines, and the number helpers every part of the parser shares.

A statistics line (``tsl::Stat``, microseconds) is ``count=N first=F curr=C min=M max=X avg=A std=S``;
newer builds append `` p5=.. median=.. p95=..``; identical runs collapse to ``count=N curr=X(all
same)`` (``count=1 curr=X`` for one run, ``count=0`` for none); very old builds print ``curr=``
before ``count=``. Averages use C++ stream formatting (``2.95034e+06``). ``parse_stats_line`` is
strict: an unknown token, a missing field or inconsistent values raise ``ParseError`` quoting the
line (STYLE 6).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from latkit.devices.android.text import excerpt
from latkit.errors import ParseError

PREFIX = re.compile(r"^(INFO|WARN|WARNING|ERROR|FATAL): ?")
NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
NUM_RE = re.compile(rf"^{NUM}$")
_STAT_KEYS = ("count", "first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")


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



# ---------------------------------------------------------------------------------------------
# Helpers shared with the summary and op-profile parsers
# ---------------------------------------------------------------------------------------------


def strip_level(line: str) -> tuple[str, str]:
    """(level, message) of one log line; level is "" for unprefixed lines."""
    m = PREFIX.match(line)
    if m:
        return m.group(1), line[m.end():].rstrip()
    return "", line.rstrip()


def parse_number(text: str, line: str, what: str) -> float:
    if not NUM_RE.match(text):
        raise ParseError(f"benchmark_model output: {what} is not a number "
                         f"({excerpt(text, 40)!r}) in line: {excerpt(line)}")
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(f"benchmark_model output: {what} is not finite in line: {excerpt(line)}")
    return value


def parse_integer(text: str, line: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ParseError(f"benchmark_model output: {what} is not a non-negative integer "
                         f"({excerpt(text, 40)!r}) in line: {excerpt(line)}")
    return int(text)



# ---------------------------------------------------------------------------------------------
# Statistics lines
# ---------------------------------------------------------------------------------------------


def parse_stats_line(line: str) -> RunStats | None:
    """Parse one ``count=...`` statistics line; None for ``count=0``. Raises ``ParseError``."""
    _, body = strip_level(line)
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
    count = parse_integer(values["count"], line, "count")
    if count == 0:
        if len(values) != 1:
            raise ParseError(f"benchmark_model statistics: count=0 with values in line: "
                             f"{excerpt(line)}")
        return None
    nums = {k: parse_number(v, line, k) for k, v in values.items() if k != "count"}
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

