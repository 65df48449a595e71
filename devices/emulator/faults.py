"""Faults the ADB device emulator injects, parsed from a comma-separated spec (``--faults``).

The server drops and slows connections; the emulated ``benchmark_model`` crashes, hangs, drops or
fails the run the spec names; the thermal model starts at a forced temperature. See ``FaultSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from latkit.errors import DeviceError

__all__ = ["FaultSpec"]


@dataclass(frozen=True)
class FaultSpec:
    """Injected faults, parsed from a comma-separated spec (empty = none).

    Grammar (``N`` counts ``benchmark_model`` invocations on the server, from 1)::

        drop-after=N   drop the TCP connection during run N's output (after its first
                       "Running benchmark" line); the client sees a broken pipe / EOF
        hang-once      = hang-after=1
        hang-after=N   run N prints its first "Running benchmark" line, then goes silent for
                       hang-s seconds (the stream stays open); it then finishes normally,
                       unless the client went away meanwhile
        hang-s=S       length of a hang (default 600)
        crash-once     = crash-after=1
        crash-after=N  run N prints its first "Running benchmark" line, then
                       "Segmentation fault" on stderr, exit status 139
        fail-always    every run fails after warm-up: "ERROR: Node number 0 (OP) failed to
                       invoke." and "ERROR: Benchmarking failed.", exit status 1
        slow=S         sleep S seconds before every message the device sends
        temp=MC        thermal zones start at MC millidegrees (CPU zones exactly; others scaled);
                       without temp-decay the phone stays at least that hot
        temp-decay=C   the forced excess falls by C degrees per idle second (linear)

    Example: ``drop-after=2,hang-once,slow=0.2,temp=48000,temp-decay=5,crash-once,fail-always``.
    """

    drop_after: int | None = None
    hang_after: int | None = None
    hang_s: float = 600.0
    crash_after: int | None = None
    fail_always: bool = False
    slow_s: float = 0.0
    temp_mc: int | None = None
    temp_decay_c_per_s: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        kw: dict = {}
        ints = {"drop-after": "drop_after", "hang-after": "hang_after", "crash-after": "crash_after",
                "temp": "temp_mc"}
        floats = {"hang-s": "hang_s", "slow": "slow_s", "temp-decay": "temp_decay_c_per_s"}
        flags = {"hang-once": ("hang_after", 1), "crash-once": ("crash_after", 1),
                 "fail-always": ("fail_always", True)}
        for token in [t.strip() for t in (text or "").split(",") if t.strip()]:
            key, eq, value = token.partition("=")
            try:
                if key in flags and not eq:
                    kw[flags[key][0]] = flags[key][1]
                elif key in ints and eq:
                    kw[ints[key]] = int(value)
                elif key in floats and eq:
                    kw[floats[key]] = float(value)
                else:
                    raise KeyError(key)
            except (KeyError, ValueError):
                known = sorted([f"{k}=N" for k in ints] + [f"{k}=S" for k in floats] + list(flags))
                raise DeviceError(
                    f"bad fault {token!r}: expected comma-separated items from {known}, "
                    "e.g. 'drop-after=2,slow=0.1'"
                ) from None
        spec = cls(**kw)
        for name in ("drop_after", "hang_after", "crash_after"):
            if getattr(spec, name) is not None and getattr(spec, name) < 1:
                raise DeviceError(f"fault {name.replace('_', '-')} must be >= 1, got {getattr(spec, name)}")
        if spec.slow_s < 0 or spec.hang_s < 0 or (spec.temp_decay_c_per_s or 0) < 0:
            raise DeviceError("fault durations and rates must be >= 0")
        if spec.temp_mc is not None and not 1000 <= spec.temp_mc < 150_000:
            raise DeviceError(
                f"fault temp is in millidegrees Celsius (e.g. temp=48000 for 48 C), got {spec.temp_mc}"
            )
        return spec

    def __str__(self) -> str:
        default = FaultSpec()
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                name = {"drop_after": "drop-after", "hang_after": "hang-after", "crash_after": "crash-after",
                        "hang_s": "hang-s", "slow_s": "slow", "temp_mc": "temp",
                        "temp_decay_c_per_s": "temp-decay"}.get(f.name)
                parts.append("fail-always" if f.name == "fail_always" else f"{name}={value}")
        return ",".join(parts)

    def benchmark_fault(self, n: int) -> str | None:
        """The fault for the ``n``-th benchmark run: crash, hang, drop, fail or None."""
        if self.crash_after == n:
            return "crash"
        if self.hang_after == n:
            return "hang"
        if self.drop_after == n:
            return "drop"
        return "fail" if self.fail_always else None
