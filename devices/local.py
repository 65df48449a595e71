"""Devices that run on this machine's CPU: onnxruntime (``cpu``) and LiteRT/XNNPACK (``cpu-tflite``).

Both follow the shared protocol of ``devices/base.py``. What they add is the discipline that makes a
CPU figure repeatable:

- one intra-op thread and one inter-op thread by default, sequential execution;
- an optional CPU affinity (a list of CPU ids or a taskset-style hex mask such as ``"3"`` or
  ``"0x3"``), applied to every thread of the measuring process for the duration of the measurement
  and restored afterwards;
- a seeded random input of the model's declared input shape and dtype, set once;
- prepared sessions cached by artifact sha256, so re-benchmarking the same file does not reload it;
- an environment snapshot recorded in every ``Measurement``: runtime and version, threads, affinity
  mask, provider or delegate, graph optimisation level, CPU model, current frequencies and
  temperatures where readable, and the artifact's sha256 (plus ``environment_base``).

The runtimes are imported lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from latkit.devices.base import (
    Measurement,
    ProtocolSettings,
    environment_base,
    file_sha256,
    measure_with_protocol,
)
from latkit.errors import DeviceError

#: which local device runs which file extension (used to name the right device in errors)
DEVICE_FOR_SUFFIX = {".onnx": "cpu", ".tflite": "cpu-tflite"}

#: onnxruntime graph optimisation levels by their short names
GRAPH_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}


# --- small helpers shared with the cuda device -----------------------------------------------------


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened: runtime errors can be pages long."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_artifact(device: str, artifact: "str | Path", suffix: str) -> Path:
    """The artifact as an existing file with the extension ``device`` runs, else a ``DeviceError``."""
    path = Path(artifact)
    if not path.exists():
        raise DeviceError(f"{device}: artifact {path} does not exist; export one with `lat export`")
    if not path.is_file():
        raise DeviceError(f"{device}: artifact {path} is not a file")
    if path.suffix.lower() != suffix:
        right = DEVICE_FOR_SUFFIX.get(path.suffix.lower())
        hint = f"; run it with --device {right}" if right else ""
        raise DeviceError(
            f"{device}: runs {suffix} files, got {path.name!r}{hint}"
        )
    return path


def parse_affinity(affinity: "str | int | Iterable[int] | None") -> tuple[int, ...] | None:
    """CPU ids from a taskset-style hex mask (``"f0"``, ``"0x3"``), an int mask, or a list of ids."""
    if affinity is None:
        return None
    if isinstance(affinity, str):
        text = affinity.strip().lower()
        digits = text[2:] if text.startswith("0x") else text
        try:
            mask = int(digits, 16)
        except ValueError:
            raise DeviceError(
                f"affinity must be a hex CPU mask such as '3' or '0xf0' (or a list of CPU ids), "
                f"got {affinity!r}"
            ) from None
        cpus = tuple(i for i in range(mask.bit_length()) if mask >> i & 1)
    elif isinstance(affinity, int):
        cpus = tuple(i for i in range(affinity.bit_length()) if affinity >> i & 1)
    else:
        try:
            cpus = tuple(sorted({int(c) for c in affinity}))
        except (TypeError, ValueError):
            raise DeviceError(f"affinity must be a list of CPU ids or a hex mask, got {affinity!r}") from None
        if any(c < 0 for c in cpus):
            raise DeviceError(f"affinity CPU ids must be >= 0, got {list(cpus)}")
    if not cpus:
        raise DeviceError(f"affinity {affinity!r} selects no CPU; give a non-zero mask such as '1'")
    allowed = _allowed_cpus()
    if allowed is not None and not set(cpus) <= allowed:
        raise DeviceError(
            f"affinity {affinity!r} names CPUs {sorted(set(cpus) - allowed)} that this process may not "
            f"use (allowed: {sorted(allowed)}, mask {cpu_mask(allowed)})"
        )
    return cpus


def cpu_mask(cpus: Iterable[int]) -> str:
    """A taskset-style hex mask without ``0x``: CPUs 4, 5, 6 -> ``"70"``."""
    return format(sum(1 << c for c in set(cpus)), "x")


def _allowed_cpus() -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    return set(getter(0)) if getter else None


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Restrict every thread of this process to ``cpus`` for the block; restore the old masks after."""
    if cpus is None:
        yield
        return
    if not hasattr(os, "sched_setaffinity"):
        raise DeviceError("CPU affinity needs Linux (os.sched_setaffinity); drop --affinity")
    saved: dict[int, set[int]] = {}
    try:
        for tid in _thread_ids():
            try:
                saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:  # the thread ended meanwhile
                saved.pop(tid, None)
            except OSError as exc:
                raise DeviceError(f"cannot pin to CPUs {list(cpus)}: {exc.strerror}") from None
        yield
    finally:
        for tid, old in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, old)


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # the calling thread only


def _read(path: "str | Path") -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in info.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    import platform

    return platform.processor() or platform.machine()


def _cpu_freqs_mhz(cpus: Iterable[int]) -> dict[str, float]:
    """Current frequency per CPU: cpufreq's ``scaling_cur_freq`` (kHz) else /proc/cpuinfo's MHz."""
    freqs: dict[str, float] = {}
    for c in cpus:
        khz = _read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq")
        if khz and khz.isdigit():
            freqs[str(c)] = int(khz) / 1000.0
    if freqs:
        return freqs
    wanted = {str(c) for c in cpus}
    current = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "processor":
            current = value.strip()
        elif name.strip() == "cpu MHz" and current in wanted:
            with contextlib.suppress(ValueError):
                freqs[current] = round(float(value), 1)
    return freqs


def _temperatures_c() -> dict[str, float]:
    temps: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        raw, kind = _read(zone / "temp"), _read(zone / "type") or zone.name
        if raw and raw.lstrip("-").isdigit():
            temps[kind] = int(raw) / 1000.0
    return temps


def host_snapshot(cpus: Sequence[int] | None) -> dict[str, Any]:
    """CPU model, affinity mask, current frequencies/temperatures where readable, and the load."""
    pinned_cpus = list(cpus) if cpus is not None else sorted(_allowed_cpus() or range(os.cpu_count() or 1))
    return {
        "cpu_model": _cpu_model(),
        "affinity_mask": cpu_mask(pinned_cpus),
        "affinity_cpus": pinned_cpus,
        "affinity_pinned": cpus is not None,
        "cpu_freq_mhz": _cpu_freqs_mhz(pinned_cpus),
        "temperatures_c": _temperatures_c(),
        "load_avg": _load_avg(),
        "cpu_count": os.cpu_count(),
    }


def _load_avg() -> list[float] | None:
    """1-, 5- and 15-minute load averages: above the CPU count, other processes compete for the CPUs."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def resolve_shape(device: str, name: str, shape: Sequence[Any], batch: int | None) -> tuple[int, ...]:
    """A concrete input shape: dynamic axis 0 becomes ``batch`` (default 1); others must be fixed."""
    dims: list[int] = []
    for axis, dim in enumerate(shape):
        fixed = isinstance(dim, int) and dim > 0
        if axis == 0 and fixed and batch is not None and batch != dim:
            raise DeviceError(
                f"{device}: input {name!r} has a fixed batch dimension of {dim} but batch {batch} was "
                f"asked; export the model with --batch {batch} (or a dynamic batch axis)"
            )
        if fixed:
            dims.append(int(dim))
        elif axis == 0:
            dims.append(batch or 1)
        else:
            raise DeviceError(
                f"{device}: input {name!r} has a dynamic dimension {dim!r} at axis {axis} (shape "
                f"{list(shape)}); export the model with a fixed input shape"
            )
    return tuple(dims)


def random_input(shape: Sequence[int], dtype: Any, rng: Any) -> Any:
    """A seeded random array: standard normal for floats, small values for integers, coin flips for bool."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -8), min(info.max, 8) + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise DeviceError(f"cannot make a random input of dtype {dtype}")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Discard what native code writes to file descriptor 2 during the block (runtime INFO chatter)."""
    import sys

    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def protocol_or_default(protocol: ProtocolSettings | None) -> ProtocolSettings:
    if protocol is not None and not isinstance(protocol, ProtocolSettings):
        raise DeviceError(f"protocol must be a ProtocolSettings, got {type(protocol).__name__}")
    return protocol or ProtocolSettings()


# --- prepared artifacts ----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A loaded artifact ready to time: ``run_once`` runs one inference on the fixed input."""

    path: Path
    sha256: str
    run_once: Callable[[], float | None]
    inputs: dict[str, list[int]]
    info: dict[str, Any] = field(default_factory=dict)
    handle: Any = None


class PreparedCache:
    """Prepared artifacts by sha256, least recently used evicted beyond ``size``."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise DeviceError(f"cache_size must be >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, sha: str, path: Path) -> Prepared | None:
        item = self._items.get(sha)
        if item is not None:
            self._items.move_to_end(sha)
            if item.path != path:
                item = replace(item, path=path)  # same bytes, another name
        return item

    def put(self, item: Prepared) -> Prepared:
        self._items[item.sha256] = item
        self._items.move_to_end(item.sha256)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return item

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class LocalDevice:
    """What the devices of this machine share: validation, caching, pinning, the measurement itself."""

    name = ""
    formats: tuple[str, ...] = ()
    suffix = ""

    def __init__(self, *, threads: int, affinity: Any, batch: int | None, seed: int,
                 protocol: ProtocolSettings | None, cache_size: int) -> None:
        if int(threads) < 1:
            raise DeviceError(f"{self.name}: threads must be >= 1, got {threads}")
        if batch is not None and int(batch) < 1:
            raise DeviceError(f"{self.name}: batch must be >= 1, got {batch}")
        self.threads = int(threads)
        self.cpus = parse_affinity(affinity)
        self.batch = int(batch) if batch is not None else None
        self.seed = int(seed)
        self.protocol = protocol_or_default(protocol)
        self._cache = PreparedCache(cache_size)

    def prepare(self, artifact: "str | Path") -> Prepared:
        path = check_artifact(self.name, artifact, self.suffix)
        sha = file_sha256(path)
        cached = self._cache.get(sha, path)
        if cached is not None:
            return cached
        item = self._load(path, sha)
        try:
            item.run_once()  # a model that loads but cannot run fails here, not mid-measurement
        except Exception as exc:  # noqa: BLE001 - the runtime's own error types vary by version
            raise DeviceError(f"{self.name}: {path.name} loaded but failed to run: {one_line(exc)}") from None
        return self._cache.put(item)

    def benchmark(self, artifact: "str | Path", settings: ProtocolSettings | None = None) -> Measurement:
        item = self.prepare(artifact)
        settings = protocol_or_default(settings or self.protocol)
        with pinned(self.cpus):
            env = self.environment()
            env.update(artifact=str(item.path), artifact_sha256=item.sha256,
                       input_shapes=item.inputs, **item.info)
            return measure_with_protocol(item.run_once, settings, env)

    def environment(self) -> dict[str, Any]:
        return environment_base(self.name, **self._runtime_env(), **host_snapshot(self.cpus))

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # subclasses fill these in
    def _load(self, path: Path, sha: str) -> Prepared:  # pragma: no cover
        raise NotImplementedError

    def _runtime_env(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


# --- onnxruntime on the CPU ------------------------------------------------------------------------


def onnx_dtype(type_name: str) -> str:
    """numpy dtype name of an onnxruntime type string such as ``tensor(float)``."""
    table = {
        "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
        "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
        "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
    }
    if type_name not in table:
        raise DeviceError(f"cannot feed an input of type {type_name}; supported: {', '.join(table)}")
    return table[type_name]


def graph_opt_level_name(level: "str | int | None") -> str:
    """The onnxruntime enum name of a level given as ``all``/``basic``/..., the enum name, or 0/1/2/99."""
    if level is None:
        return "ORT_ENABLE_ALL"
    by_int = {0: "ORT_DISABLE_ALL", 1: "ORT_ENABLE_BASIC", 2: "ORT_ENABLE_EXTENDED", 99: "ORT_ENABLE_ALL"}
    if isinstance(level, int) and level in by_int:
        return by_int[level]
    text = str(level).strip()
    if text.lower() in GRAPH_OPT_LEVELS:
        return GRAPH_OPT_LEVELS[text.lower()]
    if text.upper() in GRAPH_OPT_LEVELS.values():
        return text.upper()
    raise DeviceError(
        f"unknown graph optimisation level {level!r}; choose one of {', '.join(GRAPH_OPT_LEVELS)}"
    )


def ort_session(path: Path, device: str, *, threads: int, graph_opt_level: str, spinning: bool,
                providers: list[Any]) -> Any:
    """An onnxruntime session with steady settings; a file that is not a model -> ``DeviceError``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, graph_opt_level)
    so.log_severity_level = 3  # errors only: warnings would break the one-line CLI contract
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several pybind types
        raise DeviceError(
            f"{device}: {path.name} is not a loadable ONNX model ({one_line(exc)}); re-export it "
            f"with `lat export`"
        ) from None


class OnnxCpuDevice(LocalDevice):
    """onnxruntime's CPUExecutionProvider, single-threaded and sequential unless told otherwise."""

    name = "cpu"
    formats = ("onnx",)
    suffix = ".onnx"

    def __init__(self, *, threads: int = 1, affinity: Any = None, batch: int | None = None,
                 graph_opt_level: "str | int | None" = None, spinning: bool = False,
                 delegate: str | None = None, seed: int = 0, protocol: ProtocolSettings | None = None,
                 cache_size: int = 8) -> None:
        if delegate not in (None, "cpu"):
            raise DeviceError(
                f"cpu: runs onnxruntime's CPU provider; delegate {delegate!r} is for android devices "
                f"(for a GPU use --device cuda)"
            )
        super().__init__(threads=threads, affinity=affinity, batch=batch, seed=seed,
                         protocol=protocol, cache_size=cache_size)
        self.graph_opt_level = graph_opt_level_name(graph_opt_level)
        self.spinning = bool(spinning)

    def _load(self, path: Path, sha: str) -> Prepared:
        import numpy as np

        session = ort_session(path, self.name, threads=self.threads, graph_opt_level=self.graph_opt_level,
                              spinning=self.spinning, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(self.seed)
        feeds = {}
        for arg in session.get_inputs():
            shape = resolve_shape(self.name, arg.name, arg.shape, self.batch)
            feeds[arg.name] = random_input(shape, onnx_dtype(arg.type), rng)
        outputs = [o.name for o in session.get_outputs()]

        def run_once() -> None:
            session.run(outputs, feeds)

        return Prepared(path=path, sha256=sha, run_once=run_once, handle=session,
                        inputs={k: list(v.shape) for k, v in feeds.items()},
                        info={"batch": _batch_of(feeds.values())})

    def _runtime_env(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "execution_provider": "CPUExecutionProvider",
            "delegate": None,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": self.spinning,
            "graph_opt_level": self.graph_opt_level,
            "seed": self.seed,
        }


def _batch_of(arrays: Iterable[Any]) -> int | None:
    for a in arrays:
        if getattr(a, "ndim", 0) >= 1:
            return int(a.shape[0])
    return None


# --- LiteRT (TFLite) on the CPU --------------------------------------------------------------------


class LiteRtCpuDevice(LocalDevice):
    """``ai_edge_litert``'s interpreter with its default XNNPACK delegate (``delegate="none"``: without)."""

    name = "cpu-tflite"
    formats = ("tflite",)
    suffix = ".tflite"

    def __init__(self, *, threads: int = 1, affinity: Any = None, batch: int | None = None,
                 delegate: str | None = None, seed: int = 0, protocol: ProtocolSettings | None = None,
                 cache_size: int = 8) -> None:
        if delegate in (None, "cpu", "xnnpack"):
            self.delegate = "xnnpack"
        elif delegate == "none":
            self.delegate = "none"
        else:
            raise DeviceError(
                f"cpu-tflite: delegate {delegate!r} needs a phone; use an android device "
                f"(`lat device list`) or delegate cpu/xnnpack/none here"
            )
        super().__init__(threads=threads, affinity=affinity, batch=batch, seed=seed,
                         protocol=protocol, cache_size=cache_size)

    def _load(self, path: Path, sha: str) -> Prepared:
        import numpy as np

        rng = np.random.default_rng(self.seed)
        try:
            with native_stderr_silenced():  # LiteRT logs "INFO: Created ... XNNPACK delegate"
                interpreter = self._interpreter(path)
                details = interpreter.get_input_details()
                resized = False
                for d in details:
                    signature = [int(x) if x > 0 else None for x in d.get("shape_signature", d["shape"])]
                    shape = resolve_shape(self.name, d["name"], signature, self.batch)
                    if list(shape) != list(d["shape"]):
                        interpreter.resize_tensor_input(d["index"], list(shape))
                        resized = True
                interpreter.allocate_tensors()
                inputs = {}
                for d in interpreter.get_input_details():
                    value = random_input(tuple(int(x) for x in d["shape"]), d["dtype"], rng)
                    interpreter.set_tensor(d["index"], value)
                    inputs[d["name"]] = [int(x) for x in d["shape"]]
        except DeviceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"cpu-tflite: cannot set up {path.name}: {one_line(exc)}") from None
        invoke = interpreter.invoke

        def run_once() -> None:
            invoke()

        batches = [shape[0] for shape in inputs.values() if shape]
        return Prepared(path=path, sha256=sha, run_once=run_once, handle=interpreter, inputs=inputs,
                        info={"batch": batches[0] if batches else None, "resized_inputs": resized})

    def _interpreter(self, path: Path) -> Any:
        _check_tflite_header(path)
        try:
            from ai_edge_litert import interpreter as litert
        except ImportError:
            raise DeviceError(
                "cpu-tflite: needs the tflite extra (ai-edge-litert); install it with "
                "pip install 'latkit[tflite]'"
            ) from None

        resolver = (litert.OpResolverType.AUTO if self.delegate == "xnnpack"
                    else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            return litert.Interpreter(model_path=str(path), num_threads=self.threads,
                                      experimental_op_resolver_type=resolver)
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(
                f"cpu-tflite: {path.name} is not a loadable TFLite model ({one_line(exc)}); re-export "
                f"it with `lat export --format tflite`"
            ) from None

    def _runtime_env(self) -> dict[str, Any]:
        return {
            "runtime": "litert",
            "runtime_version": dist_version("ai-edge-litert"),
            "execution_provider": None,
            "delegate": self.delegate,
            "threads": self.threads,
            "seed": self.seed,
        }


def _check_tflite_header(path: Path) -> None:
    """Reject files without the TFLite flatbuffer identifier before handing them to the C++ loader."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise DeviceError(
            f"cpu-tflite: {path.name} is not a TFLite model (no 'TFL3' flatbuffer identifier); "
            f"re-export it with `lat export --format tflite`"
        )
