"""The one reader and the one writer of latkit's tables (CSV, and Parquet where pyarrow is installed).

Every table latkit reads (measurements, accuracy tables, lookup tables, feature tables) is read by
``read_table`` and every table it writes (``lat measure``'s CSV, ``lut.csv``, accuracy tables,
``pareto.csv``) is written by ``write_table``, both built on pandas:

- ``read_table(path, required=..., what=..., hint=...)``: a DataFrame of strings, one row per data
  row, with the file's line number of each row in the column ``LINE`` (``_line``) so that checks can
  name ``FILE:LINE``. CSV lines starting with ``#`` are comments. A missing file, a file that is not
  UTF-8, a ragged row or a missing required column is one ``TableError`` line naming the file (and
  the row and column where there is one) and saying what was expected.
- ``numbers(frame, column, path, ...)``: a column as floats, checked finite (and positive, in a
  range, integral where asked), the first bad cell named ``FILE:LINE: column must be ..., found ...``.
- ``write_table(frame_or_rows, path, columns=...)``: atomic (``latkit.fileio``), refusing a path that
  is not a regular file; floats written with the digits needed to read back the same number.
- ``.parquet`` paths are read and written as Parquet (``pip install 'latkit[parquet]'``).

This module sits at the bottom of latkit's layers (beside ``fileio``): pandas is imported when a
table is first read or written, so ``lat --help`` does not pay for it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from latkit.errors import LatkitError
from latkit.fileio import atomic_path, check_writable

LINE = "_line"
PARQUET_SUFFIXES = (".parquet", ".pq")
_MANGLED = re.compile(r"(.+)\.(\d+)")


class TableError(LatkitError):
    """A table that cannot be read or written as asked (one line, exit 2)."""


def _pd() -> Any:
    import pandas as pd  # noqa: PLC0415 -- pandas costs ~0.3 s to import; only tables need it

    return pd


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def _parquet_engine(path: Path) -> None:
    try:
        import pyarrow  # noqa: F401, PLC0415 -- optional extra, checked only for .parquet paths
    except ImportError:
        raise TableError(f"{path}: Parquet needs pyarrow; install it with pip install "
                         "'latkit[parquet]', or use a .csv path") from None


def _read_csv_text(p: Path, what: str) -> tuple[Any, list[int]]:
    pd = _pd()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TableError(f"{what} {p} cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TableError(f"{what} {p} is not UTF-8 text (line {line}: byte "
                         f"0x{raw[exc.start]:02x}); save it as UTF-8 CSV") from None
    if "\x00" in text:
        raise TableError(f"{what} {p} is a binary file, not a CSV table")
    kept, lines = [], []
    for i, ln in enumerate(text.splitlines(keepends=True), start=1):
        if ln.startswith("#") or not ln.strip():
            continue
        kept.append(ln if ln.endswith(("\n", "\r")) else ln + "\n")
        lines.append(i)
    if not kept:
        return pd.DataFrame(), []
    try:
        frame = pd.read_csv(io.StringIO("".join(kept)), dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=False, engine="c")
    except pd.errors.ParserError as exc:
        raise TableError(f"{what} {p} is not a well-formed CSV table ({_parser_line(exc, lines)})"
                         ) from None
    except (pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"{what} {p} is not a readable CSV table ({exc})") from None
    return frame, lines[1:1 + len(frame)]


def _parser_line(exc: Exception, lines: list[int]) -> str:
    """pandas counts lines of what it was given; say the file's line instead."""
    msg = str(exc).strip().splitlines()[-1]
    m = re.search(r"line (\d+), saw (\d+)", msg)
    if m and 0 < int(m.group(1)) <= len(lines):
        exp = re.search(r"Expected (\d+) fields", msg)
        n_exp = exp.group(1) if exp else "the header's"
        return f"line {lines[int(m.group(1)) - 1]} has {m.group(2)} fields, the header {n_exp}"
    return msg


def read_table(path: str | Path, *, required: Sequence[str] = (), what: str = "table",
               hint: str = "", allow_empty: bool = True, error: type[LatkitError] = TableError
               ) -> Any:
    """The table at ``path`` as a DataFrame of strings plus ``LINE`` (see the module docstring).

    ``required`` columns must all be present; ``allow_empty`` False refuses a table with no rows.
    ``error`` is the ``LatkitError`` subclass raised (each module keeps its own kind of error).
    """
    pd = _pd()
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    if not p.exists():
        raise error(f"{what} {p} does not exist{tail}")
    if not p.is_file():
        raise error(f"{what} {p} is not a regular file{tail}")
    if is_parquet(p):
        _parquet_engine(p)
        try:
            frame = pd.read_parquet(p)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises many kinds on a bad file
            raise error(f"{what} {p} is not a readable Parquet file "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
        frame = frame.astype(object).where(frame.notna(), "")
        frame = frame.map(lambda v: v if isinstance(v, str) else _cell_text(v))
        rows = list(range(1, len(frame) + 1))
    else:
        try:
            frame, rows = _read_csv_text(p, what)
        except TableError as exc:
            raise error(str(exc)) from None
    cols = [str(c) for c in frame.columns]
    # pandas renames a repeated header "a" to "a.1": a column "X.N" beside "X" is a repeat
    dup = sorted({m.group(1) for c in cols if (m := _MANGLED.fullmatch(c)) and m.group(1) in cols}
                 | {c for c in cols if cols.count(c) > 1})
    if dup:
        raise error(f"{what} {p} repeats column(s) {', '.join(dup)} in its header")
    missing = [c for c in required if c not in cols]
    if missing:
        raise error(f"{what} {p} needs column(s) {','.join(required)}; missing "
                    f"{','.join(missing)} (found {','.join(cols) or 'no header'}){tail}")
    frame = frame.reset_index(drop=True)
    frame[LINE] = rows
    if not allow_empty and frame.empty:
        raise error(f"{what} {p} has no rows{tail}")
    return frame


def _cell_text(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def numbers(frame: Any, column: str, path: str | Path, *, positive: bool = False,
            lo: float | None = None, hi: float | None = None, integral: bool = False,
            what: str = "", error: type[LatkitError] = TableError) -> list[float]:
    """``frame[column]`` as floats; the first cell that is not a finite number in range is one error.

    ``positive``: > 0; ``lo``/``hi``: inclusive bounds; ``integral``: a whole number.
    """
    out: list[float] = []
    name = what or column
    lines = frame[LINE] if LINE in frame.columns else range(2, len(frame) + 2)
    for cell, line in zip(frame[column], lines, strict=True):
        where = f"{path}:{line}"
        try:
            v = float(cell)
        except (TypeError, ValueError):
            raise error(f"{where}: {name} must be a number, found {cell!r}") from None
        if not math.isfinite(v):
            raise error(f"{where}: {name} must be a finite number, found {cell!r}")
        if positive and not v > 0:
            raise error(f"{where}: {name} must be positive, found {cell!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise error(f"{where}: {name} must be in {rng}, found {cell!r}")
        if integral and v != int(v):
            raise error(f"{where}: {name} must be a whole number, found {cell!r}")
        out.append(v)
    return out


def numeric_columns(frame: Any, keep: Sequence[str] = ("arch", "space", "device")) -> Any:
    """``frame`` with every column that holds only numbers (read as text) converted to numbers;
    the ``keep`` columns, and any column with a cell that is not a number, stay as they are."""
    pd = _pd()
    for col in frame.columns:
        if col not in keep and not pd.api.types.is_numeric_dtype(frame[col]):
            conv = pd.to_numeric(frame[col], errors="coerce")
            if conv.notna().all():
                frame[col] = conv
    return frame


def frame_of(rows: Any, columns: Sequence[str] | None = None) -> Any:
    """A DataFrame from a DataFrame, a mapping of columns, or an iterable of row mappings."""
    pd = _pd()
    if isinstance(rows, pd.DataFrame):
        frame = rows
    elif isinstance(rows, Mapping):
        frame = pd.DataFrame(dict(rows))
    else:
        frame = pd.DataFrame(list(rows) if not isinstance(rows, list) else rows)
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        for c in missing:
            frame[c] = ""
        frame = frame[list(columns)]
    return frame.drop(columns=[LINE], errors="ignore")


def to_csv_text(rows: Any, columns: Sequence[str] | None = None, *, header: bool = True) -> str:
    """The CSV text ``write_table`` writes (floats round-trip exactly)."""
    frame = frame_of(rows, columns)
    if frame.empty and columns is not None and not header:
        return ""
    return frame.to_csv(index=False, header=header, lineterminator="\n", float_format=None)


def write_table(rows: Any, path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (DataFrame, column mapping or row mappings) to ``path`` atomically.

    ``columns`` fixes the columns and their order (a missing column is written empty). A ``.parquet``
    path is written as Parquet. Refuses (``OutputError``) a path that is a directory, a device, a FIFO
    or a symlink, as every latkit output does.
    """
    p = Path(path)
    check_writable(p)
    frame = frame_of(rows, columns)
    with atomic_path(p) as tmp:
        if is_parquet(p):
            _parquet_engine(p)
            frame.to_parquet(tmp, index=False)
        else:
            Path(tmp).write_text(to_csv_text(frame), encoding="utf-8", newline="")
    return p


def append_rows(handle: Any, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Append rows (no header) to an open text handle, formatted as ``write_table`` formats them."""
    rows = list(rows)
    if rows:
        handle.write(to_csv_text(rows, columns, header=False))
        handle.flush()


def header_line(columns: Sequence[str]) -> str:
    """The header line ``write_table`` writes for ``columns``."""
    return to_csv_text(frame_of({c: [] for c in columns}, columns))
