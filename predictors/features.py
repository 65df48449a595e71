"""Features of an architecture, vectorised: archs in, a float matrix out (10,000 archs in ~0.1 s).

Columns come in named groups, so that each model takes the ones that suit it:

``struct``  resolution ``r``, ``r2`` = (r/224)^2, depth per stage ``d_s<S>``, and per block slot
            (stage S, block B): ``act_s<S>b<B>`` (1 if the block exists), kernel one-hot
            ``k<K>_s<S>b<B>`` and expand one-hot ``e<E>_s<S>b<B>`` (zeros for inactive blocks; a
            one-hot is left out where the space has a single choice)
``scaled``  the slot columns of ``struct`` multiplied by ``r2``: a linear model over them is an
            additive per-layer cost that grows with the input area
``cost``    ``macs_M``, ``params_M``, ``log_macs``, and ``macs_M_s<S>`` per stage
``lut``     with a lookup table only: ``lut_ms`` (the table sum), ``log_lut``, ``lut_ms_fixed``
            (stem, first block, final layers) and ``lut_ms_s<S>`` per stage

MACs, parameters and table latencies are looked up in per-(resolution, slot, kernel, expand) arrays
built once per featurizer, so no ``LayerSpec`` is built per arch. A table that lacks a layer an arch
needs raises ``LookupMiss`` (naming the key and the ``lat-profile`` command that fills it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from latkit.errors import ArchError, LookupMiss, PredictorError
from latkit.supernet.space import ArchConfig, SearchSpace, get_space

GROUPS = ("struct", "scaled", "cost", "lut")


def as_archs(space: SearchSpace, X: Iterable[Any]) -> list[ArchConfig]:
    """Validated ``ArchConfig``s from configs, canonical keys or once-for-all dicts.

    ``X`` may also be a pandas Series of those, or a DataFrame with an ``arch`` column.
    """
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a DataFrame: its arch column
        if "arch" not in X.columns:
            raise PredictorError(f"a DataFrame of archs needs an 'arch' column; it has "
                                 f"{', '.join(map(str, X.columns)) or 'no columns'}")
        X = X["arch"]
    if hasattr(X, "tolist") and not isinstance(X, (str, bytes)):
        X = X.tolist()
    out = []
    for x in X:
        out.append(space.validate(x) if isinstance(x, ArchConfig) else space.parse(x))
    return out


class ArchFeaturizer:
    """Turns archs of ``space`` into feature rows; ``table`` (a ``LookupTable``) adds ``lut`` columns."""

    def __init__(self, space: SearchSpace | str, table: Any = None) -> None:
        self.space = get_space(space) if isinstance(space, str) else space
        self.table = table
        c = self.space.conf
        self.n_stages, self.max_depth = self.space.n_stages, self.space.max_depth
        self.kvals = sorted({k for ks in c.ks_choices for k in ks})
        self.evals = list(c.e_choices)
        self.rvals = list(c.resolutions)
        self._r_index = {r: i for i, r in enumerate(self.rvals)}
        self._k_index = {k: i for i, k in enumerate(self.kvals)}
        self._e_index = {e: i for i, e in enumerate(self.evals)}
        self._stage_code: dict[tuple, tuple[list[int], list[int]]] = {}
        self._build_tables()
        self.names, self.groups = self._column_names()

    # ---- per-slot tables --------------------------------------------------------------------
    def _build_tables(self) -> None:
        sp, S, B = self.space, self.n_stages, self.max_depth
        R, K, E = len(self.rvals), len(self.kvals), len(self.evals)
        self.macs_blk = np.zeros((R, S, B, K, E))
        self.params_blk = np.zeros((S, B, K, E))
        self.lut_blk = np.full((R, S, B, K, E), np.nan)
        self.macs_fixed = np.zeros(R)
        self.lut_fixed = np.full(R, np.nan)
        self.keys_blk: dict[tuple[int, int, int, int, int], str] = {}
        self.keys_fixed: dict[int, list[str]] = {}
        lut = self._lut_lookup
        for ri, r in enumerate(self.rvals):
            fixed = [sp.stem_layer(r), sp.first_block_layer(r)]
            hws = sp.stage_hw(r)
            fixed += sp.final_layers(hws[-1])
            self.macs_fixed[ri] = sum(layer.macs for layer in fixed)
            self.keys_fixed[ri] = [layer.key for layer in fixed]
            if self.table is not None:
                vals = [lut(layer.key) for layer in fixed]
                self.lut_fixed[ri] = sum(vals) if all(v == v for v in vals) else np.nan
            self.params_fixed = float(sum(layer.params for layer in fixed))
            for s in range(S):
                for b in range(B):
                    for ki, k in enumerate(self.kvals):
                        for ei, e in enumerate(self.evals):
                            spec = sp.block_layer_at(r, s, b, k, e)
                            self.macs_blk[ri, s, b, ki, ei] = spec.macs
                            self.params_blk[s, b, ki, ei] = spec.params
                            self.keys_blk[(ri, s, b, ki, ei)] = spec.key
                            if self.table is not None:
                                self.lut_blk[ri, s, b, ki, ei] = lut(spec.key)

    def _lut_lookup(self, key: str) -> float:
        """The table's latency of ``key``, NaN if absent (raised only when an arch needs it)."""
        if key not in self.table:  # building a LookupMiss message is costly: test first
            return float("nan")
        return float(self.table.latency_ms(key))

    # ---- column names -----------------------------------------------------------------------
    def _slot_columns(self) -> list[tuple[str, int, int, str, int]]:
        """(name, stage, block, what, index) of the per-slot columns, what in act/k/e."""
        c = self.space.conf
        cols = []
        for s in range(self.n_stages):
            for b in range(self.max_depth):
                if not self.space._block_e_choices(b):
                    continue
                cols.append((f"act_s{s + 1}b{b + 1}", s, b, "act", 0))
                if len(c.ks_choices[s]) > 1:
                    for k in c.ks_choices[s]:
                        cols.append((f"k{k}_s{s + 1}b{b + 1}", s, b, "k", self._k_index[k]))
                if len(self.evals) > 1 and c.coupled is None:
                    for e in self.evals:
                        cols.append((f"e{e}_s{s + 1}b{b + 1}", s, b, "e", self._e_index[e]))
        return cols

    def _column_names(self) -> tuple[list[str], dict[str, list[int]]]:
        S = self.n_stages
        self._slots = self._slot_columns()
        groups: dict[str, list[str]] = {
            "struct": ["r", "r2", *[f"d_s{s + 1}" for s in range(S)], *[c[0] for c in self._slots]],
            "scaled": [f"{c[0]}*r2" for c in self._slots],
            "cost": ["macs_M", "params_M", "log_macs", *[f"macs_M_s{s + 1}" for s in range(S)]],
        }
        if self.table is not None:
            groups["lut"] = ["lut_ms", "log_lut", "lut_ms_fixed",
                             *[f"lut_ms_s{s + 1}" for s in range(S)]]
        names, idx = [], {}
        for g, cols in groups.items():
            idx[g] = list(range(len(names), len(names) + len(cols)))
            names += cols
        return names, idx

    def columns(self, groups: Sequence[str]) -> list[int]:
        """Indices of the columns of ``groups`` (groups this featurizer lacks are skipped)."""
        return [i for g in groups for i in self.groups.get(g, [])]

    # ---- encoding ---------------------------------------------------------------------------
    def _encode(self, archs: Sequence[ArchConfig]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resolution index (n,), kernel and expand indices (n, S, B) with -1 for inactive blocks."""
        B = self.max_depth
        r_idx = np.empty(len(archs), dtype=np.int64)
        kk: list[list[int]] = []
        ee: list[list[int]] = []
        codes = self._stage_code
        for i, a in enumerate(archs):
            try:
                r_idx[i] = self._r_index[a.r]
            except KeyError:
                raise ArchError(f"resolution r={a.r} is not in {self.space.name}") from None
            krow: list[int] = []
            erow: list[int] = []
            for ks, es in zip(a.ks, a.e, strict=True):
                code = codes.get((ks, es))
                if code is None:
                    code = ([self._k_index[k] for k in ks] + [-1] * (B - len(ks)),
                            [self._e_index[e] for e in es] + [-1] * (B - len(es)))
                    codes[(ks, es)] = code
                krow += code[0]
                erow += code[1]
            kk.append(krow)
            ee.append(erow)
        shape = (len(archs), self.n_stages, B)
        return (r_idx, np.asarray(kk, dtype=np.int64).reshape(shape),
                np.asarray(ee, dtype=np.int64).reshape(shape))

    def transform(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        """The (n, len(names)) float matrix of already validated archs."""
        n, S, B = len(archs), self.n_stages, self.max_depth
        if n == 0:
            return np.zeros((0, len(self.names)))
        r_idx, K, E = self._encode(archs)
        active = K >= 0
        Kc, Ec = np.where(active, K, 0), np.where(active, E, 0)
        r = np.asarray(self.rvals, dtype=float)[r_idx]
        r2 = (r / 224.0) ** 2
        s_ix = np.arange(S)[None, :, None]
        b_ix = np.arange(B)[None, None, :]
        macs_slot = self.macs_blk[r_idx[:, None, None], s_ix, b_ix, Kc, Ec] * active
        params_slot = self.params_blk[s_ix, b_ix, Kc, Ec] * active
        macs_stage = macs_slot.sum(axis=2)
        macs = self.macs_fixed[r_idx] + macs_stage.sum(axis=1)
        params = self.params_fixed + params_slot.sum(axis=(1, 2))
        slot = np.empty((n, len(self._slots)))
        for j, (_, s, b, what, i) in enumerate(self._slots):
            if what == "act":
                slot[:, j] = active[:, s, b]
            elif what == "k":
                slot[:, j] = K[:, s, b] == i
            else:
                slot[:, j] = E[:, s, b] == i
        parts = [r[:, None], r2[:, None], active.sum(axis=2), slot, slot * r2[:, None],
                 (macs / 1e6)[:, None], (params / 1e6)[:, None], np.log(macs)[:, None],
                 macs_stage / 1e6]
        if self.table is not None:
            total, fixed, lut_stage = self._lut_parts(archs, r_idx, Kc, Ec, active)
            parts += [total[:, None], np.log(total)[:, None], fixed[:, None], lut_stage]
        return np.concatenate([p.astype(float, copy=False) for p in parts], axis=1)

    def _lut_parts(self, archs: Sequence[ArchConfig], r_idx: np.ndarray, Kc: np.ndarray,
                   Ec: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Table sum, fixed layers and per-stage sums of encoded archs (``LookupMiss`` on a gap)."""
        s_ix = np.arange(self.n_stages)[None, :, None]
        b_ix = np.arange(self.max_depth)[None, None, :]
        lut_slot = np.where(active, self.lut_blk[r_idx[:, None, None], s_ix, b_ix, Kc, Ec], 0.0)
        fixed = self.lut_fixed[r_idx]
        lut_stage = lut_slot.sum(axis=2)
        total = fixed + lut_stage.sum(axis=1)
        if not np.all(np.isfinite(total)):
            self._raise_miss(archs[int(np.flatnonzero(~np.isfinite(total))[0])])
        return total, fixed, lut_stage

    def _raise_miss(self, arch: ArchConfig) -> None:
        for spec in self.space.layers(arch):
            self.table.latency_ms(spec.key)  # raises LookupMiss with the fill command
        raise LookupMiss(f"lookup table gives a non-finite latency for {arch}")  # pragma: no cover

    # ---- conveniences -----------------------------------------------------------------------
    def macs(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        return self.transform(archs)[:, self.names.index("macs_M")] * 1e6

    def lut_sum_ms(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        """The lookup-table sum of each arch (needs a table)."""
        if self.table is None:
            raise LookupMiss("this featurizer has no lookup table; pass one (lat fit --lut DIR)")
        if not archs:
            return np.zeros(0)
        # the lut columns alone, computed as transform computes them (same values to the last digit)
        r_idx, K, E = self._encode(archs)
        active = K >= 0
        return self._lut_parts(archs, r_idx, np.where(active, K, 0), np.where(active, E, 0), active)[0]


def log_safe(values: np.ndarray) -> np.ndarray:
    """log of positive values; a clear error otherwise (latency targets must be positive)."""
    v = np.asarray(values, dtype=float)
    if v.size and (not np.all(np.isfinite(v)) or v.min() <= 0):
        raise PredictorError(f"latencies must be positive and finite, found min {np.nanmin(v)!r}")
    return np.log(v)

