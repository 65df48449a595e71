"""Exhaustive search of an enumerable space: the accuracy-latency frontier per device, vectorised.

For CompOFA (243 subnets per resolution, 25 resolutions) every candidate is scored at once: one
batched accuracy call, one batched latency call per device, then numpy does the rest for all devices
together. The frontier of a device is the list of candidates, by ascending predicted latency, that
are strictly more accurate than everything faster (ties in latency keep the most accurate). The best
subnet under a budget is the last frontier point whose predicted latency is within the budget
(``searchsorted``), so any number of budgets costs one vector operation.

Results (``SearchResult``) are shared with the evolutionary search: ``candidates`` keeps everything
that was scored on a device (for the plot), ``frontiers`` the frontier, ``picks`` one ``Pick`` per
(device, budget), in the order devices and budgets were given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latkit.errors import BudgetError, LatkitError
from latkit.search.protocols import AccuracySource, LatencySource
from latkit.supernet.space import ArchConfig, SearchSpace, get_space

# ----------------------------------------------------------------------------------------------
# Data types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frontier:
    """One device's frontier: latency ascending, top-1 strictly ascending, same length arrays."""

    device: str
    archs: tuple[ArchConfig, ...]
    latency_ms: np.ndarray
    top1: np.ndarray

    def __len__(self) -> int:
        return len(self.archs)

    def best_under(self, budget_ms: float) -> int:
        """Position of the most accurate frontier point within ``budget_ms``; -1 if none is."""
        return int(np.searchsorted(self.latency_ms, budget_ms, side="right")) - 1

    def walk_down(self, pos: int) -> Iterator[int]:
        """``pos``, then each next point down the frontier (less accurate, predicted faster)."""
        return iter(range(pos, -1, -1))


@dataclass(frozen=True)
class Pick:
    """The subnet chosen for one (device, budget) by prediction (before any verification)."""

    device: str
    budget_ms: float
    arch: ArchConfig
    predicted_latency_ms: float
    top1: float
    frontier_pos: int


@dataclass(frozen=True)
class Infeasible:
    """A (device, budget) that no candidate meets, with the fastest the device can reach."""

    device: str
    budget_ms: float
    fastest_ms: float
    fastest_arch: ArchConfig | None

    def message(self, space: str, scope: str = "") -> str:
        return str(no_subnet_error(space, self.device, self.budget_ms, self.fastest_ms,
                                   self.fastest_arch, scope))


#: budgets as search takes them: one list for every device, or a list per device
Budgets = Sequence[float] | Mapping[str, Sequence[float]]


def device_budgets(budgets_ms: Budgets, devices: Sequence[str]) -> dict[str, list[float]]:
    """Each device -> its budgets (a plain list serves every device)."""
    if isinstance(budgets_ms, Mapping):
        missing = [d for d in devices if d not in budgets_ms]
        if missing:
            raise LatkitError(f"no budgets for device(s) {', '.join(missing)}")
        return {d: [float(b) for b in budgets_ms[d]] for d in devices}
    return {d: [float(b) for b in budgets_ms] for d in devices}


def all_budgets(budgets_ms: Budgets) -> list[float]:
    """Every budget once, ascending (a result's ``budgets_ms``)."""
    values = (b for v in budgets_ms.values() for b in v) if isinstance(budgets_ms, Mapping) else budgets_ms
    return sorted({float(b) for b in values})


@dataclass(frozen=True)
class Candidates:
    """Everything a search scored on one device."""

    device: str
    archs: Sequence[ArchConfig]
    latency_ms: np.ndarray
    top1: np.ndarray


@dataclass
class SearchResult:
    space: str
    method: str
    devices: list[str]
    budgets_ms: list[float]
    candidates: dict[str, Candidates]
    frontiers: dict[str, Frontier]
    picks: list[Pick]
    search_seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    #: (device, budget) pairs nothing met (``strict=False``); their picks are left out
    infeasible: list[Infeasible] = field(default_factory=list)
    #: each device's own budgets (``budgets_ms`` is all of them)
    budgets_by_device: dict[str, list[float]] = field(default_factory=dict)

    def frame(self) -> Any:
        """Every device's frontier as a pandas DataFrame (the rows of ``pareto.csv``)."""
        import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

        return pd.DataFrame(self.frontier_rows(), columns=["device", "pos", "arch", "resolution",
                                                           "predicted_latency_ms", "top1"])

    def frontier_rows(self) -> list[dict[str, Any]]:
        """pareto.csv rows: device, position, arch, resolution, predicted latency, top-1."""
        rows = []
        for dev in self.devices:
            f = self.frontiers[dev]
            for i, a in enumerate(f.archs):
                rows.append({"device": dev, "pos": i, "arch": str(a), "resolution": a.r,
                             "predicted_latency_ms": float(f.latency_ms[i]),
                             "top1": float(f.top1[i])})
        return rows


# ----------------------------------------------------------------------------------------------
# The vectorised core
# ----------------------------------------------------------------------------------------------


def pareto_indices(latency_ms: np.ndarray, top1: np.ndarray) -> list[np.ndarray]:
    """Frontier indices per row of ``latency_ms`` (D, N) against ``top1`` (N,) or (D, N).

    Each result is ordered by ascending latency with strictly ascending top-1. A 1-D latency gives
    a one-element list.
    """
    lat = np.atleast_2d(np.asarray(latency_ms, dtype=np.float64))
    acc = np.broadcast_to(np.asarray(top1, dtype=np.float64), lat.shape)
    if lat.shape[1] == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(lat.shape[0])]
    order = np.lexsort((-acc, lat), axis=-1)  # by latency, then most accurate first
    acc_sorted = np.take_along_axis(acc, order, axis=1)
    best_before = np.maximum.accumulate(acc_sorted, axis=1)
    prev = np.concatenate([np.full((lat.shape[0], 1), -np.inf), best_before[:, :-1]], axis=1)
    keep = acc_sorted > prev
    return [order[d][keep[d]] for d in range(lat.shape[0])]


def best_positions(front_latency_ms: np.ndarray, budgets_ms: Sequence[float]) -> np.ndarray:
    """For each budget, the last frontier position within it (-1 where none is)."""
    return np.searchsorted(front_latency_ms, np.asarray(budgets_ms, dtype=np.float64),
                           side="right") - 1


def no_subnet_error(space: str, device: str, budget_ms: float, fastest_ms: float,
                    fastest_arch: ArchConfig | None, scope: str = "") -> BudgetError:
    where = f" ({fastest_arch})" if fastest_arch is not None else ""
    return BudgetError(
        f"no subnet of {space}{scope} meets {budget_ms:g} ms on {device}: the fastest predicted is "
        f"{fastest_ms:.2f} ms{where}; raise the budget to at least {fastest_ms:.2f} ms"
    )


def make_frontier(device: str, cands: Candidates, idx: np.ndarray) -> Frontier:
    return Frontier(device, tuple(cands.archs[i] for i in idx), cands.latency_ms[idx],
                    cands.top1[idx])


def picks_for(space: str, frontier: Frontier, budgets_ms: Sequence[float], scope: str = "",
              infeasible: list[Infeasible] | None = None) -> list[Pick]:
    """One Pick per budget; BudgetError naming the fastest subnet if a budget is below it.

    With ``infeasible`` (a list), such a budget is appended to it instead and has no pick.
    """
    pos = best_positions(frontier.latency_ms, budgets_ms)
    out = []
    for b, p in zip(budgets_ms, pos, strict=True):
        if p < 0:
            fast = (float(frontier.latency_ms[0]), frontier.archs[0]) if len(frontier) else (np.inf, None)
            if infeasible is None:
                raise no_subnet_error(space, frontier.device, b, fast[0], fast[1], scope)
            infeasible.append(Infeasible(frontier.device, float(b), fast[0], fast[1]))
            continue
        out.append(Pick(frontier.device, float(b), frontier.archs[p],
                        float(frontier.latency_ms[p]), float(frontier.top1[p]), int(p)))
    return out


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def enumerate_candidates(space: SearchSpace, accuracy: AccuracySource,
                         resolutions: Sequence[int] | None = None) -> tuple[list[ArchConfig], str]:
    """The candidates of an exhaustive search and a description of where they came from.

    An accuracy table restricts them to the subnets it has; otherwise every subnet of the space at
    ``resolutions`` (all of the space's by default).
    """
    known = accuracy.candidates()
    if known is not None:
        archs = [a for a in known if resolutions is None or a.r in resolutions]
        if not archs:
            raise LatkitError(f"the accuracy table has no subnets at resolutions {list(resolutions or [])}")
        return archs, f"the {len(archs)} subnets of the accuracy table"
    rs = list(resolutions) if resolutions else list(space.resolutions)
    archs = [a for r in rs for a in space.enumerate(r)]
    return archs, f"all {len(archs)} subnets at {len(rs)} resolution(s)"


def pareto_search(space: str | SearchSpace, latency: Sequence[LatencySource],
                  accuracy: AccuracySource, budgets_ms: Budgets, *,
                  resolutions: Sequence[int] | None = None,
                  candidates: Sequence[ArchConfig] | None = None,
                  log: Callable[[str], None] | None = None, strict: bool = True) -> SearchResult:
    """Score every candidate on every device; frontier per device; best subnet per budget.

    ``budgets_ms``: one list for every device or a mapping device -> its list. ``search_seconds``
    covers enumeration and every predictor call. Raises ``BudgetError`` if a budget is below the
    fastest candidate of a device; with ``strict=False`` such pairs go to ``result.infeasible``
    and every other pair is still answered.
    """
    sp = get_space(space)
    t0 = time.perf_counter()
    if candidates is None:
        archs, what = enumerate_candidates(sp, accuracy, resolutions)
    else:
        archs, what = list(candidates), f"{len(candidates)} given subnets"
    if log:
        log(f"scoring {what} on {len(latency)} device(s)")
    top1 = accuracy.top1(archs)
    lat = np.stack([src.predict_ms(archs) for src in latency]) if latency else np.zeros((0, len(archs)))
    fronts = pareto_indices(lat, top1)
    devices = [src.device for src in latency]
    cands = {d: Candidates(d, archs, lat[i], top1) for i, d in enumerate(devices)}
    frontiers = {d: make_frontier(d, cands[d], fronts[i]) for i, d in enumerate(devices)}
    scope = "" if accuracy.candidates() is None else " in the accuracy table"
    per_device = device_budgets(budgets_ms, devices)
    infeasible: list[Infeasible] | None = None if strict else []
    picks = [p for d in devices for p in picks_for(sp.name, frontiers[d], per_device[d], scope,
                                                   infeasible)]
    seconds = time.perf_counter() - t0
    return SearchResult(sp.name, "pareto", devices, all_budgets(budgets_ms), cands,
                        frontiers, picks, seconds, info={"candidates": len(archs), "scope": what},
                        infeasible=infeasible or [], budgets_by_device=per_device)
