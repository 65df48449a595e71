"""``lat space derive``: a family of subnets chosen from the target devices' measured latency.

CompOFA's argument is a latency argument: most subnets of a weight-sharing space are far from the
accuracy-latency frontier, and subnets whose latencies differ by less than a device can tell apart
are not worth training separately. ``derive_family`` makes that choice from the targets' own
latency predictors instead of CompOFA's hand heuristic:

1. candidates: every subnet of the source space (an enumerable one) or a seeded pool of them;
2. per device, the MACs- (or params-) to-latency frontier: the subnets with more MACs than every
   faster subnet, up to the device's largest budget (MACs stand for capacity, as in CompOFA);
3. per device, a grid along that frontier: from the fastest subnet up, the next point is the first
   one slower than the last by more than ``spacing`` x the device's noise (``noise_ms`` given, or
   the predictor's recorded noise floor; see ``device_noise``);
4. the union over devices, less any member that no device can tell from one kept before it
   (within ``spacing`` x noise on every device);
5. with ``size``, the spacing grows (from 1) until the family has at most ``size`` members.

The report (``Derived.report``) gives the family's size, and per device and budget the best member
and the best subnet of the whole source space under the same predictor and accuracy source (an
accuracy table or predictor, or a MACs proxy), and the gap between them. A (device, budget) that no
subnet of the space meets is reported with the fastest reachable latency; the others still are.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latkit.errors import LatkitError
from latkit.fileio import sha256_file
from latkit.provenance import record
from latkit.search.pareto import Infeasible, SearchResult, pareto_indices, pareto_search
from latkit.search.protocols import LatencySource, accuracy_source, latency_source
from latkit.supernet.family import FamilySpace, save_family
from latkit.supernet.space import ArchConfig, SearchSpace, get_space

#: above this many subnets the source space is sampled (``pool`` subnets) instead of enumerated
ENUMERABLE_MAX = 200_000
METRICS = ("macs", "params")
#: the relative noise (percent) assumed for a source that records none (and was given none)
DEFAULT_NOISE_PCT = 2.0


# ----------------------------------------------------------------------------------------------
# An accuracy proxy for when no accuracy source is given
# ----------------------------------------------------------------------------------------------


@dataclass
class CapacityProxy:
    """Top-1 stand-in from capacity, ``76 + 3.6 ln(MACs / 200M)`` (params: ``/ 5M``): monotone in
    MACs, so "best under a budget" is the largest subnet that fits. Not an accuracy: its gaps are
    in proxy points, and the report says so."""

    space: str
    metric: str = "macs"

    def top1(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        sp = get_space(self.space)
        size = np.array([sp.macs(a) if self.metric == "macs" else sp.params(a) for a in archs],
                        dtype=np.float64)
        ref = 200e6 if self.metric == "macs" else 5e6
        return 76.0 + 3.6 * np.log(size / ref)

    def candidates(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        ref = "MACs / 200M" if self.metric == "macs" else "params / 5M"
        return {"kind": "proxy", "source": f"76 + 3.6 ln({ref}) (a capacity proxy, not accuracy)"}


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """A device's measurement noise: ``ms`` absolute, or ``pct`` of the latency; and its source."""

    ms: float | None
    pct: float | None
    source: str

    def at(self, latency_ms: np.ndarray | float) -> np.ndarray | float:
        return self.ms if self.ms is not None else latency_ms * (self.pct or 0.0) / 100.0

    def to_dict(self) -> dict[str, Any]:
        return {"ms": self.ms, "pct": self.pct, "source": self.source}


def device_noise(src: LatencySource, given_ms: float | None = None) -> Noise:
    """The noise a family is spaced by on ``src``'s device.

    In order: ``given_ms``; the predictor's recorded noise floor (``meta["noise_floor"]``,
    ``figure_mape``: the noise of a reported median, written by ``lat fit`` when its measurements
    carry passes); its cross-validated MAPE (how well it tells subnets apart at all); a lookup
    table's noise of a reported median (1.2533 x its median per-layer cv / sqrt(runs), as
    ``predictors.metrics.noise_floor`` estimates it); else ``DEFAULT_NOISE_PCT``.
    """
    if given_ms is not None:
        return Noise(float(given_ms), None, "given (--noise-ms)")
    meta = getattr(getattr(src, "predictor", None), "meta_", None) or {}
    floor = meta.get("noise_floor") or {}
    if isinstance(floor.get("figure_mape"), (int, float)) and floor["figure_mape"] > 0:
        return Noise(None, float(floor["figure_mape"]), "the predictor's recorded noise floor "
                     "(noise_floor.figure_mape: pass-vs-pass noise of a reported median)")
    cv = ((meta.get("metrics") or {}).get("cv") or {}).get("mape")
    if isinstance(cv, (int, float)) and cv > 0:
        return Noise(None, float(cv), "the predictor's cross-validated MAPE (its file records no "
                     "noise floor: its measurements had no passes)")
    table = getattr(src, "table", None)
    if table is not None:
        rows = [(e.cv, e.runs) for e in getattr(table, "entries", {}).values() if e.cv and e.runs]
        if rows:
            cv, runs = float(np.median([c for c, _ in rows])), float(np.median([n for _, n in rows]))
            return Noise(None, 100.0 * 1.2533 * cv / math.sqrt(runs), "the lookup table's noise of a "
                         "median: 1.2533 x median per-layer cv / sqrt(runs)")
    return Noise(None, DEFAULT_NOISE_PCT, f"assumed {DEFAULT_NOISE_PCT:g}% (the source records no "
                 "noise; give --noise-ms)")


# ----------------------------------------------------------------------------------------------
# The choice
# ----------------------------------------------------------------------------------------------


def _grid(lat: np.ndarray, front: np.ndarray, gap: Callable[[float], float]) -> list[int]:
    """From the fastest frontier point up, the next one slower than the last kept by > gap."""
    kept: list[int] = []
    for i in front:
        if not kept or lat[i] - lat[kept[-1]] > gap(float(lat[kept[-1]])):
            kept.append(int(i))
    return kept


def choose_members(lat: np.ndarray, size_metric: np.ndarray, budgets: Sequence[Sequence[float]],
                   noise: Sequence[Noise], spacing: float) -> list[int]:
    """Indices of the family for latencies ``lat`` (devices x candidates) at ``spacing`` x noise."""
    chosen: list[int] = []
    fronts = pareto_indices(lat, size_metric)
    for d, front in enumerate(fronts):
        top = max(budgets[d])
        inside = front[lat[d, front] <= top]
        if inside.size == 0:
            inside = front[:1]  # the fastest: what an infeasible budget is answered with
        chosen += _grid(lat[d], inside, lambda v, d=d: spacing * float(noise[d].at(v)))
    seen: list[int] = []
    for i in dict.fromkeys(chosen):
        close = [all(abs(lat[d, i] - lat[d, j]) <= spacing * float(noise[d].at(min(lat[d, i], lat[d, j])))
                     for d in range(lat.shape[0])) for j in seen]
        if not any(close):
            seen.append(i)
    return seen


@dataclass
class Derived:
    """A derived family, its search against the full space, and the report."""

    space: SearchSpace
    members: list[ArchConfig]
    spacing: float
    noise: dict[str, Noise]
    family_result: SearchResult
    full_result: SearchResult
    candidates: int
    candidates_from: str
    accuracy: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def infeasible(self) -> list[Infeasible]:
        return self.full_result.infeasible


def _pool(sp: SearchSpace, resolutions: Sequence[int] | None, pool: int, seed: int
          ) -> tuple[list[ArchConfig], str]:
    rs = list(resolutions) if resolutions else list(sp.resolutions)
    if sp.num_subnets() * len(rs) <= ENUMERABLE_MAX:
        archs = [a for r in rs for a in sp.enumerate(r)]
        return archs, f"every subnet of {sp.name} at {len(rs)} resolution(s)"
    rng = random.Random(seed)
    archs = list(dict.fromkeys(sp.sample(rng, rs) for _ in range(pool)))
    return archs, (f"{len(archs)} subnets of {sp.name} sampled with seed {seed} (the space is too "
                   "large to enumerate: the full space's best is that pool's)")


def derive_family(space: str | SearchSpace, latency: Sequence[tuple[str, str]],
                  budgets_ms: Mapping[str, Sequence[float]], *, size: int | None = None,
                  noise_ms: Mapping[str, float] | None = None, metric: str = "macs",
                  accuracy: str | None = None, resolutions: Sequence[int] | None = None,
                  pool: int = 20_000, seed: int = 0,
                  log: Callable[[str], None] | None = None) -> Derived:
    """Choose a family (see the module docstring); nothing is written."""
    sp = get_space(space)
    if metric not in METRICS:
        raise LatkitError(f"--frontier must be one of {', '.join(METRICS)}, got {metric!r}")
    if size is not None and size < 1:
        raise LatkitError(f"--size must be at least 1, got {size}")
    devices = [d for d, _ in latency]
    srcs = [latency_source(d, spec, sp) for d, spec in latency]
    if any(spec == "measure" for _, spec in latency):
        raise LatkitError("derive predicts every subnet of the space: give each device a latency "
                          "predictor (lat fit) or lut:DIR, not measure")
    noise = {d: device_noise(s, (noise_ms or {}).get(d)) for d, s in zip(devices, srcs, strict=True)}
    archs, what = _pool(sp, resolutions, pool, seed)
    if log:
        log(f"predicting {what} ({len(archs)}) on {', '.join(devices)}")
    lat = np.stack([s.predict_ms(archs) for s in srcs])
    size_metric = np.array([sp.macs(a) if metric == "macs" else sp.params(a) for a in archs],
                           dtype=np.float64)
    budgets = [list(budgets_ms[d]) for d in devices]
    noises = [noise[d] for d in devices]
    spacing = 1.0
    idx = choose_members(lat, size_metric, budgets, noises, spacing)
    while size is not None and len(idx) > size:
        spacing *= 1.15
        if spacing > 1e6:
            break
        idx = choose_members(lat, size_metric, budgets, noises, spacing)
    members = sorted((archs[i] for i in idx), key=lambda a: (a.r, sp.macs(a)))
    acc = accuracy_source(accuracy, sp) if accuracy else CapacityProxy(sp.name, metric)
    fam = pareto_search(sp, srcs, acc, budgets_ms, candidates=members, strict=False)
    full = pareto_search(sp, srcs, acc, budgets_ms, candidates=archs, strict=False)
    out = Derived(sp, members, spacing, noise, fam, full, len(archs), what, acc.describe())
    out.report = _report(out, size)
    return out


def _report(der: Derived, size: int | None) -> dict[str, Any]:
    sp = der.space
    per_res: dict[int, int] = {}
    for a in der.members:
        per_res[a.r] = per_res.get(a.r, 0) + 1
    fam = {(p.device, p.budget_ms): p for p in der.family_result.picks}
    full = {(p.device, p.budget_ms): p for p in der.full_result.picks}
    fam_inf = {(i.device, i.budget_ms): i for i in der.family_result.infeasible}
    devices = {}
    for d, budgets in der.full_result.budgets_by_device.items():
        rows = []
        for b in budgets:
            f, g = fam.get((d, b)), full.get((d, b))
            if g is None:
                inf = next(i for i in der.full_result.infeasible if (i.device, i.budget_ms) == (d, b))
                rows.append({"budget_ms": b, "covered": False, "feasible": False,
                             "fastest_ms": inf.fastest_ms, "fastest_arch": str(inf.fastest_arch)})
                continue
            row = {"budget_ms": b, "feasible": True, "covered": f is not None,
                   "space_best": {"arch": str(g.arch), "latency_ms": g.predicted_latency_ms,
                                  "top1": g.top1}}
            if f is not None:
                row["family_best"] = {"arch": str(f.arch), "latency_ms": f.predicted_latency_ms,
                                      "top1": f.top1}
                row["gap_top1"] = g.top1 - f.top1
                row["gap_ms"] = g.predicted_latency_ms - f.predicted_latency_ms
            else:
                row["family_fastest_ms"] = fam_inf[(d, b)].fastest_ms
            rows.append(row)
        devices[d] = {"noise": der.noise[d].to_dict(), "budgets": rows,
                      "covered": sum(r["covered"] for r in rows), "of": len(rows)}
    parent_per_res = sp.num_subnets()
    return {"size": len(der.members), "size_requested": size, "members_per_resolution": per_res,
            "resolutions": len(per_res), "source_space": sp.name,
            "source_subnets_per_resolution": parent_per_res,
            "spacing_x_noise": round(der.spacing, 4), "candidates": der.candidates,
            "candidates_from": der.candidates_from, "accuracy": der.accuracy, "devices": devices,
            "infeasible": [{"device": i.device, "budget_ms": i.budget_ms, "fastest_ms": i.fastest_ms}
                           for i in der.infeasible]}


def write_family(der: Derived, path: str | Path, latency: Sequence[tuple[str, str]],
                 command: str = "") -> Path:
    """The family file, with its derivation: source space, predictors and their sha256, budgets,
    noise, the report and the command (``provenance.record``)."""
    preds = {}
    for d, spec in latency:
        p = Path(spec[4:] if spec.startswith("lut:") else spec)
        preds[d] = {"spec": spec, "sha256": sha256_file(p) if p.is_file() else None}
    source = der.space.provenance() if isinstance(der.space, FamilySpace) else der.space.name
    derivation = {
        "how": "lat space derive", **record(command), "source_space": source,
        "latency": preds, "budgets_ms": der.full_result.budgets_by_device,
        "noise": {d: n.to_dict() for d, n in der.noise.items()}, "report": der.report,
    }
    return save_family(path, get_space(der.space.name), der.members, derivation)


def format_report(rep: dict[str, Any]) -> str:
    """The report as text: size, coverage per device, each budget's gap to the space's best."""
    per = ", ".join(f"r{r}: {n}" for r, n in sorted(rep["members_per_resolution"].items()))
    n_parent = rep["source_subnets_per_resolution"]
    lines = [f"family: {rep['size']} subnets of {rep['source_space']} ({n_parent:,} per resolution) "
             f"at {rep['resolutions']} resolution(s) [{per}]; neighbours "
             f"{rep['spacing_x_noise']:g} x noise apart; candidates: {rep['candidates_from']}",
             f"accuracy: {rep['accuracy'].get('source')}"]
    for d, info in rep["devices"].items():
        n = info["noise"]
        noise = f"{n['ms']:g} ms" if n["ms"] is not None else f"{n['pct']:.2f}%"
        lines.append(f"{d}: covers {info['covered']}/{info['of']} budgets; noise {noise} ({n['source']})")
        for r in info["budgets"]:
            if not r["feasible"]:
                lines.append(f"  {r['budget_ms']:>8g} ms  INFEASIBLE: the fastest subnet of the space "
                             f"is {r['fastest_ms']:.2f} ms ({r['fastest_arch']})")
            elif not r["covered"]:
                lines.append(f"  {r['budget_ms']:>8g} ms  not covered: the family's fastest is "
                             f"{r['family_fastest_ms']:.2f} ms")
            else:
                f, g = r["family_best"], r["space_best"]
                lines.append(f"  {r['budget_ms']:>8g} ms  family {f['top1']:.2f} at {f['latency_ms']:.2f} ms"
                             f" | space {g['top1']:.2f} at {g['latency_ms']:.2f} ms | gap "
                             f"{r['gap_top1']:.2f}  {f['arch']}")
    return "\n".join(lines)
