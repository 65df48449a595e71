"""benchmark_model's op-profiling tables (``--enable_op_profiling=true``), parsed strictly.

Tables are headed ``==== Run Order ====``, ``==== Top by Computation Time ====`` and ``==== Summary
by node type ====``; their cells are separated by TABS (node types such as ``Convolution (NHWC,
F32) IGEMM`` contain spaces). Older builds have a ``[start]`` column and print the tables without a
group title; newer builds print one group for initialisation and one for the regular runs. Only the
primary graph's tables are kept (subgraph and delegate-internal tables are skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from latkit.devices.android.parse_stats import (
    RunStats,
    parse_integer,
    parse_number,
    parse_stats_line,
    strip_level,
)
from latkit.devices.android.text import excerpt
from latkit.errors import ParseError

_TABLE_TITLE = re.compile(r"^=+ (?P<title>.+?) =+$")
_GROUP_TITLES = (
    "Profiling Info for Benchmark Initialization:",
    "Operator-wise Profiling Info for Regular Benchmark Runs:",
)


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



# ---------------------------------------------------------------------------------------------
# Tables
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
    return parse_number(text[:-1], line, what)


def _op_row(line: str, fields: list[str], title: str) -> OpRow:
    v = _row_values(line, fields, title)
    return OpRow(
        node_type=v["node_type"],
        first_ms=parse_number(v["first_ms"], line, "[first]"),
        avg_ms=parse_number(v["avg_ms"], line, "[avg ms]"),
        pct=_pct(v["pct"], line, "[%]"),
        cdf_pct=_pct(v["cdf_pct"], line, "[cdf%]"),
        mem_kb=parse_number(v["mem_kb"], line, "[mem KB]"),
        times_called=parse_integer(v["times_called"], line, "[times called]"),
        name=v["name"],
        start_ms=parse_number(v["start_ms"], line, "[start]") if "start_ms" in v else None,
    )


def _type_row(line: str, fields: list[str], title: str) -> NodeTypeRow:
    v = _row_values(line, fields, title)
    return NodeTypeRow(
        node_type=v["node_type"],
        count=parse_integer(v["count"], line, "[count]"),
        avg_ms=parse_number(v["avg_ms"], line, "[avg ms]"),
        pct=_pct(v["pct"], line, "[avg %]"),
        cdf_pct=_pct(v["cdf_pct"], line, "[cdf %]"),
        mem_kb=parse_number(v["mem_kb"], line, "[mem KB]"),
        times_called=parse_integer(v["times_called"], line, "[times called]"),
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


def parse_profiles(lines: list[str]) -> tuple[OpProfile | None, OpProfile | None]:
    """(regular-runs profile, initialisation profile) from the whole output, primary graph only."""
    groups: dict[str, dict] = {}
    group = _GROUP_TITLES[1]  # older builds print the tables without a group title
    primary = True
    i = 0
    while i < len(lines):
        _, msg = strip_level(lines[i])
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
