"""Per-layer latency lookup tables: the ``lut.csv`` + ``meta.json`` directory format.

A lookup table maps once-for-all layer keys (``LayerSpec.key``) to measured latency statistics on
one device. On disk it is a directory::

    DIR/lut.csv    header key,kind,median_ms,p10_ms,p90_ms,mean_ms,std_ms,cv,runs
                   (one row per distinct layer key, sorted by key)
    DIR/meta.json  {"format": "latkit-lut", "version": 1, "space", "resolutions", "device",
                    "env", "versions", "command", "created", "entries", ...}

``median_ms`` is the figure to use. A network's predicted latency is the sum of its layers' medians
(``predict_arch_sum``). A missing key raises ``LookupMiss`` naming the key and the ``lat-profile``
command that fills it: gaps are loud (STYLE 8). Tables are built from the measurement store
(``profiler/campaign.py``) or imported from once-for-all YAML (``profiler/ofa_tables.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latkit.errors import LatkitError, LookupMiss, StoreError
from latkit.fileio import make_dir, write_text
from latkit.provenance import now_iso, versions
from latkit.supernet.arch import ArchConfig
from latkit.supernet.space import get_space
from latkit.tables import LINE, read_table, write_table

LUT_FORMAT = "latkit-lut"
LUT_VERSION = 1
CSV_NAME = "lut.csv"
META_NAME = "meta.json"
COLUMNS = ("key", "kind", "median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv", "runs")
_FLOAT_COLUMNS = ("median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "cv")


@dataclass(frozen=True)
class LutEntry:
    """The latency statistics of one layer on one device (milliseconds; ``cv`` is std / mean)."""

    key: str
    kind: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    runs: int

    def row(self) -> list[str]:
        return [self.key, self.kind, *(_fmt(getattr(self, c)) for c in _FLOAT_COLUMNS),
                str(self.runs)]

    @classmethod
    def from_measurement(cls, key: str, kind: str, m: Any) -> LutEntry:
        """From a ``latkit.devices.base.Measurement`` (or anything with the same attributes)."""
        return cls(key, kind, float(m.median_ms), float(m.p10_ms), float(m.p90_ms),
                   float(m.mean_ms), float(m.std_ms), float(m.cv), int(m.runs))


def _fmt(v: float) -> str:
    return repr(float(v))


def _kind_of(key: str) -> str:
    return key.split("-", 1)[0]


def _parse_row(row: Mapping[str, str], line: int, path: Path) -> LutEntry:
    try:
        values = {c: float(row[c]) for c in _FLOAT_COLUMNS}
        runs = int(row["runs"]) if row.get("runs") not in (None, "") else 0
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{path} line {line}: bad number ({exc}); the table is corrupt, rebuild "
                         "it with lat-profile or re-import it") from None
    key = (row.get("key") or "").strip()
    if not key:
        raise StoreError(f"{path} line {line}: empty key; the table is corrupt")
    if not all(math.isfinite(v) and v >= 0 for v in values.values()) or values["median_ms"] <= 0:
        raise StoreError(f"{path} line {line}: latency of {key!r} must be a positive finite number, "
                         f"found median_ms={row.get('median_ms')!r}; the table is corrupt")
    return LutEntry(key, (row.get("kind") or _kind_of(key)).strip(), runs=runs, **values)


@dataclass
class _SumGrid:
    """One resolution of a table laid out for summing: what ``LookupTable.sums_ms`` reads.

    ``head`` is the stem plus the first block (added as ``predict_arch_sum`` adds them);
    ``blocks[stage][block][kernel][expand]`` is that block's median (plain nested lists: indexing
    them is the cheapest lookup Python has, and ``sums_ms`` validates each arch first, so every
    index is one the space allows); ``tail`` holds the final layers in order. A layer the table
    lacks is None, so that the arch falls back to the checked path.
    """

    head: float | None
    blocks: list[list[list[list[float | None]]]]
    tail: list[float | None]

    @classmethod
    def build(cls, table: LookupTable, sp: Any, r: int) -> _SumGrid:
        def value(spec: Any) -> float | None:
            e = table.entries.get(spec.key)
            return None if e is None else e.median_ms

        stem, first = value(sp.stem_layer(r)), value(sp.first_block_layer(r))
        head = None if stem is None or first is None else 0 + stem + first
        c = sp.conf
        n_k, n_e = max(max(ks) for ks in c.ks_choices) + 1, max(c.e_choices) + 1
        blocks = [[[[None] * n_e for _ in range(n_k)] for _ in range(sp.max_depth)]
                  for _ in range(sp.n_stages)]
        for s in range(sp.n_stages):
            for b in range(sp.max_depth):
                for k in c.ks_choices[s]:
                    for e in c.e_choices:
                        blocks[s][b][k][e] = value(sp.block_layer_at(r, s, b, k, e))
        return cls(head, blocks, [value(spec) for spec in sp.final_layers(sp.stage_hw(r)[-1])])

    def total(self, arch: ArchConfig) -> float | None:
        """The sum of a valid arch in network order, or None if the grid lacks one of its layers."""
        t = self.head
        if t is None:
            return None
        for stage, ks, es in zip(self.blocks, arch.ks, arch.e):
            for block, k, e in zip(stage, ks, es):
                v = block[k][e]
                if v is None:
                    return None
                t += v
        for v in self.tail:
            if v is None:
                return None
            t += v
        return t


@dataclass
class LookupTable:
    """Layer key -> ``LutEntry`` on one device, plus the table's provenance (``meta``).

    ``meta`` holds at least space, resolutions, device, env, versions, command, created (written by
    ``save``; ``entries``, ``format`` and ``version`` are filled in there).
    """

    entries: dict[str, LutEntry] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: space name -> resolution -> ``_SumGrid`` (built by ``sums_ms``; entries are not changed after)
    _grids: dict[str, dict[int, _SumGrid]] = field(default_factory=dict, repr=False, compare=False)
    #: space name -> the grids of every resolution as numpy arrays (built by ``sums_ms_arrays``)
    _grid_arrays: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- reading ----
    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return str(key) in self.entries

    def __iter__(self) -> Iterator[LutEntry]:
        return iter(self.entries.values())

    def keys(self) -> list[str]:
        return list(self.entries)

    @property
    def space(self) -> str | None:
        return self.meta.get("space")

    @property
    def device(self) -> str | None:
        return self.meta.get("device")

    @property
    def precision(self) -> str:
        """fp32, fp16 or int8: what the layers were measured in (fp32 for tables made before)."""
        return str(self.meta.get("precision") or (self.meta.get("settings") or {}).get("precision")
                   or "fp32")

    @property
    def resolutions(self) -> list[int]:
        return [int(r) for r in self.meta.get("resolutions") or []]

    def fill_command(self, key: str | None = None) -> str:
        """The ``lat-profile`` command that measures the missing layer(s)."""
        dev = self.device or "DEVICE"
        space = self.space or "SPACE"
        rs = self.resolutions
        if key is not None:
            r = _resolution_hint(key, self.space)
            if r is not None and r not in rs:
                rs = sorted({*rs, r})
        res = ",".join(str(r) for r in rs) if rs else "RESOLUTIONS"
        out = self.meta.get("dir") or "DIR"
        return f"lat-profile --device {dev} --space {space} --resolutions {res} --out {out}"

    def entry(self, key: str | Any) -> LutEntry:
        k = key if isinstance(key, str) else key.key
        e = self.entries.get(k)
        if e is None:
            raise LookupMiss(
                f"layer {k} is not in the lookup table ({len(self.entries)} entries, device "
                f"{self.device}, space {self.space}, resolutions {_res_str(self.resolutions)}); "
                f"measure it with: {self.fill_command(k)}"
            )
        return e

    def latency_ms(self, key: str | Any) -> float:
        """Median latency of a layer (key string or ``LayerSpec``); ``LookupMiss`` if absent."""
        return self.entry(key).median_ms

    def predict_arch_sum(self, space: Any, arch: Any) -> float:
        """Predicted latency of a subnet: the sum of its layers' medians (ms).

        ``space`` is a ``SearchSpace`` or its name; ``arch`` an ``ArchConfig`` or anything
        ``space.parse`` accepts. Raises ``LookupMiss`` on the first missing layer.
        """
        sp = get_space(space) if isinstance(space, str) else space
        total = 0.0
        for spec in sp.layers(sp.parse(arch)):  # added in order, as sums_ms adds (not fsum-like)
            total += self.latency_ms(spec.key)
        return total

    def sums_ms(self, space: Any, archs: Iterable[ArchConfig]) -> list[float]:
        """``predict_arch_sum`` of many archs at once, equal to it to the last digit.

        Each block's latency depends only on (resolution, stage, block, kernel, expand), so the
        table is laid out once per resolution as one value per such tuple (``_SumGrid``); an arch
        is then a couple of dozen dictionary lookups, added in network order as
        ``predict_arch_sum`` adds them. An arch the grid cannot answer (a missing layer, an invalid
        arch) takes ``predict_arch_sum`` itself, which raises its usual error.
        """
        sp = get_space(space) if isinstance(space, str) else space
        grids = self._grids.setdefault(sp.name, {})
        out = []
        for a in archs:
            sp.validate(a)
            g = grids.get(a.r)
            if g is None:
                g = grids[a.r] = _SumGrid.build(self, sp, a.r)
            v = g.total(a)
            out.append(self.predict_arch_sum(sp, a) if v is None else v)
        return out

    def sums_ms_arrays(self, space: Any, r: Any, d: Any, k: Any, e: Any) -> Any:
        """``sums_ms`` of archs given as integer arrays, one numpy expression per layer slot.

        ``r`` (n,) resolutions, ``d`` (n, S) depths, ``k`` and ``e`` (n, S, B) kernel and expand
        per block slot (slots at or beyond a stage's depth are ignored), all valid values of
        ``space`` (the caller guarantees it: ``latkit.search.genes`` builds them so). The table is
        the same per-resolution grid as ``sums_ms``'s, as numpy arrays; each slot's value is added
        to all rows at once, in network order, an inactive slot adding 0.0 (which changes no
        float), so every row equals ``sums_ms`` and ``predict_arch_sum`` to the last digit. A row
        whose layer the table lacks is NaN (``sums_ms`` of that arch raises the ``LookupMiss``).
        """
        import numpy as np  # noqa: PLC0415 -- numpy: the table module itself stays light to import

        sp = get_space(space) if isinstance(space, str) else space
        head, blocks, tail = self._arrays(sp)
        ri = np.searchsorted(np.asarray(sp.resolutions), r)
        n, S, B = k.shape
        v = blocks[ri[:, None, None], np.arange(S)[None, :, None], np.arange(B)[None, None, :], k, e]
        v = np.where(np.arange(B)[None, None, :] < d[:, :, None], v, 0.0).reshape(n, S * B)
        t = head[ri]
        for j in range(S * B):  # one slot at a time, in network order (not a pairwise sum)
            t = t + v[:, j]
        for j in range(tail.shape[1]):
            t = t + tail[ri, j]
        return t

    def _arrays(self, sp: Any) -> Any:
        """(head (R,), blocks (R, S, B, K, E), tail (R, T)) over every resolution, NaN for gaps."""
        import numpy as np  # noqa: PLC0415 -- numpy: the table module itself stays light to import

        got = self._grid_arrays.get(sp.name)
        if got is None:
            grids = self._grids.setdefault(sp.name, {})
            for r in sp.resolutions:
                if r not in grids:
                    grids[r] = _SumGrid.build(self, sp, r)
            gs = [grids[r] for r in sp.resolutions]
            nan = float("nan")
            head = np.array([nan if g.head is None else g.head for g in gs])
            blocks = np.array([[[[[nan if v is None else v for v in row] for row in blk]
                                 for blk in stage] for stage in g.blocks] for g in gs], dtype=float)
            tail = np.array([[nan if v is None else v for v in g.tail] for g in gs], dtype=float)
            got = self._grid_arrays[sp.name] = (head, blocks, tail)
        return got

    def layer_latencies_ms(self, space: Any, arch: Any) -> list[tuple[str, float]]:
        """(key, median_ms) for each layer of ``arch``, in network order."""
        sp = get_space(space) if isinstance(space, str) else space
        return [(s.key, self.latency_ms(s.key)) for s in sp.layers(sp.parse(arch))]

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.entries]

    # ---- construction ----
    @classmethod
    def from_entries(cls, entries: Iterable[LutEntry], meta: Mapping[str, Any] | None = None
                     ) -> LookupTable:
        return cls({e.key: e for e in entries}, dict(meta or {}))

    # ---- persistence ----
    @classmethod
    def load(cls, directory: str | Path) -> LookupTable:
        """Read ``DIR/lut.csv`` and ``DIR/meta.json``; ``StoreError`` (one line) if missing/corrupt."""
        d = Path(directory)
        csv_path, meta_path = d / CSV_NAME, d / META_NAME
        if not d.is_dir():
            raise StoreError(f"lookup table directory {d} does not exist; build one with "
                             "lat-profile --device D --space S --out DIR, or lat lut import-ofa")
        if not csv_path.is_file():
            raise StoreError(f"{d} has no {CSV_NAME}; it is not a lookup table directory "
                             "(expected lut.csv and meta.json written by lat-profile)")
        meta: dict[str, Any] = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise StoreError(f"{meta_path} is not valid JSON ({exc}); the table is corrupt, "
                                 "rebuild it with lat-profile") from None
            if not isinstance(meta, dict) or meta.get("format") != LUT_FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise StoreError(f"{meta_path} is not latkit lookup-table metadata (expected "
                                 f"format {LUT_FORMAT!r}, found {found!r})")
            if int(meta.get("version", 0)) > LUT_VERSION:
                raise StoreError(f"{meta_path} has table version {meta.get('version')}, newer than "
                                 f"this latkit reads ({LUT_VERSION}); upgrade latkit")
        entries: dict[str, LutEntry] = {}
        frame = read_table(csv_path, what="lookup table", error=StoreError,
                           required=[c for c in COLUMNS if c not in ("kind", "runs")],
                           hint="the table is corrupt; rebuild it with lat-profile")
        for row in frame.to_dict("records"):
            i = row[LINE]
            e = _parse_row(row, i, csv_path)
            if e.key in entries:
                raise StoreError(f"{csv_path} line {i}: duplicate key {e.key!r}; the "
                                 "table is corrupt")
            entries[e.key] = e
        meta.setdefault("dir", str(d))
        return cls(entries, meta)

    def save(self, directory: str | Path, **meta_updates: Any) -> Path:
        """Write ``DIR/lut.csv`` (sorted by key) and ``DIR/meta.json`` atomically; returns DIR."""
        d = Path(directory)
        make_dir(d)
        meta = {k: v for k, v in self.meta.items() if k != "dir"}
        meta.update(meta_updates)
        meta.setdefault("space", None)
        meta.setdefault("resolutions", [])
        meta.setdefault("device", None)
        meta.setdefault("env", {})
        if "versions" not in meta:
            meta["versions"] = versions()
        meta.setdefault("command", "")
        meta.setdefault("created", now_iso())
        meta.update({"format": LUT_FORMAT, "version": LUT_VERSION, "entries": len(self.entries)})
        write_table([dict(zip(COLUMNS, self.entries[k].row(), strict=True))
                     for k in sorted(self.entries)], d / CSV_NAME, columns=COLUMNS)
        write_text(d / META_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        self.meta = {**meta, "dir": str(d)}
        return d

    def frame(self) -> Any:
        """The table as a pandas DataFrame: one row per layer (``COLUMNS``, sorted by key), with the
        table's ``device`` and ``space`` as columns too."""
        import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

        rows = [{"key": e.key, "kind": e.kind, **{c: getattr(e, c) for c in _FLOAT_COLUMNS},
                 "runs": e.runs} for _, e in sorted(self.entries.items())]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["device"] = self.device or ""
        frame["space"] = self.space or ""
        return frame

    # ---- summary ----
    def summary(self, top: int = 10) -> dict[str, Any]:
        """Entries, resolutions, device, kinds and the slowest layers (for ``lat lut show``)."""
        vals = sorted(self.entries.values(), key=lambda e: -e.median_ms)
        cvs = sorted(e.cv for e in vals)
        kinds: dict[str, int] = {}
        for e in vals:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        return {
            "dir": self.meta.get("dir"),
            "entries": len(vals),
            "space": self.space,
            "device": self.device,
            "resolutions": self.resolutions,
            "source": self.meta.get("source", "latkit"),
            "statistic": self.meta.get("statistic", "median"),
            "partial": bool(self.meta.get("partial", False)),
            "created": self.meta.get("created"),
            "kinds": kinds,
            "median_cv": cvs[len(cvs) // 2] if cvs else None,
            "total_ms": sum(e.median_ms for e in vals),
            "slowest": [{"key": e.key, "median_ms": e.median_ms, "cv": e.cv} for e in vals[:top]],
        }


def _res_str(rs: list[int]) -> str:
    if not rs:
        return "unknown"
    return f"{rs[0]}..{rs[-1]} ({len(rs)})" if len(rs) > 3 else ",".join(map(str, rs))


def _resolution_hint(key: str, space: str | None) -> int | None:
    """A resolution of ``space`` whose subnets contain layer ``key`` (None if unknown)."""
    if key.startswith("Conv-input:"):
        try:
            return int(key.split(":")[1].split("x")[0])
        except (IndexError, ValueError):
            return None
    if not space:
        return None
    try:
        sp = get_space(space)
        for r in sp.resolutions:
            if any(s.key == key for s in sp.unique_layers([r])):
                return r
    except LatkitError:  # a hint only (an unknown space...): never mask the LookupMiss itself
        return None
    return None


def load_lut(directory: str | Path) -> LookupTable:
    """Shorthand for ``LookupTable.load``."""
    return LookupTable.load(directory)
