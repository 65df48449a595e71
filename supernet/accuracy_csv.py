"""The one reader of accuracy tables: the ``arch,top1[,space,checkpoint,...]`` CSV of ``lat train eval``.

Everything that reads such a table (a resumed ``lat train eval``, ``lat fit --target top1``, the
search's accuracy source) reads it here, with the same checks, each failure one line naming the file
and line: the file exists and is a readable CSV (lines starting with ``#`` are comments), it has the
columns ``arch`` and ``top1``, every arch parses (in ``space`` when one is given) and belongs to the
table's space, every top-1 is a finite percentage in 0..100, an arch that appears twice has the same
top-1 both times, and there is at least one row. Extra columns are kept in ``AccuracyRow.fields``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from latkit.errors import ArchError, LatkitError, PredictorError
from latkit.supernet.space import ArchConfig, SearchSpace, get_space
from latkit.tables import LINE, read_table

HINT = "write one with lat train eval (CSV with columns arch,top1)"


class AccuracyRow(NamedTuple):
    """One row: the arch, its top-1 in percent, and every column of the row as read."""

    arch: ArchConfig
    top1: float
    fields: dict[str, str]


def _rows(p: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    frame = read_table(p, what="accuracy table", hint=HINT, error=LatkitError)
    cols = [c for c in frame.columns if c != LINE]
    return cols, [(r.pop(LINE), r) for r in frame.to_dict("records")]


def read_accuracy_csv(path: str | Path, space: SearchSpace | str | None = None, *,
                      allow_empty: bool = False) -> list[AccuracyRow]:
    """Every row of the accuracy table at ``path``, checked (see the module docstring).

    ``space`` None parses each arch on its own (any space); with a space, archs must be in it and a
    ``space`` column, where present, must name it. ``allow_empty`` accepts a table with a header
    and no rows (one that ``lat train eval`` was stopped in before its first result).
    """
    p = Path(path)
    sp = get_space(space) if isinstance(space, str) else space
    cols, rows = _rows(p)
    if "arch" not in cols or "top1" not in cols:
        raise LatkitError(f"accuracy table {p} needs columns arch,top1; found "
                          f"{','.join(cols) or 'no header'}")
    out: list[AccuracyRow] = []
    seen: dict[str, tuple[float, int]] = {}
    for i, row in rows:
        if sp is not None and row.get("space") and row["space"] != sp.name:
            raise PredictorError(f"accuracy table {p} is for space {row['space']}, "
                                 f"not {sp.name} (line {i})")
        try:
            arch = sp.parse(row["arch"]) if sp is not None else ArchConfig.parse(row["arch"])
        except ArchError as exc:
            raise ArchError(f"{p}:{i}: {exc}") from None
        except (TypeError, ValueError) as exc:  # a short row: arch is None
            raise ArchError(f"{p}:{i}: arch {row.get('arch')!r} is not an arch key ({exc})") from None
        try:
            top1 = float(row["top1"])
        except (TypeError, ValueError):
            raise LatkitError(f"{p}:{i}: top1 must be a number, found {row.get('top1')!r}") from None
        if not math.isfinite(top1) or not 0.0 <= top1 <= 100.0:
            raise LatkitError(f"{p}:{i}: top1 is a percentage (0..100), found {top1}")
        key = str(arch)
        if key in seen and seen[key][0] != top1:
            raise LatkitError(f"{p}:{i}: {key} appears twice with different top1 "
                              f"({seen[key][0]} on line {seen[key][1]} and {top1})")
        seen.setdefault(key, (top1, i))
        out.append(AccuracyRow(arch, top1, row))
    if not out and not allow_empty:
        raise LatkitError(f"accuracy table {p} has no rows; {HINT}")
    return out


def accuracy_frame(path: str | Path, space: SearchSpace | str | None = None) -> Any:
    """An accuracy table as a pandas DataFrame, read and checked by ``read_accuracy_csv``: its
    columns as written (``arch`` canonical, ``top1`` a number) plus ``resolution``."""
    import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

    rows = read_accuracy_csv(path, space)
    frame = pd.DataFrame([{**r.fields, "arch": str(r.arch), "top1": r.top1} for r in rows])
    frame["resolution"] = [r.arch.r for r in rows]
    return frame.drop(columns=[LINE], errors="ignore")

