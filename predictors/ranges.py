"""The ranges a predictor was fitted on, and the archs that fall outside them.

A predictor fitted only on r128 subnets knows nothing about r224 ones: it still answers, but the
answer is an extrapolation. ``fit_range(space, archs)`` records, in the predictor's metadata
(``meta_["fit_range"]``), the span of what it saw::

    {"resolutions": [128, 160], "depths": [[2, 4], [2, 4], [2, 3], [2, 4], [3, 4]],
     "macs": [121300000, 566200000]}

(each an inclusive ``[min, max]``; ``depths`` one span per stage). ``outside_fit(meta, space, arch)``
says in words why an arch is outside it (``"resolution 224 outside the fitted 128..160"``), or
None. A predictor saved before these were recorded has no ``fit_range`` and flags nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from latkit.supernet.space import ArchConfig, SearchSpace


def fit_range(space: SearchSpace, archs: Sequence[ArchConfig]) -> dict[str, Any] | None:
    """The span of resolutions, per-stage depths and MACs of ``archs`` (None if there are none)."""
    if not archs:
        return None
    rs = [a.r for a in archs]
    depths = [a.d for a in archs]
    macs = [int(space.macs(a)) for a in archs]
    n_stages = min(len(d) for d in depths)
    return {"resolutions": [min(rs), max(rs)],
            "depths": [[min(d[i] for d in depths), max(d[i] for d in depths)] for i in range(n_stages)],
            "macs": [min(macs), max(macs)]}


def _span(v: Any) -> tuple[float, float] | None:
    if (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        return float(v[0]), float(v[1])
    return None


def outside_fit(meta: Mapping[str, Any] | None, space: SearchSpace, arch: ArchConfig) -> str | None:
    """Why ``arch`` lies outside the ``fit_range`` in ``meta`` (a predictor's ``meta_``), or None."""
    rng = (meta or {}).get("fit_range")
    if not isinstance(rng, Mapping):
        return None
    reasons = []
    r = _span(rng.get("resolutions"))
    if r is not None and not r[0] <= arch.r <= r[1]:
        reasons.append(f"resolution {arch.r} outside the fitted {r[0]:g}..{r[1]:g}")
    depths = rng.get("depths")
    if isinstance(depths, list):
        for i, (d, span) in enumerate(zip(arch.d, depths, strict=False)):
            s = _span(span)
            if s is not None and not s[0] <= d <= s[1]:
                reasons.append(f"stage {i + 1} depth {d} outside the fitted {s[0]:g}..{s[1]:g}")
    m = _span(rng.get("macs"))
    if m is not None:
        macs = space.macs(arch)
        if not m[0] <= macs <= m[1]:
            reasons.append(f"{macs / 1e6:.1f}M MACs outside the fitted "
                           f"{m[0] / 1e6:.1f}M..{m[1] / 1e6:.1f}M")
    return "; ".join(reasons) or None


def merge_ranges(*ranges: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The smallest range holding every given one (a few-shot predictor spans its sources'), or None
    when one of them is unknown (then nothing can be flagged honestly)."""
    if not ranges or any(not isinstance(r, Mapping) for r in ranges):
        return None
    spans = {}
    for k in ("resolutions", "macs"):
        got = [_span(r.get(k)) for r in ranges]
        if any(s is None for s in got):
            return None
        spans[k] = [min(s[0] for s in got), max(s[1] for s in got)]  # type: ignore[index]
    depths = [r.get("depths") for r in ranges]
    if not all(isinstance(d, list) for d in depths):
        return None
    per_stage = []
    for i in range(min(len(d) for d in depths)):  # type: ignore[arg-type]
        got = [_span(d[i]) for d in depths]  # type: ignore[index]
        if any(s is None for s in got):
            return None
        per_stage.append([min(s[0] for s in got), max(s[1] for s in got)])  # type: ignore[index]
    spans["depths"] = per_stage
    return spans
