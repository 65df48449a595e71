"""Campaign data types and settings: devices, protocol presets, progress events, results.

What identifies a measurement besides its key is ``job_settings(...)``: the protocol, the device
options that change a figure (threads, affinity, delegate..., not the serial or address), the export
format and dynamic spatial axes, batch, seed and weights. Its ``settings_fingerprint`` is the
store's ``settings_hash``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latkit.devices.base import DEFAULT_PASSES, ProtocolSettings
from latkit.devices.reference import VERSION as REFERENCE_VERSION
from latkit.devices.registry import (
    LOCAL_DEVICES,
    android_profiles,
    device_names,
    get_device,
)
from latkit.errors import ArchError, DeviceError, LatkitError
from latkit.profiler.export import ExportCache
from latkit.profiler.lut import LookupTable
from latkit.profiler.quantize import Calibration, check_precision_name
from latkit.profiler.store import MeasurementStore
from latkit.supernet.space import get_space
from latkit.tables import LINE, numeric_columns, read_table

#: protocol for one pass of a single layer (0.05-3 ms on a CPU): a short warm-up and ~0.1 s of
#: timed runs (0.3 s over the three passes, as much as one measurement had before passes), each
#: sample the mean of as many back-to-back runs as fill 2 ms (single-run jitter averages out); a
#: layer is measured in ``DEFAULT_PASSES`` such passes spread over the campaign. No CV-triggered
#: second round: the median of the passes already discards a disturbed pass, and a bounded pass
#: keeps each realtime burst short.
LAYER_PROTOCOL = ProtocolSettings(warmup_runs=10, warmup_s=0.05, min_runs=10, min_time_s=0.1,
                                  max_time_s=10.0, min_sample_ms=2.0, remeasure_on_high_cv=False)
#: protocol for one pass of a whole subnet (5-50 ms on a CPU), measured in ``DEFAULT_PASSES`` passes
NETWORK_PROTOCOL = ProtocolSettings(warmup_runs=5, warmup_s=0.1, min_runs=10, min_time_s=0.4,
                                    max_time_s=30.0, remeasure_on_high_cv=False)
#: protocol for one whole-subnet measurement outside a campaign's passes (``lat search --verify``
#: and live ``DEV=measure`` latency): 1 s of timed runs, measured again when the CV is high
SINGLE_NETWORK_PROTOCOL = ProtocolSettings(warmup_runs=5, warmup_s=0.2, min_runs=20, min_time_s=1.0,
                                           max_time_s=30.0)
#: a tiny protocol for tests and smoke runs (``--quick``): figures are noisy
QUICK_PROTOCOL = ProtocolSettings(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.01,
                                  max_time_s=2.0, remeasure_on_high_cv=False)
#: device options that say where a device is, not how it measures: not part of the settings hash
CONNECTION_OPTIONS = frozenset({"serial", "host", "port", "key_path", "adb_key", "timeout_s",
                                "connect_timeout_s", "read_timeout_s", "emulator", "lock_timeout"})


# ---------------------------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSpec:
    """A device to measure on: a registry name plus options, or an already built ``device``."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    device: Any = None

    def open(self) -> Any:
        if self.device is not None:
            return self.device
        return get_device(self.name, **dict(self.options))

    def settings_options(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(self.options.items())
                if k not in CONNECTION_OPTIONS and v is not None}


@dataclass(frozen=True)
class CampaignSettings:
    """Everything besides the artifact that changes a figure (hashed into the store's identity).

    ``protocol`` None means ``LAYER_PROTOCOL`` for layer campaigns, ``NETWORK_PROTOCOL`` for
    end-to-end ones. ``fmt`` None means the device's preferred format. ``dynamic_hw`` exports ONNX
    layers once per shape family (see ``profiler/artifacts.py``). ``realtime_priority`` (Linux, needs
    root or CAP_SYS_NICE) runs each benchmark call in SCHED_FIFO at that priority, so that other
    processes on a shared machine do not preempt a local measurement (it removes the multi-ms
    stalls that otherwise dominate a sub-millisecond layer's spread); the worker thread returns to
    normal scheduling between benchmarks and rests briefly so that the kernel's RT throttling
    (0.95 s per second by default) never stops it in the middle of a timed run. Without it,
    ``auto_realtime`` tries SCHED_FIFO at ``devices.host.DEFAULT_RT_PRIORITY`` and falls back to
    normal scheduling where that is not permitted (recorded in each measurement's
    ``env["scheduling"]``, not part of the settings hash); ``pin`` pins a one-thread local device
    to one CPU (``devices.host.default_affinity``) unless an affinity was given (recorded in
    ``env["affinity_*"]``).

    ``passes``: each job is measured in that many passes spread over the campaign, the figure the
    median of the passes (``profiler/passes.py``); not part of the settings hash, so a campaign
    run again with more passes adds the missing ones. ``reference``: measure the reference model
    at intervals and record the machine's drift with every measurement.

    ``precision`` (fp32, fp16, int8; ``profiler/quantize.py``) is part of the settings hash except
    for fp32, so stores made before precisions existed are fp32 rows; ``calib_data`` (int8 only)
    is what int8 is calibrated on, the built-in data set when None (its identity is hashed too).
    """

    protocol: ProtocolSettings | None = None
    fmt: str | None = None
    dynamic_hw: bool = True
    seed: int = 0
    batch: int = 1
    weights_id: str | None = None
    max_consecutive_failures: int = 3
    realtime_priority: int | None = None
    passes: int = DEFAULT_PASSES
    reference: bool = True
    auto_realtime: bool = True
    pin: bool = True
    precision: str = "fp32"
    calib_data: str | None = None

    def calibration(self) -> Calibration:
        """What int8 exports are calibrated on (``calib_data``, else the built-in data set)."""
        return Calibration(self.calib_data) if self.calib_data else Calibration()

    def __post_init__(self) -> None:
        check_precision_name(self.precision)
        if self.calib_data and self.precision != "int8":
            raise DeviceError(f"--calib-data calibrates int8 models; this campaign is "
                              f"{self.precision} (add --precision int8, or leave --calib-data out)")
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1:
            raise DeviceError(f"passes must be a whole number >= 1, got {self.passes!r}")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a campaign, given to the ``progress`` callback.

    ``kind``: "start" (totals known), "measured", "skipped" (already in the store; one event per
    device with ``count``), "failed", "device_retry" (the device's link failed: waiting for it with
    backoff, its job to be run again), "device_error" (the device gave up), "done".
    """

    kind: str
    device: str = ""
    key: str = ""
    done: int = 0
    total: int = 0
    count: int = 0
    median_ms: float | None = None
    cv: float | None = None
    message: str = ""


@dataclass
class CampaignResult:
    """What a campaign did. ``entries`` = rows in the written table (or CSV)."""

    entries: int = 0
    measured: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    complete: bool = True
    outputs: dict[str, str] = field(default_factory=dict)  # device -> table dir / csv path
    errors: list[str] = field(default_factory=list)
    per_device: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _output(self, device: str | None) -> str:
        if device is None:
            if len(self.outputs) != 1:
                raise LatkitError(f"this campaign wrote {len(self.outputs)} outputs "
                                  f"({', '.join(self.outputs) or 'none'}); name the device")
            return next(iter(self.outputs.values()))
        if device not in self.outputs:
            raise LatkitError(f"this campaign wrote nothing for {device!r}; it wrote "
                              f"{', '.join(self.outputs) or 'nothing'}")
        return self.outputs[device]

    def table(self, device: str | None = None) -> LookupTable:
        """The lookup table a layer campaign wrote (of ``device`` when it measured several)."""
        return LookupTable.load(self._output(device))

    def frame(self, device: str | None = None) -> Any:
        """What an end-to-end campaign wrote (one file for all its devices) as a DataFrame; the
        rows of ``device`` only if given."""
        paths = sorted(set(self.outputs.values()))
        if len(paths) != 1:
            raise LatkitError(f"this campaign wrote {len(paths)} files; frame() reads the one "
                              "CSV of an end-to-end campaign (a layer campaign has table())")
        frame = numeric_columns(read_table(paths[0], what="measurements").drop(columns=[LINE]))
        if device is not None:
            self._output(device)
            frame = frame[frame["device"] == device].reset_index(drop=True)
        return frame


@dataclass(frozen=True)
class _Job:
    key: str
    payload: Any  # LayerSpec or ArchConfig


ProgressFn = Callable[[ProgressEvent], None]


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def device_specs(devices: str | DeviceSpec | Iterable[str | DeviceSpec]) -> list[DeviceSpec]:
    """Normalise ``"cpu"``, ``"cpu,pixel4"``, DeviceSpecs or a mix into distinct DeviceSpecs."""
    if isinstance(devices, (str, DeviceSpec)):
        devices = [devices]
    out: list[DeviceSpec] = []
    for d in devices:
        if isinstance(d, str):
            out += [DeviceSpec(n.strip()) for n in d.split(",") if n.strip()]
        elif isinstance(d, DeviceSpec):
            out.append(d)
        else:
            raise DeviceError(f"a device is a name or a DeviceSpec, got {type(d).__name__}")
    names = [d.name for d in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DeviceError(f"device(s) {', '.join(dup)} listed twice; a device runs one "
                          "benchmark at a time, list it once")
    if not out:
        raise DeviceError("no device given; e.g. --device cpu")
    return out


def _device_formats(spec: DeviceSpec) -> tuple[str, ...]:
    if spec.device is not None:
        return tuple(spec.device.formats)
    if spec.name in LOCAL_DEVICES:
        return LOCAL_DEVICES[spec.name].formats
    if spec.name in android_profiles():
        return ("tflite",)
    raise DeviceError(f"unknown device {spec.name!r}; known devices: {', '.join(device_names())}")


def job_settings(spec: DeviceSpec, settings: CampaignSettings, kind: str) -> dict[str, Any]:
    """The settings mapping hashed into a measurement's identity for ``spec`` (kind layer/network)."""
    fmt = settings.fmt or _device_formats(spec)[0]
    protocol = settings.protocol or (LAYER_PROTOCOL if kind == "layer" else NETWORK_PROTOCOL)
    out: dict[str, Any] = {
        "protocol": protocol.to_dict(),
        "device_options": spec.settings_options(),
        "format": fmt,
        "batch": settings.batch,
        "seed": settings.seed,
    }
    if settings.realtime_priority:
        out["realtime_priority"] = int(settings.realtime_priority)
    if settings.precision != "fp32":  # absent for fp32: stores made before precisions stay valid
        out["precision"] = settings.precision
    if settings.precision == "int8":
        out["calibration"] = settings.calibration().identity()
    entry = LOCAL_DEVICES.get(spec.name) if spec.device is None else None
    if settings.reference and entry is not None and entry.paired:  # samples beside the reference
        out["paired_reference"] = REFERENCE_VERSION
    if kind == "layer":
        out["dynamic_hw"] = bool(settings.dynamic_hw and fmt == "onnx" and settings.precision == "fp32")
    else:
        out["weights"] = settings.weights_id or f"seed{settings.seed}"
    return out


def resolve_space(space: Any, resolutions: Sequence[int] | str | None) -> tuple[Any, list[int]]:
    """(SearchSpace, sorted resolutions); None or "all" = every resolution of the space."""
    sp = get_space(space) if isinstance(space, str) else space
    if resolutions is None or resolutions == "all":
        return sp, list(sp.resolutions)
    rs = sorted({int(r) for r in resolutions})
    bad = [r for r in rs if r not in sp.resolutions]
    if bad:
        raise ArchError(f"resolution(s) {bad} not in {sp.name} (allowed {sp.resolutions[0]}.."
                        f"{sp.resolutions[-1]} step {sp.resolutions[1] - sp.resolutions[0]})")
    return sp, rs


def export_cache(cache_dir: str | Path | None, store: MeasurementStore) -> ExportCache:
    """The export cache: ``cache_dir``, else ``exports/`` next to the store (shared with it)."""
    return ExportCache(Path(cache_dir) if cache_dir else store.path.parent / "exports")
