"""How TFLite's tools print numbers: C++ stream ``%g`` and ``tsl::Stat`` statistics lines.

Shared by the emulated ``benchmark_model`` (``benchmark.py``) and its op-profile tables
(``op_profile.py``), which both print them.
"""

from __future__ import annotations

import math

__all__ = ["g", "stat_line"]


def g(x: float) -> str:
    """C++ ``std::ostream << double`` with default precision (``%g``, 6 significant digits)."""
    return f"{x:g}"


def stat_line(values: list[int], percentiles: bool) -> str:
    """``tsl::Stat::OutputToStream`` (+ ``StatWithPercentiles`` when ``percentiles``)."""
    n = len(values)
    if n == 0:
        text = "count=0"
    elif min(values) == max(values):
        text = f"count={n} curr={values[-1]}" + ("(all same)" if n > 1 else "")
    else:
        avg = sum(values) / n
        var = sum(v * v for v in values) / n - avg * avg
        text = (f"count={n} first={values[0]} curr={values[-1]} min={min(values)} max={max(values)} "
                f"avg={g(avg)} std={int(math.sqrt(var)) if var > 0 else 0}")
    if percentiles:
        s = sorted(values)
        pct = (lambda p: s[-1] if p == 100 else s[n * p // 100]) if s else (lambda p: 0)
        text += f" p5={pct(5)} median={pct(50)} p95={pct(95)}"
    return text
