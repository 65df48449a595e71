"""Files of archs (``--archs FILE``): one arch per line, or a CSV or Parquet table with an ``arch`` column."""

from __future__ import annotations

from pathlib import Path

from latkit.errors import ArchError
from latkit.supernet.space import ArchConfig, SearchSpace
from latkit.tables import LINE, is_parquet, read_table


def read_archs(path: str | Path, space: SearchSpace) -> list[ArchConfig]:
    """Archs from a file: one per line (canonical key or JSON dict), or a CSV with an ``arch`` column.

    Blank lines and lines starting with ``#`` are skipped. Every arch is validated against ``space``;
    an error names the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise ArchError(f"arch file {p} does not exist")
    if is_parquet(p):
        return _from_table(p, space)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArchError(f"arch file {p} is not UTF-8 text (byte {exc.start}); give one arch per "
                        "line or a CSV with an arch column") from None
    except OSError as exc:
        raise ArchError(f"arch file {p} cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
    if first.split(",")[0].strip().lower() == "arch" or ",arch," in f",{first},":
        return _from_table(p, space)
    archs: list[ArchConfig] = []
    for i, ln in enumerate(lines, start=1):
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        try:
            archs.append(space.parse(s))
        except ArchError as exc:
            raise ArchError(f"{p}:{i}: {exc}") from None
    return archs


def _from_table(p: Path, space: SearchSpace) -> list[ArchConfig]:
    frame = read_table(p, required=["arch"], what="arch file", error=ArchError)
    archs: list[ArchConfig] = []
    for arch, line in zip(frame["arch"], frame[LINE], strict=True):
        try:
            archs.append(space.parse(arch))
        except ArchError as exc:
            raise ArchError(f"{p}:{line}: {exc}") from None
    return archs
