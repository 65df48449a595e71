"""The device protocol, the one ``Measurement`` type, and the measurement discipline they share.

A device runs an artifact (an exported .onnx or .tflite file) on one target and returns a
``Measurement``. Every device follows the same protocol (DESIGN.md, "Measurement protocol"):

1. warm up: at least ``warmup_runs`` runs and at least ``warmup_s`` seconds;
2. time runs until both ``min_runs`` runs and ``min_time_s`` seconds are reached (bounded by
   ``max_runs``);
3. summarise: median (the headline figure), p10, p90, mean, std and coefficient of variation, with the
   raw per-run samples kept;
4. if the CV is above ``cv_threshold``, measure once more and keep the steadier of the two rounds,
   recording that it happened (``remeasured``).

Devices differ only in how they prepare an artifact and time one run (or, for devices that time on
the target itself, such as ``benchmark_model`` on a phone, how they obtain the samples). They are
looked up by name in one registry (``get_device``); see ``devices/registry.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from latkit import __version__
from latkit.errors import DeviceError
from latkit.provenance import now_iso


class DeviceUnreachableError(DeviceError):
    """The link to a device failed after all its attempts: it may come back (a phone unplugged or
    off Wi-Fi), so a campaign waits for it with backoff instead of skipping its jobs."""


@dataclass(frozen=True)
class ProtocolSettings:
    """How long to warm up and how much to time. Defaults suit single layers and whole subnets."""

    warmup_runs: int = 10
    warmup_s: float = 0.05
    min_runs: int = 20
    min_time_s: float = 0.2
    max_runs: int = 10_000
    max_time_s: float = 30.0
    cv_threshold: float = 0.05
    remeasure_on_high_cv: bool = True
    #: >0: each sample is the mean of ``loops`` back-to-back runs, ``loops`` chosen during warm-up
    #: so that one sample lasts at least this long (timeit's ``number``, pyperf's loops). For
    #: sub-millisecond layers this averages out the timer, interrupt and scheduler jitter that
    #: dominates single runs; 0 times every run on its own. Local devices only (a phone's
    #: ``benchmark_model`` times single runs).
    min_sample_ms: float = 0.0
    max_loops: int = 1000

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.warmup_runs < 0:
            raise DeviceError(
                f"protocol needs min_runs >= 1 and warmup_runs >= 0, got {self.min_runs} and "
                f"{self.warmup_runs}"
            )
        if self.max_runs < self.min_runs:
            raise DeviceError(f"max_runs ({self.max_runs}) is below min_runs ({self.min_runs})")
        times = {"warmup_s": self.warmup_s, "min_time_s": self.min_time_s,
                 "max_time_s": self.max_time_s, "min_sample_ms": self.min_sample_ms}
        bad = {k: v for k, v in times.items() if not (isinstance(v, (int, float)) and math.isfinite(v)
                                                      and v >= 0)}
        if bad:
            raise DeviceError(f"protocol times are finite and >= 0 seconds; got {bad}")
        if self.min_sample_ms < 0 or self.max_loops < 1:
            raise DeviceError(f"protocol needs min_sample_ms >= 0 and max_loops >= 1, got "
                              f"{self.min_sample_ms} and {self.max_loops}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.min_sample_ms:  # single-run timing: the settings (and their hash) as before
            d.pop("min_sample_ms")
            d.pop("max_loops")
        return d

    def loops_for(self, run_ms: float) -> int:
        """Back-to-back runs per sample for runs of ``run_ms``: 1 unless ``min_sample_ms`` is set."""
        if not self.min_sample_ms or run_ms <= 0:
            return 1
        return max(1, min(self.max_loops, math.ceil(self.min_sample_ms / run_ms)))


@dataclass(frozen=True)
class Stats:
    """Summary statistics of per-run latencies, all in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    runs: int

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean); 0 for a single run."""
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already sorted values."""
    if not sorted_values:
        raise DeviceError("no samples to summarise")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float]) -> Stats:
    """Summarise per-run latencies (ms). Raises ``DeviceError`` on an empty or non-finite input."""
    values = [float(v) for v in samples_ms]
    if not values:
        raise DeviceError("no samples to summarise")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise DeviceError(f"invalid latency samples (negative or non-finite): {values[:5]}...")
    s = sorted(values)
    return Stats(
        median_ms=statistics.median(s),
        p10_ms=_percentile(s, 0.10),
        p90_ms=_percentile(s, 0.90),
        mean_ms=statistics.fmean(s),
        std_ms=statistics.pstdev(s) if len(s) > 1 else 0.0,
        min_ms=s[0],
        max_ms=s[-1],
        runs=len(s),
    )


@dataclass
class Measurement:
    """One measured latency of one artifact on one device, with everything needed to trust it.

    ``median_ms`` is the figure to use. ``env`` is the environment snapshot: device name, runtime and
    version, threads, CPU affinity, delegate or execution provider, frequencies and temperatures
    where readable, artifact hash, tool version, timestamp (see ``environment_base``).
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    runs: int
    warmup_runs: int
    samples_ms: list[float] = field(default_factory=list)
    remeasured: bool = False
    first_round_cv: float | None = None
    env: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_samples(
        cls,
        samples_ms: Sequence[float],
        *,
        warmup_runs: int,
        env: dict[str, Any],
        protocol: ProtocolSettings | None = None,
        **extra: Any,
    ) -> Measurement:
        st = summarize(samples_ms)
        return cls(
            median_ms=st.median_ms,
            p10_ms=st.p10_ms,
            p90_ms=st.p90_ms,
            mean_ms=st.mean_ms,
            std_ms=st.std_ms,
            cv=st.cv,
            runs=st.runs,
            warmup_runs=warmup_runs,
            samples_ms=[float(v) for v in samples_ms],
            env=dict(env),
            protocol=protocol.to_dict() if protocol else {},
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise DeviceError(f"measurement has unknown fields {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        return cls.from_dict(json.loads(text))


@runtime_checkable
class Device(Protocol):
    """What every device implements. ``name`` is its registry name (``cpu``, ``pixel4``...)."""

    name: str
    #: artifact formats the device runs, in order of preference: ("onnx",) or ("tflite",)
    formats: tuple[str, ...]

    def prepare(self, artifact: Path) -> Any:
        """Make ``artifact`` ready to run (load a session, push to the phone); returns a handle."""

    def benchmark(self, artifact: Path, settings: ProtocolSettings | None = None) -> Measurement:
        """Measure ``artifact`` under the shared protocol and return its ``Measurement``."""

    def environment(self) -> dict[str, Any]:
        """A snapshot of the device environment (recorded in every Measurement)."""

    def close(self) -> None:
        """Release sessions and connections."""


def run_protocol(
    run_once: Callable[[], float | None],
    settings: ProtocolSettings,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], int]:
    """Warm up, then time ``run_once`` until the protocol's count and time minimums are both met.

    ``run_once`` runs one inference. If it returns a float, that is the run's latency in ms (a device
    that times on its own clock, e.g. CUDA events); if it returns None, the wall time around the
    call is used. With ``settings.min_sample_ms`` each sample is the mean of ``loops`` back-to-back
    runs, ``loops`` fixed from the warm-up runs' median (``ProtocolSettings.loops_for``); the
    minimum and maximum counts then count samples. Returns (samples_ms, warmup_runs_done).
    """
    samples, warm, _, _ = _run_protocol(run_once, settings, clock)
    return samples, warm


def _run_protocol(run_once: Callable[[], float | None], settings: ProtocolSettings,
                  clock: Callable[[], float] = time.perf_counter,
                  reference_once: Callable[[], float | None] | None = None,
                  ) -> tuple[list[float], int, int, list[float]]:
    """``run_protocol``, also returning the loops per sample and, with ``reference_once``, the
    reference model's sample taken right after each sample (``paired``): then a sample of the
    artifact lasts at least one reference run, so that the pairs are as cheap as the reference."""
    def timed(fn: Callable[[], float | None]) -> float:
        a = clock()
        own = fn()
        return float(own) if own is not None else (clock() - a) * 1e3

    warm = 0
    warm_ms: list[float] = []
    ref_ms: list[float] = []
    t0 = clock()
    while warm < settings.warmup_runs or (clock() - t0) < settings.warmup_s:
        if settings.min_sample_ms or reference_once is not None:  # warm-up times choose the loops
            warm_ms.append(timed(run_once))
        else:
            run_once()
        if reference_once is not None:
            ref_ms.append(timed(reference_once))
        warm += 1
        if warm >= settings.max_runs:
            break
    loops = settings.loops_for(statistics.median(warm_ms[-10:])) if warm_ms else 1
    if reference_once is not None and warm_ms:
        run_ms, one_ref = statistics.median(warm_ms[-10:]), statistics.median(ref_ms[-10:])
        if run_ms > 0:
            loops = max(loops, min(settings.max_loops, math.ceil(one_ref / run_ms)))
    samples: list[float] = []
    refs: list[float] = []
    t_start = clock()
    while True:
        a = clock()
        own_total, all_own = 0.0, True
        for _ in range(loops):
            own = run_once()
            if own is None:
                all_own = False
            else:
                own_total += float(own)
        b = clock()
        samples.append((own_total if all_own else (b - a) * 1e3) / loops)
        if reference_once is not None:
            refs.append(timed(reference_once))
            b = clock()
        elapsed = b - t_start
        if len(samples) >= settings.max_runs or elapsed >= settings.max_time_s:
            break
        if len(samples) >= settings.min_runs and elapsed >= settings.min_time_s:
            break
    return samples, warm, loops, refs


def measure_with_protocol(
    run_once: Callable[[], float | None],
    settings: ProtocolSettings,
    env: dict[str, Any],
    reference_once: Callable[[], float | None] | None = None,
    reference: dict[str, Any] | None = None,
) -> Measurement:
    """``run_protocol``, then the single CV-triggered re-measurement, as one ``Measurement``.

    With ``reference_once`` (a reference model on the same device) every sample is paired with a
    run of the reference taken right after it, and ``extra["paired"]`` records the median of the
    pairs' ratios (sample / reference), the reference's median and the pairs; ``reference`` (its
    key and sha256) is recorded with them. ``apply_level`` turns the ratio into the figure.
    """
    samples, warm, loops, refs = _run_protocol(run_once, settings, reference_once=reference_once)
    first = summarize(samples)
    remeasured = False
    first_cv = None
    if settings.remeasure_on_high_cv and first.cv > settings.cv_threshold:
        samples2, warm2, loops2, refs2 = _run_protocol(run_once, settings,
                                                       reference_once=reference_once)
        second = summarize(samples2)
        remeasured, first_cv = True, first.cv
        if second.cv <= first.cv:
            samples, warm, loops, refs = samples2, warm + warm2, loops2, refs2
    m = Measurement.from_samples(samples, warmup_runs=warm, env=env, protocol=settings)
    m.remeasured = remeasured
    m.first_round_cv = first_cv
    if settings.min_sample_ms or reference_once is not None:
        m.extra["loops"] = loops
    if reference_once is not None and refs:
        ratios = [t / r for t, r in zip(samples, refs, strict=True) if r > 0]
        m.extra["paired"] = {**(reference or {}), "ratio": statistics.median(ratios),
                             "ref_ms": statistics.median(refs), "pairs": len(ratios),
                             "ref_samples_ms": [round(v, 6) for v in refs]}
    return m


def environment_base(device_name: str, **fields: Any) -> dict[str, Any]:
    """The fields every environment snapshot has; devices add runtime-specific ones."""
    env: dict[str, Any] = {
        "device": device_name,
        "host": platform.node(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tool": "latkit",
        "tool_version": __version__,
        "timestamp": now_iso(),
    }
    env.update(fields)
    return env


# --- passes ----------------------------------------------------------------------------------------

#: passes per measurement by default: each arch or layer is measured this many times, in short
#: passes spread over the campaign (or, for ``lat bench``, one after another), and reported as the
#: median of the passes' medians. One measurement samples the machine's minute-scale drift once;
#: the median of three spread passes averages it and says how large it was (``pass_spread``).
DEFAULT_PASSES = 3


def apply_level(m: Measurement, level_ms: float | None) -> Measurement:
    """A pass measured beside the reference model (``extra["paired"]``), as a figure: its median is
    the pairs' median ratio times ``level_ms``, the device's reference level (``devices/levels.py``),
    and every other statistic and sample is scaled by the same factor. The pass as measured is kept
    (``extra["raw_median_ms"]``). A pass without a pairing, or no level, is returned as it is.

    The ratio is what holds on a drifting machine: a subnet and the reference run milliseconds apart
    slow down together, so a level shift that moves both by 30% moves their ratio by little (on this
    project's 2-core VM under load: the spread of 30 short passes of a subnet, 27% as measured, 5%
    as ratios)."""
    paired = m.extra.get("paired")
    if not level_ms or not isinstance(paired, dict) or not paired.get("ratio") or m.median_ms <= 0:
        return m
    figure = float(paired["ratio"]) * float(level_ms)
    f = figure / m.median_ms
    extra = {**m.extra, "raw_median_ms": m.median_ms, "level_ms": float(level_ms)}
    return dataclasses.replace(
        m, median_ms=figure, p10_ms=m.p10_ms * f, p90_ms=m.p90_ms * f, mean_ms=m.mean_ms * f,
        std_ms=m.std_ms * f, samples_ms=[v * f for v in m.samples_ms], extra=extra)


def combine_passes(passes: Sequence[Measurement], level_ms: float | None = None) -> Measurement:
    """One ``Measurement`` from several passes of the same artifact: the median of their medians.

    With ``level_ms``, every pass measured beside the reference model is first turned into its
    figure (``apply_level``); ``extra["raw_pass_medians_ms"]`` then keeps the medians as measured.
    p10/p90/mean/std/cv are the medians of the passes' figures, ``runs`` their sum; ``samples_ms``
    keeps every pass's samples. ``extra`` records ``passes``, ``pass_medians_ms`` (in measuring
    order), ``pass_spread`` ((max - min) / median of the pass medians) and, where the passes carry
    a reference-model reading, ``reference_drift`` (their median) and ``level_shift`` (any pass
    flagged). A single pass is returned as it is, with those fields added.
    """
    raw = list(passes)
    if not raw:
        raise DeviceError("no passes to combine")
    ms = [apply_level(m, level_ms) for m in raw]
    meds = [float(m.median_ms) for m in ms]
    med = statistics.median(meds)
    drifts = [m.extra["reference"]["drift"] for m in ms
              if isinstance(m.extra.get("reference"), dict) and "drift" in m.extra["reference"]]
    extra = dict(ms[-1].extra)
    extra.pop("pass", None)
    extra.update(passes=len(ms), pass_medians_ms=meds,
                 pass_spread=(max(meds) - min(meds)) / med if med > 0 else 0.0)
    if any("raw_median_ms" in m.extra for m in ms):
        extra["raw_pass_medians_ms"] = [float(m.median_ms) for m in raw]
        extra.pop("raw_median_ms", None)
        extra["paired"] = {k: v for k, v in extra.get("paired", {}).items() if k != "ref_samples_ms"}
        extra["paired"].update(ratio=statistics.median(float(m.extra["paired"]["ratio"]) for m in ms
                                                       if "raw_median_ms" in m.extra),
                               ref_ms=statistics.median(float(m.extra["paired"]["ref_ms"])
                                                        for m in ms if "raw_median_ms" in m.extra))
    if drifts:
        extra["reference_drift"] = statistics.median(drifts)
        extra["level_shift"] = any(bool(m.extra["reference"].get("level_shift")) for m in ms
                                   if isinstance(m.extra.get("reference"), dict))
    if len(ms) == 1:
        return dataclasses.replace(ms[0], extra=extra)

    def mid(name: str) -> float:
        return statistics.median(float(getattr(m, name)) for m in ms)

    return Measurement(
        median_ms=med, p10_ms=mid("p10_ms"), p90_ms=mid("p90_ms"), mean_ms=mid("mean_ms"),
        std_ms=mid("std_ms"), cv=mid("cv"), runs=sum(int(m.runs) for m in ms),
        warmup_runs=sum(int(m.warmup_runs) for m in ms),
        samples_ms=[float(v) for m in ms for v in m.samples_ms],
        remeasured=any(m.remeasured for m in ms),
        first_round_cv=next((m.first_round_cv for m in ms if m.remeasured), None),
        env=dict(ms[-1].env), protocol=dict(ms[-1].protocol), extra=extra)
