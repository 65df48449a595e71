"""pareto.png: one panel per device with candidates, frontier, budgets and the chosen subnets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latkit.fileio import atomic_path
from latkit.search.pareto import SearchResult
from latkit.search.verify import Choice

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def frontier_figure(result: SearchResult, choices: Sequence[Choice] = (),
                    title: str | None = None) -> Any:
    """The frontiers as a matplotlib ``Figure``: one panel per device with the candidates, the
    frontier, each budget and its chosen subnet (predicted, and measured where verified).

    Shown inline in a notebook; ``plot_frontiers`` writes it to a PNG. Built without pyplot, so it
    leaves the notebook's backend and open figures alone.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 -- matplotlib only for plots

    n = len(result.devices)
    fig = Figure(figsize=(10, 4.4 * n + 0.4))
    axes = fig.subplots(n, 1, squeeze=False)
    for ax, dev in zip(axes[:, 0], result.devices, strict=True):
        cands, front = result.candidates[dev], result.frontiers[dev]
        ax.scatter(cands.latency_ms, cands.top1, s=5, c="0.75", alpha=0.5, linewidths=0,
                   rasterized=True, label=f"candidates ({len(cands.archs)})")
        ax.step(front.latency_ms, front.top1, where="post", c="black", lw=1.3,
                label=f"frontier ({len(front)})")
        ax.plot(front.latency_ms, front.top1, ".", c="black", ms=3)
        mine = [c for c in choices if c.device == dev]
        for i, c in enumerate(mine):
            col = _COLORS[i % len(_COLORS)]
            ax.axvline(c.budget_ms, c=col, ls="--", lw=1)
            ax.plot(c.predicted_latency_ms, c.top1, "*", c=col, ms=13, mec="black", mew=0.6,
                    label=f"{c.budget_ms:g} ms: {c.top1:.2f}% (predicted {c.predicted_latency_ms:.2f} ms)")
            for t in c.tried:
                if t["arch"] != str(c.arch) or c.within_budget is False:
                    ax.plot(t["measured_latency_ms"], t["accuracy"], "x", c=col, ms=7, mew=1.5)
            if c.measured_latency_ms is not None and c.within_budget:
                ax.plot(c.measured_latency_ms, c.top1, "o", mfc="none", mec=col, ms=10, mew=1.8)
                ax.annotate("", (c.measured_latency_ms, c.top1), (c.predicted_latency_ms, c.top1),
                            arrowprops={"arrowstyle": "->", "color": col, "lw": 1})
        ax.set_xlabel(f"latency on {dev} (ms): predicted, measured where marked")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{dev}: {result.space} ({result.method})")
        ax.grid(alpha=0.3)
        if any(c.measured_latency_ms is not None for c in mine):
            ax.plot([], [], "o", mfc="none", mec="0.3", label="measured (accepted)")
            if any(len(c.tried) > 1 or c.within_budget is False for c in mine):
                ax.plot([], [], "x", c="0.3", label="measured (over budget)")
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        lo = min([float(front.top1.min()), *(c.top1 for c in mine)]) if len(front) else 0
        hi = float(cands.top1.max()) if len(cands.top1) else 1
        pad = max(0.5, 0.05 * (hi - lo))
        ax.set_ylim(lo - 4 * pad, hi + pad)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_frontiers(result: SearchResult, choices: Sequence[Choice], path: str | Path,
                   title: str | None = None) -> Path:
    """Write ``frontier_figure`` to ``path`` (PNG) and return the path."""
    fig = frontier_figure(result, choices, title)
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    return out
