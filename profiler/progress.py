"""Campaign progress for the command line: a tqdm bar on a terminal, plain log lines otherwise.

Both take ``ProgressEvent``s (``profiler/campaign.py``) and write to stderr only. The bar shows
entries done/total with the ETA and the current device and key; the log variant prints a line
every ``every_s`` seconds or ``every_n`` entries, whichever comes first, so CI logs stay short.
Failures and device errors are always printed, on their own line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from latkit.profiler.jobs import ProgressEvent


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class LogProgress:
    """Plain log lines for non-terminals."""

    def __init__(self, label: str, stream: TextIO | None = None, every_s: float = 5.0,
                 every_n: int = 50) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.every_s, self.every_n = every_s, every_n
        self.t0 = time.monotonic()
        self.last_t, self.last_done = self.t0, 0
        self.measured = self.skipped = self.failed = 0
        self.total = 0

    def _line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def eta_s(self, done: int) -> float | None:
        if self.measured == 0:
            return None
        rate = (time.monotonic() - self.t0) / self.measured
        return rate * max(0, self.total - done - self.failed)

    def __call__(self, ev: ProgressEvent) -> None:
        self.total = ev.total
        if ev.kind == "start":
            self._line(f"{ev.total} entries to cover ({ev.message})")
            return
        if ev.kind == "skipped":
            self.skipped += ev.count
            self._line(f"{ev.device}: {ev.count} already in the store, skipped")
            return
        if ev.kind in ("failed", "device_error"):
            self.failed += ev.kind == "failed"
            self._line(f"{ev.device} {ev.key} FAILED: {ev.message}" if ev.key
                       else f"{ev.device}: {ev.message}")
            return
        if ev.kind == "device_retry":
            self._line(f"{ev.device}: {ev.message}")
            return
        if ev.kind != "measured":
            return
        self.measured += 1
        now = time.monotonic()
        if now - self.last_t >= self.every_s or ev.done - self.last_done >= self.every_n \
                or ev.done >= ev.total:
            self.last_t, self.last_done = now, ev.done
            eta = self.eta_s(ev.done)
            pct = 100.0 * ev.done / ev.total if ev.total else 100.0
            self._line(f"{ev.done}/{ev.total} ({pct:.0f}%) measured {self.measured}, skipped "
                       f"{self.skipped}, failed {self.failed}; {_fmt_s(now - self.t0)} elapsed"
                       + (f", ETA {_fmt_s(eta)}" if eta is not None else "")
                       + f"; {ev.device}: {ev.key} {ev.median_ms:.4f} ms")

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar on stderr (entries done/total, ETA, current device and key)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        from tqdm import tqdm  # noqa: PLC0415 -- tqdm: only on a terminal; keeps lat --help fast

        self._tqdm = tqdm
        self.label, self.stream = label, stream or sys.stderr
        self.bar: Any = None

    def _ensure(self, total: int) -> Any:
        if self.bar is None:
            self._tqdm.monitor_interval = 0  # no monitor thread waking up during measurements
            self.bar = self._tqdm(total=total, desc=self.label, unit="entry", file=self.stream,
                                  dynamic_ncols=True, smoothing=0.1)
        return self.bar

    def __call__(self, ev: ProgressEvent) -> None:
        bar = self._ensure(ev.total)
        if ev.kind == "skipped":
            bar.update(ev.count)
            bar.write(f"{ev.device}: {ev.count} already in the store, skipped", file=self.stream)
        elif ev.kind == "measured":
            bar.set_postfix_str(f"{ev.device}: {ev.key[:48]}", refresh=False)
            bar.update(1)
        elif ev.kind == "device_retry":
            bar.write(f"{ev.device}: {ev.message}", file=self.stream)
        elif ev.kind in ("failed", "device_error"):
            bar.write(f"{ev.device} {ev.key} FAILED: {ev.message}" if ev.key
                      else f"{ev.device}: {ev.message}", file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_progress(label: str, stream: TextIO | None = None, quiet: bool = False) -> Any:
    """The right reporter for ``stream`` (stderr by default); a no-op when ``quiet``."""
    stream = stream or sys.stderr
    if quiet:
        class _Null:
            def __call__(self, ev: ProgressEvent) -> None:
                pass

            def close(self) -> None:
                pass
        return _Null()
    isatty = getattr(stream, "isatty", lambda: False)
    return BarProgress(label, stream) if isatty() else LogProgress(label, stream)
