"""Metrics of predicted against measured values, a text report, and a predicted-vs-measured plot.

``regression_metrics`` returns exactly these keys (units in ``units``):

=========  ==================================================================================
n          number of samples
rmse_ms    root mean squared error, in the target's unit (ms for latency)
mape       mean absolute percentage error, in percent
acc10      share of samples predicted within +-10% of the measurement, in percent
acc5       the same within +-5%, in percent
spearman   Spearman rank correlation (None when undefined: fewer than 2 samples or constant input)
kendall    Kendall tau-b (None when undefined)
=========  ==================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from latkit.errors import PredictorError
from latkit.fileio import atomic_path

METRIC_KEYS = ("n", "rmse_ms", "mape", "acc10", "acc5", "spearman", "kendall")


def _corr(kind: str, a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    value = (stats.spearmanr(a, b) if kind == "spearman" else stats.kendalltau(a, b))[0]
    return None if value is None or math.isnan(value) else float(value)


#: units whose values are percentages (top-1): a relative error of one is meaningless (0% is valid)
ABSOLUTE_UNITS = frozenset({"percent"})


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float], unit: str = "ms") -> dict[str, Any]:
    """The metrics above; relative ones need non-zero measurements.

    For a percentage target (``unit`` "percent": top-1) ``mape``, ``acc10`` and ``acc5`` are None:
    a top-1 of 0% is a valid measurement, and a relative error of a percentage means nothing.
    """
    t = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if t.shape != p.shape:
        raise PredictorError(f"{t.shape[0]} measurements but {p.shape[0]} predictions")
    if t.size == 0:
        raise PredictorError("no samples to evaluate")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise PredictorError("measurements and predictions must be finite")
    relative = unit not in ABSOLUTE_UNITS
    rel = np.abs(p - t) / np.where(t != 0, np.abs(t), np.nan)
    if relative and np.isnan(rel).any():
        raise PredictorError("relative metrics need non-zero measurements; found a 0")
    return {
        "n": int(t.size),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape": float(100 * rel.mean()) if relative else None,
        "acc10": float(100 * np.mean(rel <= 0.10)) if relative else None,
        "acc5": float(100 * np.mean(rel <= 0.05)) if relative else None,
        "spearman": _corr("spearman", t, p),
        "kendall": _corr("kendall", t, p),
        "units": {"rmse_ms": unit, "mape": "percent", "acc10": "percent", "acc5": "percent"},
    }


def _fmt(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def format_report(m: dict[str, Any], title: str = "") -> str:
    """A few human-readable lines."""
    unit = m.get("units", {}).get("rmse_ms", "ms")
    lines = [title] if title else []
    lines += [
        f"  samples        {m['n']}",
        f"  RMSE           {m['rmse_ms']:.4g} {unit}",
        f"  MAPE           {_fmt(m['mape'], 2)}%",
        f"  within +-10%   {_fmt(m['acc10'], 1)}%",
        f"  within +-5%    {_fmt(m['acc5'], 1)}%",
        f"  Spearman       {_fmt(m['spearman'])}",
        f"  Kendall tau    {_fmt(m['kendall'])}",
    ]
    return "\n".join(lines)


def metrics_row(name: str, m: dict[str, Any]) -> str:
    """One line of a metrics table (``metrics_header`` gives the header)."""
    return (f"{name:<28} {m['n']:>5} {m['rmse_ms']:>9.4f} {_fmt(m['mape'], 2):>7} "
            f"{_fmt(m['acc10'], 1):>7} {_fmt(m['acc5'], 1):>7} {_fmt(m['spearman']):>8} "
            f"{_fmt(m['kendall']):>8}")


def metrics_header(name: str = "predictor") -> str:
    return (f"{name:<28} {'n':>5} {'rmse_ms':>9} {'mape%':>7} {'acc10%':>7} {'acc5%':>7} "
            f"{'spearman':>8} {'kendall':>8}")


def predictions_figure(y_true: Sequence[float], y_pred: Sequence[float], title: str = "",
                       unit: str = "ms", log: bool = True) -> Any:
    """Predicted against measured as a matplotlib ``Figure`` (log-log where all values are positive):
    the y = x line, the ±10% band, and the metrics in the title. Shown inline in a notebook;
    ``plot_scatter`` writes it to a file. Built without pyplot, so it leaves the notebook's
    backend and open figures alone."""
    from matplotlib.figure import Figure  # noqa: PLC0415 -- matplotlib only for plots
    from matplotlib.ticker import FormatStrFormatter, LogLocator  # noqa: PLC0415 -- as above

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    m = regression_metrics(t, p, unit)
    log = log and t.min() > 0 and p.min() > 0
    fig = Figure(figsize=(5.2, 5.0), dpi=120)
    ax = fig.subplots()
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    pad = (hi / lo) ** 0.05 if log else (hi - lo) * 0.05
    lo, hi = (lo / pad, hi * pad) if log else (lo - pad, hi + pad)
    xs = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="tab:green", alpha=0.15, label="±10%")
    ax.plot(xs, xs, color="black", lw=1, label="y = x")
    ax.scatter(t, p, s=10, alpha=0.7, color="tab:blue", edgecolors="none", label="subnets")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers (3, 4, 6, 10), not 3x10^0
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(FormatStrFormatter(""))
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    sub = (f"n={m['n']}  MAPE {_fmt(m['mape'], 2)}%  ±10% {_fmt(m['acc10'], 1)}%  "
           f"±5% {_fmt(m['acc5'], 1)}%\n"
           f"Spearman {_fmt(m['spearman'], 3)}  Kendall {_fmt(m['kendall'], 3)}")
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    return fig


def plot_scatter(y_true: Sequence[float], y_pred: Sequence[float], path: str | Path,
                 title: str = "", unit: str = "ms", log: bool = True) -> Path:
    """Write ``predictions_figure`` to ``path`` (the format from its suffix) and return the path."""
    fig = predictions_figure(y_true, y_pred, title, unit, log)
    out = Path(path)
    with atomic_path(out) as tmp:  # the format from the name, as savefig(out) would
        fig.savefig(tmp, format=out.suffix[1:].lower() or "png")
    return out


def noise_floor(passes: Sequence[Sequence[float]]) -> dict[str, Any] | None:
    """The measurement noise of a set of figures from their passes: pass against pass.

    ``passes`` holds, per measured arch, the medians of its passes (``lat measure``'s ``pass_ms``).
    For every pair of passes (i, j) the metrics of pass j "predicting" pass i over the archs that
    have both are averaged: ``mape``, ``acc10``, ``acc5``, ``spearman`` (what a perfect predictor
    would score against one pass). ``figure_mape`` estimates the noise of the reported figure, the
    median of ``n_passes`` passes, against the machine's true level: 0.886 * mape / sqrt(n) (for
    Gaussian noise a pair's mean absolute difference is 2 sigma / sqrt(pi), and the median of n
    has a standard deviation of 1.2533 sigma / sqrt(n)). None when fewer than 2 archs have 2 passes.
    """
    rows = [[float(v) for v in r] for r in passes if len(r) >= 2]
    if len(rows) < 2:
        return None
    k = min(len(r) for r in rows)
    pairs = [regression_metrics([r[i] for r in rows], [r[j] for r in rows])
             for i in range(k) for j in range(i + 1, k)]

    def mean(key: str) -> float | None:
        vals = [p[key] for p in pairs if p[key] is not None]
        return float(np.mean(vals)) if vals else None

    n_passes = float(np.median([len(r) for r in rows]))
    mape = float(np.mean([p["mape"] for p in pairs]))
    return {"n": len(rows), "n_passes": n_passes, "mape": mape, "acc10": mean("acc10"),
            "acc5": mean("acc5"), "spearman": mean("spearman"),
            "figure_mape": 0.886 * mape / math.sqrt(n_passes),
            "units": {"mape": "percent", "acc10": "percent", "acc5": "percent"}}


def format_noise(noise: dict[str, Any] | None, m: dict[str, Any] | None = None) -> str:
    """Lines for a report: the noise floor and, with the predictor's metrics ``m``, their ratio."""
    if noise is None:
        return ("  noise floor    unknown: the measurements carry no passes (measure them with "
                "lat measure --passes 2 or more)")
    lines = [
        f"  noise floor    pass vs pass ({noise['n_passes']:g} passes, {noise['n']} subnets): MAPE "
        f"{noise['mape']:.2f}%, within +-10% {noise['acc10']:.1f}%, Spearman "
        f"{_fmt(noise['spearman'])}",
        f"                 the reported medians: MAPE about {noise['figure_mape']:.2f}% (estimated)",
    ]
    if m is not None and noise["mape"] > 0:
        lines.append(f"  error / noise  predictor MAPE {m['mape']:.2f}% = "
                     f"{m['mape'] / noise['mape']:.2f} x pass-vs-pass noise")
    return "\n".join(lines)
