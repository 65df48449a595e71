"""The Android device agent: TFLite ``benchmark_model`` on a phone over adb.

``AndroidDevice`` implements the ``Device`` protocol for one phone described by a profile
(``data/devices/<name>.yaml``). ``prepare`` pushes ``benchmark_model`` (if absent) and the model
(unless the phone already holds a file with the same sha256); ``benchmark`` waits for the phone to
cool down, runs ``taskset MASK benchmark_model --graph=... --num_threads=N --warmup_runs=W
--warmup_min_secs=S --num_runs=R --min_secs=.. --max_secs=.. [--use_gpu=true|--use_nnapi=true]``,
parses its output strictly (``android/parse.py``) and records temperatures and frequencies before and
after. Dropped connections are closed, reopened and retried (``retries`` attempts in all), then
reported as one clear ``DeviceError``.

What a Measurement from ``benchmark_model`` holds (the tool prints statistics, never per-run
samples, so ``samples_ms`` stays empty and nothing is invented):

* ``median_ms``: the tool's ``median=`` when printed (newer builds), else its ``avg=`` (recorded as
  ``extra["median_from"] = "avg"``);
* ``p10_ms``/``p90_ms``: the tool's ``p5``/``p95`` when printed, else ``min``/``max``: in both cases
  outer bounds of the true p10/p90, recorded as ``extra["p10_p90_from"]``;
* ``mean_ms``/``std_ms``/``runs``/``warmup_runs``: ``avg``/``std``/``count`` of the timed runs and the
  warm-up ``count``; ``cv = std / avg`` drives the shared re-measure rule (one more run if above
  ``cv_threshold``; the steadier round is kept);
* ``env``: phone model, SoC, ABI, SDK, serial, threads, taskset mask, delegate, CPU frequencies and
  temperatures (a snapshot, plus before/after the run and the cool-down wait), the command line,
  and ``runtime_version`` = the sha256 prefix of the ``benchmark_model`` binary (the tool has no
  version flag).

The profile (``data/devices/<name>.yaml``) is loaded and checked by ``android/profile.py``, whose
docstring documents its schema.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from latkit.devices.android.adb import AdbLink, LinkError, ensure_adb_key, key_path_from
from latkit.devices.android.lock import PhoneLock
from latkit.devices.android.parse import BenchmarkFlagError, BenchmarkResult, parse_benchmark_output
from latkit.devices.android.profile import AndroidProfile, load_profile
from latkit.devices.android.text import Glob, excerpt
from latkit.devices.base import DeviceUnreachableError, Measurement, ProtocolSettings, environment_base
from latkit.devices.precision import detect_precision
from latkit.errors import DeviceError, ParseError
from latkit.fileio import sha256_file

T = TypeVar("T")
DELEGATE_FLAGS = {"cpu": [], "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"]}
RUNTIME = "tflite benchmark_model"
__all__ = ["AndroidDevice", "AndroidProfile", "load_profile", "measurement_from_result"]

# ---------------------------------------------------------------------------------------------
# Measurement from benchmark_model's statistics
# ---------------------------------------------------------------------------------------------


#: where benchmark_model usually is on a phone (TFLite's docs push it to /data/local/tmp)
USUAL_BENCHMARK_MODEL_PATHS = ("/data/local/tmp/latkit/benchmark_model", "/data/local/tmp/benchmark_model")


def measurement_from_result(r: BenchmarkResult, env: dict[str, Any],
                            settings: ProtocolSettings) -> Measurement:
    """A ``Measurement`` from one parsed run, following the rules in the module docstring."""
    s = r.stats
    has_pct = s.median_us is not None
    extra = {
        "stats_source": "benchmark_model",
        "median_from": "median" if has_pct else "avg",
        "p10_p90_from": "p5/p95 (outer bounds of p10/p90)" if has_pct
        else "min/max (outer bounds of p10/p90)",
        "min_ms": s.min_us / 1e3, "max_ms": s.max_us / 1e3,
        "p5_ms": s.p5_us / 1e3 if has_pct else None,
        "p95_ms": s.p95_us / 1e3 if has_pct else None,
        "init_ms": r.init_us / 1e3,
        "first_inference_ms": r.first_us / 1e3 if r.first_us is not None else None,
        "warmup_avg_ms": r.warmup_avg_us / 1e3 if r.warmup_avg_us is not None else None,
        "summary_format": r.summary_format, "all_same": s.all_same,
        "tool_warnings": list(r.warnings),
    }
    return Measurement(
        median_ms=(s.median_us if has_pct else s.avg_us) / 1e3,
        p10_ms=(s.p5_us if has_pct else s.min_us) / 1e3,
        p90_ms=(s.p95_us if has_pct else s.max_us) / 1e3,
        mean_ms=s.avg_us / 1e3, std_ms=s.std_us / 1e3, cv=s.cv, runs=s.count,
        warmup_runs=r.warmup_stats.count if r.warmup_stats else 0,
        samples_ms=[], env=dict(env), extra=extra,
        # benchmark_model times single runs: loops per sample do not apply on a phone
        protocol=dataclasses.replace(settings, min_sample_ms=0.0).to_dict(),
    )


# ---------------------------------------------------------------------------------------------
# The device
# ---------------------------------------------------------------------------------------------


def _mask_of(affinity: Any) -> str:
    if isinstance(affinity, str):
        text = affinity.strip().lower().removeprefix("0x")
        if re.fullmatch(r"[0-9a-f]+", text) and int(text, 16):
            return format(int(text, 16), "x")
    elif isinstance(affinity, int) and not isinstance(affinity, bool) and affinity > 0:
        return format(affinity, "x")
    elif isinstance(affinity, (list, tuple, set)) and affinity and all(
            isinstance(c, int) and 0 <= c < 64 for c in affinity):
        return format(sum(1 << c for c in set(affinity)), "x")
    raise DeviceError(f"affinity must be a non-zero hex CPU mask such as '70' (or a list of CPU "
                      f"ids), got {affinity!r}")


class AndroidDevice:
    """One phone over adb, measured with ``benchmark_model`` (see the module docstring)."""

    formats = ("tflite",)

    def __init__(self, profile: AndroidProfile, *, serial: str | None = None,
                 delegate: str | None = None, threads: int | None = None, affinity: Any = None,
                 key_path: str | Path | None = None, protocol: ProtocolSettings | None = None,
                 lock_timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.profile = profile
        self.name = profile.name
        self.serial = serial or profile.serial or os.environ.get("ANDROID_SERIAL")
        if not self.serial:
            raise DeviceError(f"{self.name}: no adb serial; pass --serial HOST:PORT (adb over TCP) "
                              f"or a USB serial, or set connection.serial in {profile.source}")
        self.delegate = delegate or profile.delegate
        if self.delegate not in profile.delegates:
            raise DeviceError(f"{self.name}: delegate {self.delegate!r} is not offered; choose one "
                              f"of {', '.join(profile.delegates)}")
        self.threads = int(threads if threads is not None else profile.threads)
        if self.threads < 1:
            raise DeviceError(f"{self.name}: threads must be >= 1, got {self.threads}")
        self.taskset_mask = _mask_of(affinity) if affinity is not None else profile.taskset_mask
        if protocol is not None and not isinstance(protocol, ProtocolSettings):
            raise DeviceError(f"protocol must be a ProtocolSettings, got {type(protocol).__name__}")
        self.protocol = protocol or profile.protocol
        self.key_path = key_path_from(key_path)
        self.retries = profile.retries
        self.lock_timeout = lock_timeout  # seconds to queue for the phone (None: lock.DEFAULT_LOCK_TIMEOUT_S)
        self._clock, self._sleep = clock, sleep
        self._link: AdbLink | None = None
        self.notes: list[str] = []
        self._pushed: list[str] = []  # remote files this device pushed, for cleanup()
        self._created_dir = False
        self._zones: dict[str, str] | None = None  # temp file -> zone type
        self._freq_paths: list[str] | None = None
        self._bm_sha: str | None = None
        self._bm_path: str | None = None  # where benchmark_model was found on the phone
        self._info: dict[str, str] | None = None
        self.pushes = 0

    @classmethod
    def from_profile(cls, name: str | Path, serial: str | None = None,
                     delegate: str | None = None, threads: int | None = None,
                     affinity: Any = None, key_path: str | Path | None = None,
                     protocol: ProtocolSettings | None = None,
                     lock_timeout: float | None = None) -> AndroidDevice:
        """The device for profile ``name`` (registry name or YAML path), with overrides."""
        return cls(load_profile(name), serial=serial, delegate=delegate, threads=threads,
                   affinity=affinity, key_path=key_path, protocol=protocol, lock_timeout=lock_timeout)

    # --- link and retries ---------------------------------------------------------------------
    @property
    def link(self) -> AdbLink:
        if self._link is None:
            signer, notes = ensure_adb_key(self.key_path)
            self.notes.extend(notes)
            self._link = AdbLink(self.serial, signer, connect_timeout_s=self.profile.timeouts.connect_s,
                                 auth_timeout_s=self.profile.auth_timeout_s)
        return self._link

    def _attempt(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` with up to ``retries`` attempts; a link failure closes and reconnects first."""
        last: LinkError | None = None
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except LinkError as exc:
                last = exc
                self.link.close()
                if attempt < self.retries:
                    self._sleep(min(2.0, 0.25 * attempt))
        raise DeviceUnreachableError(f"{self.name} at {self.serial}: {what} failed after {self.retries} "
                          f"attempt{'s' if self.retries > 1 else ''}: {last}; check the cable / "
                          f"`adb devices`")

    def _sh(self, *commands: list[str], timeout_s: float | None = None) -> tuple[str, int]:
        return self.link.shell(*commands, timeout_s=timeout_s or self.profile.timeouts.command_s)

    def _sh_ok(self, *commands: list[str], what: str) -> str:
        out, rc = self._sh(*commands)
        if rc != 0:
            raise DeviceError(f"{self.name}: {what} failed (exit {rc}): {excerpt(out, 200)}")
        return out

    # --- reading the phone --------------------------------------------------------------------
    def _expand(self, patterns: tuple[str, ...] | list[str]) -> list[str]:
        out, _ = self._sh(["ls", "-d", *[Glob(p) for p in patterns]])  # the phone expands them
        return sorted({ln.strip() for ln in out.splitlines() if ln.strip().startswith("/")})

    def _read_files(self, paths: list[str]) -> dict[str, str | None]:
        """Contents (stripped) of small files, None where unreadable; one round trip."""
        if not paths:
            return {}
        commands: list[list[str]] = []
        for p in paths:
            commands += [["echo", f"@@{p}"], ["cat", p]]
        out, _ = self._sh(*commands)
        values: dict[str, list[str]] = {}
        current = None
        for line in out.splitlines():
            if line.startswith("@@") and line[2:] in paths:
                current = line[2:]
                values[current] = []
            elif current is not None and not line.startswith("cat: "):
                values[current].append(line)
        return {p: ("\n".join(values[p]).strip() or None) if p in values else None for p in paths}

    def _thermal_zones(self) -> dict[str, str]:
        if self._zones is None:
            temps = self._expand(self.profile.thermal.zones)
            types = self._read_files([posixpath.join(posixpath.dirname(t), "type") for t in temps])
            zones = {t: (types.get(posixpath.join(posixpath.dirname(t), "type"))
                         or posixpath.basename(posixpath.dirname(t))) for t in temps}
            wanted = set(self.profile.thermal.zone_types)
            if wanted:
                kept = {t: z for t, z in zones.items() if z in wanted}
                if not kept and zones:
                    self.notes.append(f"no thermal zone of types {sorted(wanted)}; using all "
                                      f"{len(zones)} zones")
                zones = kept or zones
            self._zones = zones
        return self._zones

    def temperatures_c(self) -> dict[str, float]:
        """Zone type -> degrees C (millidegree files converted), readable zones only."""
        zones = self._thermal_zones()
        out: dict[str, float] = {}
        for path, value in self._read_files(list(zones)).items():
            if value is not None and re.fullmatch(r"-?\d+", value):
                v = int(value)
                key = zones[path] if zones[path] not in out else f"{zones[path]}@{path}"
                out[key] = v / 1000.0 if abs(v) > 200 else float(v)
        return out

    def frequencies_khz(self) -> dict[str, int]:
        if self._freq_paths is None:
            self._freq_paths = self._expand([self.profile.frequencies])
        paths = self._freq_paths
        out: dict[str, int] = {}
        for path, value in self._read_files(paths).items():
            m = re.search(r"/(cpu\d+)/", path)
            if m and value is not None and value.isdigit():
                out[m.group(1)] = int(value)
        return dict(sorted(out.items(), key=lambda kv: int(kv[0][3:])))

    def _device_info(self) -> dict[str, str]:
        if self._info is None:
            props = ("ro.product.model", "ro.product.cpu.abi", "ro.build.version.sdk",
                     "ro.build.version.release")
            out = self._sh_ok(*[["getprop", p] for p in props], what="getprop")
            lines = out.splitlines() + [""] * len(props)
            self._info = {k: lines[i].strip() for i, k in
                          enumerate(("model", "abi", "sdk", "release"))}
        return self._info

    def _remote_sha256(self, remote: str) -> str | None:
        out, rc = self._sh(["sha256sum", remote])
        m = re.match(r"^([0-9a-f]{64})\s", out.strip())
        return m.group(1) if rc == 0 and m else None

    # --- prepare ------------------------------------------------------------------------------
    def _local_benchmark_model(self) -> Path | None:
        local = self.profile.benchmark_local_path or os.environ.get("LATKIT_BENCHMARK_MODEL")
        if not local:
            return None
        path = Path(local).expanduser()
        if not path.is_file():
            raise DeviceError(f"{self.name}: benchmark_model {path} (from benchmark_model.local_path "
                              f"or LATKIT_BENCHMARK_MODEL) does not exist")
        return path

    def _push(self, local: Path, remote: str, mode: int) -> None:
        self.link.push(local, remote, mode, timeout_s=self.profile.timeouts.push_s)
        self.pushes += 1
        if remote not in self._pushed:
            self._pushed.append(remote)

    def _ensure_remote_dir(self) -> None:
        d = self.profile.remote_dir
        _, rc = self._sh(["test", "-d", d])
        if rc != 0:
            self._sh_ok(["mkdir", "-p", d], what=f"mkdir -p {d}")
            self._created_dir = True

    def find_benchmark_model(self) -> str | None:
        """The phone's benchmark_model: the profile's ``remote_path``, else the usual places
        (``USUAL_BENCHMARK_MODEL_PATHS``, then ``which benchmark_model``); None if none is there."""
        for path in dict.fromkeys((self.profile.benchmark_remote_path, *USUAL_BENCHMARK_MODEL_PATHS)):
            _, rc = self._sh(["test", "-x", path])
            if rc == 0:
                return path
        out, rc = self._sh(["which", "benchmark_model"])
        line = out.strip().splitlines()[0].strip() if out.strip() else ""
        return line if rc == 0 and line.startswith("/") else None

    def _ensure_benchmark_model(self) -> None:
        remote = self.profile.benchmark_remote_path
        local = self._local_benchmark_model()
        if local is None:
            found = self._bm_path or self.find_benchmark_model()
            if found is None:
                raise DeviceError(
                    f"{self.name}: benchmark_model is not on the phone at {remote} (nor at "
                    f"{', '.join(USUAL_BENCHMARK_MODEL_PATHS)} or on PATH); install it with `lat device "
                    f"add NAME --serial {self.serial} --benchmark-model PATH`, or set "
                    f"LATKIT_BENCHMARK_MODEL=/path/to/benchmark_model (an android_aarch64 build of "
                    f"TFLite's benchmark tool) or benchmark_model.local_path in {self.profile.source}"
                )
            if found != remote and found != self._bm_path:
                self.notes.append(f"benchmark_model found at {found} (profile says {remote})")
            self._bm_path = found
            self._bm_sha = self._bm_sha or self._remote_sha256(found)
            return
        _, rc = self._sh(["test", "-x", remote])
        want = sha256_file(local)
        if rc != 0 or self._remote_sha256(remote) != want:
            self._push(local, remote, 0o755)
            self._sh_ok(["chmod", "755", remote], what=f"chmod 755 {remote}")
        self._bm_sha, self._bm_path = want, remote

    def prepare(self, artifact: str | Path) -> dict[str, Any]:
        """Push benchmark_model if needed and the model unless the phone has it (same sha256)."""
        path = Path(artifact)
        if not path.is_file():
            raise DeviceError(f"{self.name}: artifact {path} does not exist; export one with "
                              f"`lat export`")
        if path.suffix.lower() != ".tflite":
            raise DeviceError(f"{self.name}: runs .tflite files, got {path.name!r}; export with "
                              f"--format tflite (or use --device cpu for .onnx)")
        sha = sha256_file(path)
        remote = posixpath.join(self.profile.remote_dir, path.name)
        try:
            precision = detect_precision(path)
        except DeviceError:  # no LiteRT on this host to read it with: the phone still runs it
            precision = None

        def run() -> dict[str, Any]:
            self._ensure_remote_dir()
            self._ensure_benchmark_model()
            pushed = False
            if self._remote_sha256(remote) != sha:
                self._push(path, remote, 0o644)
                if self._remote_sha256(remote) != sha:
                    raise LinkError(f"{remote} on the phone does not match {path.name} after the "
                                    f"push (sha256 differs)")
                pushed = True
            return {"artifact": str(path), "sha256": sha, "remote": remote, "pushed": pushed,
                    "precision": precision}

        return self._attempt(f"preparing {path.name}", run)

    # --- benchmark ----------------------------------------------------------------------------
    def _cool_down(self) -> dict[str, Any]:
        """Wait (bounded) until the hottest zone is below the limit; see ``thermal.on_hot``."""
        th = self.profile.thermal
        start = self._clock()
        temps = self.temperatures_c()
        if not temps:
            return {"temperatures_before_c": {}, "cooldown_waited_s": 0.0,
                    "thermal_gate": "no readable thermal zone"}
        while max(temps.values()) > th.limit_c:
            waited = self._clock() - start
            if waited >= th.cooldown_max_s:
                hottest = max(temps.values())
                if th.on_hot == "wait_then_measure":
                    return {"temperatures_before_c": temps, "cooldown_waited_s": waited,
                            "thermal_gate": f"hot: {hottest:.1f} C > {th.limit_c:g} C after "
                                            f"{waited:.0f} s, measured anyway"}
                raise DeviceError(
                    f"{self.name}: still {hottest:.1f} C (limit {th.limit_c:g} C) after waiting "
                    f"{waited:.0f} s to cool down; let the phone rest (screen off, off the charger) "
                    f"or raise thermal.cooldown_max_s / set thermal.on_hot: wait_then_measure in "
                    f"{self.profile.source}"
                )
            self._sleep(min(th.poll_s, max(0.0, th.cooldown_max_s - waited)))
            temps = self.temperatures_c()
        return {"temperatures_before_c": temps, "cooldown_waited_s": self._clock() - start,
                "thermal_gate": "ok"}

    def benchmark_command(self, remote_model: str, settings: ProtocolSettings) -> list[str]:
        """The argument list run on the phone for one benchmark."""
        return [
            "taskset", self.taskset_mask, self._bm_path or self.profile.benchmark_remote_path,
            f"--graph={remote_model}", f"--num_threads={self.threads}",
            f"--warmup_runs={settings.warmup_runs}", f"--warmup_min_secs={settings.warmup_s:g}",
            f"--num_runs={settings.min_runs}", f"--min_secs={settings.min_time_s:g}",
            f"--max_secs={settings.max_time_s:g}", *DELEGATE_FLAGS[self.delegate],
        ]

    def _run_once(self, remote_model: str, settings: ProtocolSettings) -> tuple[BenchmarkResult, dict]:
        argv = self.benchmark_command(remote_model, settings)
        timeout_s = 2 * settings.max_time_s + self.profile.timeouts.benchmark_extra_s
        gate = self._cool_down()
        freqs_before = self.frequencies_khz()
        out, rc = self._sh(argv, timeout_s=timeout_s)
        try:
            result = parse_benchmark_output(out)
        except BenchmarkFlagError as exc:
            raise BenchmarkFlagError(f"{self.name}: {exc}", exc.flags) from None
        except ParseError as exc:
            raise type(exc)(f"{self.name} ({self.serial}), exit {rc}: {exc}") from None
        if rc != 0:
            raise DeviceError(f"{self.name}: benchmark_model exited with status {rc} after a "
                              f"complete report: {excerpt(out[-400:], 200)}")
        if result.graph is not None and result.graph != remote_model:
            raise DeviceError(f"{self.name}: benchmark_model ran {result.graph}, asked for "
                              f"{remote_model}")
        if result.num_threads is not None and result.num_threads != self.threads:
            raise DeviceError(f"{self.name}: benchmark_model reports {result.num_threads} threads, "
                              f"asked for {self.threads}")
        after = {"temperatures_after_c": self.temperatures_c(),
                 "frequencies_after_khz": self.frequencies_khz()}
        return result, {**gate, "frequencies_before_khz": freqs_before, **after,
                        "command": " ".join(argv)}

    @property
    def lock_marker(self) -> str:
        """The file on the phone naming the latkit process that measures on it right now."""
        return posixpath.join(self.profile.remote_dir, "lock")

    def _mark_phone(self, text: str) -> None:
        """Write ``lock_marker`` (best effort: a phone that refuses it still gets measured)."""
        def run() -> None:
            self._ensure_remote_dir()
            with tempfile.TemporaryDirectory(prefix="latkit-lock-") as tmp:
                local = Path(tmp) / "lock"
                local.write_text(text + "\n")  # a private temporary file, pushed then deleted
                self.link.push(local, self.lock_marker, 0o644, timeout_s=self.profile.timeouts.push_s)

        try:
            self._attempt("marking the phone as in use", run)
        except DeviceError as exc:
            self.notes.append(f"lock marker not written: {excerpt(str(exc), 120)}")

    def _unmark_phone(self) -> None:
        try:
            self._sh(["rm", "-f", self.lock_marker])
        except LinkError:
            pass  # the next holder overwrites it

    def benchmark(self, artifact: str | Path,
                  settings: ProtocolSettings | None = None) -> Measurement:
        """Measure ``artifact`` with benchmark_model under the shared protocol (see docstring), alone
        on the phone: the host-wide ``PhoneLock`` of its serial is held for the whole measurement,
        with a marker on the phone (``lock_marker``)."""
        if settings is not None and not isinstance(settings, ProtocolSettings):
            raise DeviceError(f"settings must be a ProtocolSettings, got {type(settings).__name__}")
        lock = PhoneLock(self.serial, self.lock_timeout)
        with lock:
            acquired = time.time()
            self._mark_phone(lock.text)
            try:
                m = self._benchmark_alone(artifact, settings or self.protocol)
            finally:
                self._unmark_phone()
                held = time.time() - acquired
        m.env.update(lock_waited_s=round(lock.waited_s, 3), lock_acquired_unix=round(acquired, 3),
                     lock_held_s=round(held, 3), lock_file=str(lock.path), lock_marker=self.lock_marker)
        return m

    def _benchmark_alone(self, artifact: str | Path, settings: ProtocolSettings) -> Measurement:
        handle = self.prepare(artifact)
        env = self.environment()
        env.update(artifact=handle["artifact"], artifact_sha256=handle["sha256"],
                   remote_artifact=handle["remote"], model_pushed=handle["pushed"],
                   precision=handle.get("precision"))

        def measure() -> Measurement:
            result, snap = self._run_once(handle["remote"], settings)
            return measurement_from_result(result, {**env, **snap}, settings)

        first = self._attempt(f"benchmarking {Path(artifact).name}", measure)
        if not (settings.remeasure_on_high_cv and first.cv > settings.cv_threshold):
            return first
        second = self._attempt(f"benchmarking {Path(artifact).name} again (cv "
                               f"{first.cv:.3f})", measure)
        kept = second if second.cv <= first.cv else first
        kept.remeasured, kept.first_round_cv = True, first.cv
        return kept

    # --- environment, check, cleanup, close ---------------------------------------------------
    def environment(self) -> dict[str, Any]:
        def snap() -> dict[str, Any]:
            info = self._device_info()
            if self._bm_sha is None:
                self._bm_path = self._bm_path or self.find_benchmark_model()
                if self._bm_path:
                    self._bm_sha = self._remote_sha256(self._bm_path)
            return {"info": info, "temperatures_c": self.temperatures_c(),
                    "frequencies_khz": self.frequencies_khz()}

        s = self._attempt("reading the phone's state", snap)
        bm = self._bm_sha
        return environment_base(
            self.name, model=s["info"]["model"] or self.profile.model, soc=self.profile.soc,
            abi=s["info"]["abi"], sdk=s["info"]["sdk"], android_release=s["info"]["release"],
            serial=self.serial, runtime=RUNTIME,
            runtime_version=f"sha256:{bm[:16]}" if bm else "unknown",
            benchmark_model_sha256=bm, threads=self.threads, taskset_mask=self.taskset_mask,
            affinity_mask=self.taskset_mask, delegate=self.delegate,
            frequencies_khz=s["frequencies_khz"], temperatures_c=s["temperatures_c"],
            thermal_limit_c=self.profile.thermal.limit_c, profile=self.profile.source,
            notes=list(self.notes),
        )

    def check(self) -> dict[str, Any]:
        """What ``lat device check`` prints: the phone, its state and whether the tool is there."""
        def run() -> dict[str, Any]:
            info = self._device_info()
            found = self.find_benchmark_model()
            return {
                "device": self.name, "serial": self.serial, "model": info["model"],
                "abi": info["abi"], "sdk": info["sdk"], "release": info["release"],
                "frequencies_khz": self.frequencies_khz(), "temperatures_c": self.temperatures_c(),
                "thermal_limit_c": self.profile.thermal.limit_c,
                "benchmark_model": found or self.profile.benchmark_remote_path,
                "benchmark_model_present": found is not None,
            }

        return self._attempt("checking the phone", run)

    def cleanup(self) -> list[str]:
        """Remove the files this device pushed (and the remote dir if it created it)."""
        pushed = list(self._pushed)
        if not pushed and not self._created_dir:
            return []

        def run() -> None:
            if pushed:
                self._sh_ok(["rm", "-f", *pushed], what="removing pushed files")
            if self._created_dir:
                self._sh(["rmdir", self.profile.remote_dir])  # only if now empty

        self._attempt("cleaning up", run)
        self._pushed.clear()
        self._created_dir = False
        return pushed

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def __enter__(self) -> AndroidDevice:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AndroidDevice({self.name!r}, serial={self.serial!r}, delegate={self.delegate!r}, "
                f"threads={self.threads}, mask={self.taskset_mask!r})")

