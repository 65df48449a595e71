"""Files of archs: one arch per line, or a CSV with an ``arch`` column (``--archs FILE``)."""

from __future__ import annotations

import csv
from pathlib import Path

from latkit.errors import ArchError
from latkit.supernet.space import ArchConfig, SearchSpace


def read_archs(path: str | Path, space: SearchSpace) -> list[ArchConfig]:
    """Archs from a file: one per line (canonical key or JSON dict), or a CSV with an ``arch`` column.

    Blank lines and lines starting with ``#`` are skipped. Every arch is validated against ``space``;
    an error names the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise ArchError(f"arch file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArchError(f"arch file {p} is not UTF-8 text (byte {exc.start}); give one arch per "
                        "line or a CSV with an arch column") from None
    except OSError as exc:
        raise ArchError(f"arch file {p} cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    archs: list[ArchConfig] = []
    first = next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
    if first.split(",")[0].strip().lower() == "arch" or ",arch," in f",{first},":
        rows = csv.DictReader(ln for ln in lines if not ln.startswith("#"))
        for i, row in enumerate(rows, start=2):
            try:
                archs.append(space.parse(row["arch"]))
            except ArchError as exc:
                raise ArchError(f"{p}:{i}: {exc}") from None
            except (TypeError, ValueError):  # a short row: arch is None
                raise ArchError(f"{p}:{i}: the row has no arch") from None
        return archs
    for i, ln in enumerate(lines, start=1):
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        try:
            archs.append(space.parse(s))
        except ArchError as exc:
            raise ArchError(f"{p}:{i}: {exc}") from None
    return archs
