"""Interoperability with once-for-all's latency tables (one YAML file per input resolution).

once-for-all format: ``DIR/{r}_lookup_table.yaml``, a mapping ``layer key -> {count, mean, std}``
in milliseconds (keys as ``LayerSpec.key``). A key can appear in several files: stage spatial sizes
and the final layers repeat across resolutions.

Import (``import_ofa``) gives one latkit table row per distinct key:

- copies of one measurement (the same ``{count, mean, std}`` in several files) count once;
- different measurements of one key are pooled: count-weighted mean, pooled std (within plus
  between variance), counts summed;
- ``median_ms`` = ``mean_ms`` = that mean, since a mean is all the files hold; ``p10_ms`` and
  ``p90_ms`` are unknown and set to the mean too. ``meta.json`` says so: ``"source": "once-for-all
  yaml", "statistic": "mean"``.

Every key must parse (``LayerSpec.parse``) and belong to the space; foreign keys raise ``ArchError``
naming the space they do belong to, or are dropped with ``skip_foreign=True``.

Export (``export_ofa``) is the inverse: a key goes into the file of every resolution whose subnets
use it (``space.unique_layers([r])``), with ``mean`` = the table's ``mean_ms`` (or ``median_ms``),
``std`` = ``std_ms`` and ``count`` = ``runs``. Export then import gives back the same table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latkit.errors import ArchError, LookupMiss, StoreError
from latkit.fileio import make_dir, sha256_file, write_text
from latkit.profiler.lut import LookupTable, LutEntry
from latkit.supernet.space import LayerSpec, get_space, list_spaces

YAML_NAME = "{r}_lookup_table.yaml"
_YAML_RE = re.compile(r"^(\d+)_lookup_table\.ya?ml$")


@dataclass
class OfaImport:
    """An imported table plus what the import had to decide."""

    table: LookupTable
    files: dict[int, Path]
    pooled_keys: int = 0
    foreign_keys: list[str] = field(default_factory=list)


def find_ofa_files(directory: str | Path) -> dict[int, Path]:
    """``{resolution: path}`` of the ``{r}_lookup_table.yaml`` files in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise StoreError(f"{d} is not a directory; expected a folder of once-for-all "
                         "{r}_lookup_table.yaml files")
    files = {int(m.group(1)): p for p in sorted(d.iterdir())
             if (m := _YAML_RE.match(p.name)) and p.is_file()}
    if not files:
        raise StoreError(f"{d} has no once-for-all tables (expected files named "
                         "'{resolution}_lookup_table.yaml', e.g. 224_lookup_table.yaml)")
    return dict(sorted(files.items()))


def _read_yaml(path: Path) -> dict[str, tuple[int, float, float]]:
    import yaml  # noqa: PLC0415 -- yaml: keeps lat --help fast

    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); the table is "
                         "corrupt") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a mapping of layer keys to {{count, mean, std}}, "
                         f"found {type(data).__name__}")
    out = {}
    for key, v in data.items():
        if not isinstance(v, dict) or "mean" not in v:
            raise StoreError(f"{path}: entry {key!r} must be a mapping with count, mean, std; "
                             f"found {v!r:.80}")
        try:
            count = int(v.get("count", 1))
            mean = float(v["mean"])
            std = float(v.get("std", 0.0))
        except (TypeError, ValueError):
            raise StoreError(f"{path}: entry {key!r} has non-numeric values {v!r:.80}") from None
        if not (math.isfinite(mean) and mean > 0 and math.isfinite(std) and std >= 0):
            raise StoreError(f"{path}: entry {key!r} needs a positive mean and a non-negative "
                             f"std (ms), found mean={v['mean']!r} std={v.get('std')!r}")
        out[str(key)] = (count, mean, std)
    return out


def _pool(values: list[tuple[int, float, float]]) -> tuple[int, float, float]:
    """Count-weighted pooling of (count, mean, std); exact copies count once."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    n = sum(max(c, 1) for c, _, _ in distinct)
    mean = sum(max(c, 1) * m for c, m, _ in distinct) / n
    var = sum(max(c, 1) * (s * s + (m - mean) ** 2) for c, m, s in distinct) / n
    return sum(c for c, _, _ in distinct), mean, math.sqrt(var)


def _owning_space(keys: Iterable[str]) -> str | None:
    keys = set(keys)
    for name in list_spaces():
        if keys <= {s.key for s in get_space(name).unique_layers()}:
            return name
    return None


def import_ofa(directory: str | Path, space: Any, *, device: str | None = None,
               skip_foreign: bool = False, allow_missing: bool = False,
               command: str = "") -> OfaImport:
    """Read once-for-all YAML tables into a ``LookupTable`` for ``space`` (see module docstring).

    Each file must hold every layer the space's subnets use at its resolution: a truncated file
    is a ``StoreError`` naming what it lacks, unless ``allow_missing``.
    """
    sp = get_space(space) if isinstance(space, str) else space
    files = find_ofa_files(directory)
    bad_res = [r for r in files if r not in sp.resolutions]
    if bad_res:
        raise ArchError(f"{Path(directory)} has tables for resolution(s) {bad_res}, not in "
                        f"{sp.name} ({sp.resolutions[0]}..{sp.resolutions[-1]}); is --space right?")
    known = {s.key for s in sp.unique_layers()}
    seen: dict[str, list[tuple[int, float, float]]] = {}
    foreign: list[str] = []
    tables = {r: _read_yaml(path) for r, path in files.items()}
    for table in tables.values():
        for key, val in table.items():
            LayerSpec.parse(key)  # raises ArchError naming a malformed key
            if key not in known:
                if key not in foreign:
                    foreign.append(key)
                continue
            seen.setdefault(key, []).append(val)
    if foreign and not skip_foreign:
        owner = _owning_space(foreign)
        hint = f"they belong to {owner}: use --space {owner}" if owner else \
            "pass --skip-foreign to drop them"
        raise ArchError(f"{len(foreign)} key(s) in {directory} are not layers of {sp.name}, e.g. "
                        f"{foreign[0]}; {hint}")
    for r, table in tables.items():
        need = {s.key for s in sp.unique_layers([r])}
        missing = sorted(need - set(table))
        if missing and not allow_missing:
            raise StoreError(f"{files[r]} lacks {len(missing)} of the {len(need)} layers {sp.name} "
                             f"uses at resolution {r} (e.g. {missing[0]}): a truncated file or "
                             "another space; fetch it again, or pass --allow-missing to import what "
                             "it has")
    entries, pooled = [], 0
    for key in sorted(seen):
        vals = seen[key]
        if len(set(vals)) > 1:
            pooled += 1
        count, mean, std = _pool(vals)
        entries.append(LutEntry(key, LayerSpec.parse(key).kind, mean, mean, mean, mean, std,
                                std / mean, count))
    d = Path(directory)
    meta = {
        "space": sp.name, "resolutions": sorted(files), "device": device or d.name,
        "env": {"source_dir": str(d.resolve()),
                "files": {p.name: sha256_file(p) for p in files.values()}},
        "command": command, "source": "once-for-all yaml", "statistic": "mean",
        "note": "median_ms, p10_ms and p90_ms hold the mean: the YAML has only count, mean, std; "
                "a key in several files is pooled (count-weighted), exact copies counted once",
        "pooled_keys": pooled, "foreign_keys_dropped": len(foreign),
    }
    return OfaImport(LookupTable.from_entries(entries, meta), files, pooled, foreign)


def export_ofa(table: LookupTable, out_dir: str | Path, *, space: Any = None,
               resolutions: Iterable[int] | None = None, statistic: str = "mean",
               allow_missing: bool = False) -> dict[int, Path]:
    """Write ``out_dir/{r}_lookup_table.yaml`` for each resolution; returns ``{r: path}``.

    ``statistic`` is ``"mean"`` (once-for-all's convention) or ``"median"``. A layer a resolution
    needs but the table lacks raises ``LookupMiss`` unless ``allow_missing``.
    """
    import yaml  # noqa: PLC0415 -- yaml: keeps lat --help fast

    if statistic not in ("mean", "median"):
        raise StoreError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    sp_name = space if space is not None else table.space
    if sp_name is None:
        raise StoreError("the table's meta.json names no space; pass --space")
    sp = get_space(sp_name) if isinstance(sp_name, str) else sp_name
    rs = list(resolutions) if resolutions is not None else table.resolutions or list(sp.resolutions)
    out = make_dir(out_dir)
    written = {}
    for r in rs:
        keys = [s.key for s in sp.unique_layers([r])]
        missing = table.missing(keys)
        if missing and not allow_missing:
            raise LookupMiss(f"resolution {r} needs {len(missing)} layer(s) the table lacks, e.g. "
                             f"{missing[0]}; fill them with: {table.fill_command(missing[0])} "
                             "(or pass --allow-missing)")
        data = {}
        for k in sorted(set(keys) - set(missing)):
            e = table.entry(k)
            data[k] = {"count": int(e.runs),
                       "mean": float(e.mean_ms if statistic == "mean" else e.median_ms),
                       "std": float(e.std_ms)}
        path = out / YAML_NAME.format(r=r)
        write_text(path, yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
        written[r] = path
    return written
