"""What the devices of this machine share: ``LocalDevice``, the prepared-artifact cache and helpers.

The local devices are ``cpu`` (onnxruntime, ``onnx_cpu.py``), ``cpu-tflite`` (LiteRT/XNNPACK,
``tflite_cpu.py``) and ``cuda`` (``cuda.py``). They follow the shared protocol of ``base.py`` and add
the discipline that makes a figure repeatable:

- one thread by default; an optional CPU affinity, applied to every thread of the measuring process
  while it measures (``host.py``);
- a seeded random input of the model's declared input shape and dtype, set once;
- prepared sessions cached by artifact sha256, so re-benchmarking the same file does not reload it;
- an environment snapshot recorded in every ``Measurement``: runtime and version, threads, affinity
  mask, provider or delegate, CPU model, current frequencies and temperatures where readable, and
  the artifact's sha256 (plus ``environment_base``).

Runtimes are imported by the device modules when a model is loaded, so importing this one costs
nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from latkit.cli_args import MAX_THREADS
from latkit.devices import levels
from latkit.devices.base import (
    Measurement,
    ProtocolSettings,
    environment_base,
    measure_with_protocol,
)
from latkit.devices.host import host_snapshot, parse_affinity, pinned
from latkit.devices.precision import detect_precision
from latkit.devices.reference import VERSION as REFERENCE_VERSION
from latkit.devices.reference import reference_runner, reference_sha256
from latkit.errors import DeviceError
from latkit.fileio import sha256_file

#: which local device runs which file extension (used to name the right device in errors)
DEVICE_FOR_SUFFIX = {".onnx": "cpu", ".tflite": "cpu-tflite"}


# --- small helpers shared by the local devices -----------------------------------------------------


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened: runtime errors can be pages long."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_artifact(device: str, artifact: str | Path, suffix: str) -> Path:
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
    #: whether ``benchmark(reference=True)`` pairs samples with the CPU reference model (the CPU
    #: devices; a GPU's timings do not follow the host CPU's level, so it ignores the request)
    pairs_with_reference = False

    def __init__(self, *, threads: int, affinity: Any, batch: int | None, seed: int,
                 protocol: ProtocolSettings | None, cache_size: int) -> None:
        if not 1 <= int(threads) <= MAX_THREADS:
            raise DeviceError(f"{self.name}: threads must be in 1..{MAX_THREADS} (twice this host's "
                              f"CPUs, at least 16), got {threads}")
        if batch is not None and int(batch) < 1:
            raise DeviceError(f"{self.name}: batch must be >= 1, got {batch}")
        self.threads = int(threads)
        self.cpus = parse_affinity(affinity)
        self.batch = int(batch) if batch is not None else None
        self.seed = int(seed)
        self.protocol = protocol_or_default(protocol)
        self._cache = PreparedCache(cache_size)
        self._ref_run: Callable[[], float | None] | None = None

    def prepare(self, artifact: str | Path) -> Prepared:
        path = check_artifact(self.name, artifact, self.suffix)
        sha = sha256_file(path)
        cached = self._cache.get(sha, path)
        if cached is not None:
            return cached
        item = self._load(path, sha)
        item.info.setdefault("precision", detect_precision(path))  # env["precision"], from the file
        try:
            item.run_once()  # a model that loads but cannot run fails here, not mid-measurement
        except Exception as exc:  # noqa: BLE001 -- onnxruntime's errors derive from Exception; LiteRT's vary
            raise DeviceError(f"{self.name}: {path.name} loaded but failed to run: {one_line(exc)}") from None
        return self._cache.put(item)

    def benchmark(self, artifact: str | Path, settings: ProtocolSettings | None = None,
                  reference: bool = False) -> Measurement:
        """Measure ``artifact``; with ``reference``, every sample beside a run of the reference
        model (``devices/reference.py``): the pass records the pairs' median ratio and adds the
        reference's median to this device's level (``devices/levels.py``). ``median_ms`` is the
        figure as measured; ``devices.base.apply_level`` gives the level-scaled one."""
        item = self.prepare(artifact)
        settings = protocol_or_default(settings or self.protocol)
        ref = self._reference() if reference and self.pairs_with_reference else None
        with pinned(self.cpus):
            env = self.environment()
            env.update(artifact=str(item.path), artifact_sha256=item.sha256,
                       input_shapes=item.inputs, **item.info)
            if ref is None:
                return measure_with_protocol(item.run_once, settings, env)
            m = measure_with_protocol(item.run_once, settings, env, reference_once=ref,
                                      reference={"sha256": reference_sha256(),
                                                 "model": f"latkit-reference-v{REFERENCE_VERSION}"})
        levels.record(m)
        return m

    def _reference(self) -> Callable[[], float | None]:
        if self._ref_run is None:
            self._ref_run = reference_runner(self.threads)
        return self._ref_run

    def environment(self) -> dict[str, Any]:
        return environment_base(self.name, **self._runtime_env(), **host_snapshot(self.cpus))

    def close(self) -> None:
        self._cache.clear()
        self._ref_run = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # subclasses fill these in
    def _load(self, path: Path, sha: str) -> Prepared:  # pragma: no cover
        raise NotImplementedError

    def _runtime_env(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError
