"""Subnets as integer gene arrays: batched sampling, mutation and crossover for evolution.

A batch of n subnets of a space with S stages of at most B blocks is a ``Genes``: ``r`` (n,) the
resolution, ``d`` (n, S) the depth per stage, ``k`` and ``e`` (n, S, B) the kernel size and expand
ratio per block slot, all as the values themselves (224, 3, 7, 6...). Slots at or beyond a stage's
depth are inactive: their values mean nothing, are never read, and are zeroed in ``keys``.

``GeneSpace`` draws from exactly the distributions of ``SearchSpace.sample``, ``.mutate`` and
``.crossover`` (latkit.supernet.space), whole batches per numpy call:

- sample: resolution uniform among the given ones; per stage the depth (or, for a coupled space,
  the (depth, expand) pair) uniform, each block's kernel and expand uniform;
- mutate (probability p per gene): the resolution resampled among the given ones; per stage the
  depth (coupled: the pair) resampled, blocks that become active drawn fresh; every block's kernel
  and expand each resampled (coupled spaces: kernels only of new blocks, as ``mutate`` does);
- crossover: the resolution from either parent, each stage (depth, kernels, expands) from either.

Every row is a valid subnet of the space by construction (values come from the space's own choice
lists), so ``decode`` builds ``ArchConfig``s without re-validating; ``keys`` gives one canonical
byte string per row (equal for two rows exactly when their archs are equal), the key of the
search's prediction caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from latkit.supernet.space import ArchConfig, SearchSpace

_new, _set = object.__new__, object.__setattr__


def _arch(r: int, ks: tuple[tuple[int, ...], ...], es: tuple[tuple[int, ...], ...]) -> ArchConfig:
    """An ``ArchConfig`` without ``__post_init__``'s shape checks, which decoded genes pass by
    construction (as many kernels as expands per stage, every depth at least 1): a third of the
    cost of building one, and search builds tens of thousands."""
    a = _new(ArchConfig)
    _set(a, "r", r)
    _set(a, "ks", ks)
    _set(a, "e", es)
    return a


@dataclass
class Genes:
    """n subnets: ``r`` (n,), ``d`` (n, S), ``k`` and ``e`` (n, S, B) integer arrays."""

    r: np.ndarray
    d: np.ndarray
    k: np.ndarray
    e: np.ndarray

    def __len__(self) -> int:
        return int(self.r.shape[0])

    def take(self, idx: np.ndarray | Sequence[int]) -> Genes:
        i = np.asarray(idx, dtype=np.intp)
        return Genes(self.r[i], self.d[i], self.k[i], self.e[i])

    @staticmethod
    def concat(parts: Sequence[Genes]) -> Genes:
        return Genes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("r", "d", "k", "e")))


class GeneSpace:
    """The gene view of one ``SearchSpace``: sample, mutate, cross over, key, encode, decode."""

    def __init__(self, space: SearchSpace) -> None:
        c = space.conf
        self.space = space
        self.S, self.B = space.n_stages, space.max_depth
        width = max(len(ks) for ks in c.ks_choices)
        # per stage, its kernel choices padded (only the first klen[s] are ever drawn)
        self._ktab = np.array([list(ks) + [ks[0]] * (width - len(ks)) for ks in c.ks_choices])
        self._klen = np.array([len(ks) for ks in c.ks_choices], dtype=float)
        self._evals = np.array(c.e_choices)
        self._dvals = np.array(c.d_choices)
        self._pairs = np.array(c.coupled) if c.coupled is not None else None
        self._slot = np.arange(self.B)
        self._stage = np.arange(self.S)[None, :, None]
        # stage codes for decode: digits in base ``_base`` (above every depth, kernel and expand)
        self._base = int(max(max(max(ks) for ks in c.ks_choices), max(c.e_choices),
                             max(c.d_choices))) + 1
        self._pow = self._base ** np.arange(self.B, dtype=np.int64)
        self._stages: list[dict[int, tuple[tuple[int, ...], tuple[int, ...]]]] = [
            {} for _ in range(self.S)]

    def empty(self) -> Genes:
        z = np.zeros((0, self.S), dtype=np.int64)
        z3 = np.zeros((0, self.S, self.B), dtype=np.int64)
        return Genes(np.zeros(0, dtype=np.int64), z, z3, z3.copy())

    # ---- drawing ----
    def _kernels(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = (rng.random((n, self.S, self.B)) * self._klen[None, :, None]).astype(np.intp)
        return self._ktab[self._stage, idx]

    def _expands(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._evals[rng.integers(len(self._evals), size=(n, self.S, self.B))]

    def sample(self, rng: np.random.Generator, n: int, resolutions: Sequence[int]) -> Genes:
        """n uniformly random subnets at ``resolutions`` (``SearchSpace.sample``'s distribution)."""
        rs = np.asarray(resolutions)
        r = rs[rng.integers(len(rs), size=n)]
        if self._pairs is not None:
            p = self._pairs[rng.integers(len(self._pairs), size=(n, self.S))]
            d = p[..., 0]
            e = np.broadcast_to(p[..., 1][..., None], (n, self.S, self.B)).copy()
            return Genes(r, d, self._kernels(rng, n), e)
        d = self._dvals[rng.integers(len(self._dvals), size=(n, self.S))]
        return Genes(r, d, self._kernels(rng, n), self._expands(rng, n))

    def mutate(self, rng: np.random.Generator, parents: Genes, prob: float,
               resolutions: Sequence[int]) -> Genes:
        """One mutation of each row (``SearchSpace.mutate``'s distribution)."""
        n = len(parents)
        rs = np.asarray(resolutions)
        r = np.where(rng.random(n) < prob, rs[rng.integers(len(rs), size=n)], parents.r)
        fresh = self._slot[None, None, :] >= parents.d[:, :, None]  # inactive in the parent
        dm = rng.random((n, self.S)) < prob
        k = np.where(fresh, self._kernels(rng, n), parents.k)
        if self._pairs is not None:
            p = self._pairs[rng.integers(len(self._pairs), size=(n, self.S))]
            d = np.where(dm, p[..., 0], parents.d)
            e_stage = np.where(dm, p[..., 1], parents.e[:, :, 0])
            e = np.broadcast_to(e_stage[..., None], (n, self.S, self.B)).copy()
            return Genes(r, d, k, e)
        d = np.where(dm, self._dvals[rng.integers(len(self._dvals), size=(n, self.S))], parents.d)
        k = np.where(rng.random((n, self.S, self.B)) < prob, self._kernels(rng, n), k)
        e = np.where(fresh | (rng.random((n, self.S, self.B)) < prob), self._expands(rng, n),
                     parents.e)
        return Genes(r, d, k, e)

    def crossover(self, rng: np.random.Generator, a: Genes, b: Genes) -> Genes:
        """Row i of ``a`` crossed with row i of ``b`` (``SearchSpace.crossover``'s distribution)."""
        n = len(a)
        pick = rng.random((n, self.S)) < 0.5
        r = np.where(rng.random(n) < 0.5, a.r, b.r)
        p3 = pick[..., None]
        return Genes(r, np.where(pick, a.d, b.d), np.where(p3, a.k, b.k), np.where(p3, a.e, b.e))

    # ---- keys and conversion ----
    def keys(self, g: Genes) -> list[bytes]:
        """One canonical byte string per row: resolution, depths, active kernels and expands."""
        n = len(g)
        active = self._slot[None, None, :] < g.d[:, :, None]
        m = np.concatenate([g.r[:, None], g.d, (g.k * active).reshape(n, self.S * self.B),
                            (g.e * active).reshape(n, self.S * self.B)], axis=1).astype(np.int16)
        buf, w = m.tobytes(), m.shape[1] * 2
        return [buf[i:i + w] for i in range(0, n * w, w)]

    def from_keys(self, keys: Sequence[bytes]) -> Genes:
        """The genes of ``keys`` (inverse of ``keys``; inactive slots come back as 0)."""
        n, S, SB = len(keys), self.S, self.S * self.B
        m = np.frombuffer(b"".join(keys), dtype=np.int16).reshape(n, 1 + S + 2 * SB).astype(np.int64)
        return Genes(m[:, 0], m[:, 1:1 + S], m[:, 1 + S:1 + S + SB].reshape(n, S, self.B),
                     m[:, 1 + S + SB:].reshape(n, S, self.B))

    def decode(self, g: Genes, rows: Sequence[int] | None = None) -> list[ArchConfig]:
        """``ArchConfig``s of ``rows`` (all rows if None); valid by construction.

        Each stage (depth, active kernels and expands) is one integer code, computed for all rows
        at once; its pair of tuples is built once per distinct stage and then looked up.
        """
        sel = g if rows is None else g.take(rows)
        active = self._slot[None, None, :] < sel.d[:, :, None]
        codes = (sel.d + self._base * ((sel.k * active) @ self._pow)
                 + self._base ** (self.B + 1) * ((sel.e * active) @ self._pow))
        stages = self._stages
        out = []
        for r, cs in zip(sel.r.tolist(), codes.tolist(), strict=True):
            ks, es = [], []
            for s, c in enumerate(cs):
                pair = stages[s].get(c)
                if pair is None:
                    pair = stages[s][c] = self._stage_tuples(c)
                ks.append(pair[0])
                es.append(pair[1])
            out.append(_arch(r, tuple(ks), tuple(es)))
        return out

    def _stage_tuples(self, code: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        base = self._base
        d = code % base
        kpart = code // base % base ** self.B
        epart = code // base ** (self.B + 1)
        return (tuple(kpart // base ** b % base for b in range(d)),
                tuple(epart // base ** b % base for b in range(d)))

    def encode(self, archs: Sequence[ArchConfig]) -> Genes:
        """Genes of (valid) archs; inactive slots take the stage's first choices."""
        n = len(archs)
        r = np.array([a.r for a in archs], dtype=np.int64).reshape(n)
        d = np.zeros((n, self.S), dtype=np.int64)
        k = np.broadcast_to(self._ktab[None, :, :1], (n, self.S, self.B)).copy()
        e = np.full((n, self.S, self.B), self._evals[0])
        for i, a in enumerate(archs):
            for s, (ks, es) in enumerate(zip(a.ks, a.e, strict=True)):
                d[i, s] = len(ks)
                k[i, s, :len(ks)] = ks
                e[i, s, :len(es)] = es
        return Genes(r, d, k, e)


class KeyedArchs(Sequence[ArchConfig]):
    """Archs given by their keys, each decoded when first read: a search that scored tens of
    thousands of archs through gene-level sources builds ``ArchConfig``s only for those it
    returns (a frontier, a pick), not for all."""

    def __init__(self, genes: GeneSpace, keys: Sequence[bytes], known: dict[bytes, ArchConfig]) -> None:
        self._genes, self._keys, self._known = genes, list(keys), known

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, i: int) -> ArchConfig: ...
    @overload
    def __getitem__(self, i: slice) -> list[ArchConfig]: ...
    def __getitem__(self, i: int | slice) -> ArchConfig | list[ArchConfig]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        key = self._keys[i]
        a = self._known.get(key)
        if a is None:
            a = self._known[key] = self._genes.decode(self._genes.from_keys([key]))[0]
        return a
