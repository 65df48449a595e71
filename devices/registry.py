"""The one device registry: a name in, a ``Device`` out.

Local devices are fixed: ``cpu`` (onnxruntime), ``cpu-tflite`` (LiteRT/XNNPACK) and ``cuda``
(onnxruntime + CUDA). Every Android profile shipped as ``data/devices/<name>.yaml`` in the package
is a device too, and so is every profile the user added (``$LATKIT_HOME/devices/<name>.yaml``,
written by ``lat device add``; a user profile of the same name as a built-in one wins), built by
``latkit.devices.android.AndroidDevice.from_profile``. Device modules are imported only when a
device is asked for (``importlib`` for the local ones, a guarded import for the android package),
so listing devices loads no runtime and a build without the android package still lists and runs
the local devices.

Options are keyword arguments passed to the device: ``threads``, ``affinity`` (CPU ids or a hex mask),
``batch``, ``serial``, ``delegate``, ``graph_opt_level``, ``protocol`` (a ``ProtocolSettings``) or any
of the protocol's own fields (``warmup_runs``, ``min_runs``, ``min_time_s``...), which are folded into
``protocol``. An option a device does not take is an error, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from latkit.devices.base import Device, ProtocolSettings
from latkit.devices.paths import profile_files, profiles_dir
from latkit.errors import DeviceError

__all__ = ["LOCAL_DEVICES", "android_profiles", "describe_device", "device_names", "fold_protocol",
           "get_device", "list_devices", "profiles_dir"]


@dataclass(frozen=True)
class LocalEntry:
    """A built-in device: where its class lives and what it runs."""

    name: str
    module: str
    cls: str
    formats: tuple[str, ...]
    description: str
    #: campaigns and ``lat bench`` pair its samples with the reference model (``devices/reference.py``)
    paired: bool = False


LOCAL_DEVICES: dict[str, LocalEntry] = {
    e.name: e
    for e in (
        LocalEntry("cpu", "latkit.devices.onnx_cpu", "OnnxCpuDevice", ("onnx",),
                   "this machine's CPU, onnxruntime CPUExecutionProvider (1 thread by default)", True),
        LocalEntry("cpu-tflite", "latkit.devices.tflite_cpu", "LiteRtCpuDevice", ("tflite",),
                   "this machine's CPU, LiteRT interpreter with XNNPACK (1 thread by default)", True),
        LocalEntry("cuda", "latkit.devices.cuda", "CudaDevice", ("onnx",),
                   "an NVIDIA GPU, onnxruntime CUDAExecutionProvider with I/O binding"),
    )
}

_PROTOCOL_FIELDS = {f.name for f in dataclasses.fields(ProtocolSettings)}


def android_profiles() -> dict[str, Path]:
    """Android profile names (file stems) and their YAML files, sorted by name: the built-in ones
    and the user's (``$LATKIT_HOME/devices``, written by ``lat device add``); a user profile wins."""
    return {name: path for name, (path, _) in profile_files().items() if name not in LOCAL_DEVICES}


def device_names() -> list[str]:
    return [*LOCAL_DEVICES, *android_profiles()]


def _profile_description(path: Path) -> str:
    try:  # a broken profile must not break `lat device list`
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"(unreadable profile {path.name}: {type(exc).__name__})"
    if isinstance(data, dict):
        for key in ("description", "name", "soc"):
            if isinstance(data.get(key), str):
                return data[key]
    return f"Android profile {path.name}"


def list_devices() -> list[dict[str, Any]]:
    """Every known device as ``{name, kind, source, formats, description}``, local ones first;
    ``source`` is ``builtin`` or ``user`` (an Android profile in ``$LATKIT_HOME/devices``), and
    Android rows carry their ``path``."""
    rows = [
        {"name": e.name, "kind": "local", "source": "builtin", "formats": list(e.formats),
         "description": e.description}
        for e in LOCAL_DEVICES.values()
    ]
    for name, (path, source) in profile_files().items():
        if name in LOCAL_DEVICES:
            continue
        rows.append({"name": name, "kind": "android", "source": source, "formats": ["tflite"],
                     "description": _profile_description(path), "path": str(path)})
    return rows


def describe_device(name: str) -> dict[str, Any]:
    """``lat device show NAME``: a local device's entry, or an Android profile as written (checked by
    the one loader) with ``source`` (``builtin`` / ``user``) and the ``file`` it came from."""
    entry = LOCAL_DEVICES.get(name)
    if entry is not None:
        return {"name": name, "kind": "local", "source": "builtin", "formats": list(entry.formats),
                "description": entry.description, "module": entry.module}
    found = profile_files().get(name)
    if found is None:
        raise DeviceError(f"unknown device {name!r}; known devices: {', '.join(device_names())}")
    path, source = found
    try:
        from latkit.devices.android.profile import load_profile  # noqa: PLC0415 -- optional package, loaded on demand
    except ModuleNotFoundError:
        load_profile = None
    if load_profile is not None:
        load_profile(path)  # the strict check: a broken profile is a one-line error here
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DeviceError(f"device profile {path} is not readable YAML: {type(exc).__name__}") from None
    return {"kind": "android", "source": source, "file": str(path), **data}


def fold_protocol(options: dict[str, Any]) -> dict[str, Any]:
    """Move protocol fields (``min_runs=...``) into one ``protocol=ProtocolSettings`` option."""
    options = dict(options)
    fields = {k: options.pop(k) for k in list(options) if k in _PROTOCOL_FIELDS}
    if fields:
        base = options.get("protocol") or ProtocolSettings()
        if not isinstance(base, ProtocolSettings):
            raise DeviceError(f"protocol must be a ProtocolSettings, got {type(base).__name__}")
        try:
            options["protocol"] = dataclasses.replace(base, **fields)
        except TypeError as exc:
            raise DeviceError(f"bad protocol settings {fields}: {exc}") from None
    return options


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = sorted(k for k, p in params.items()
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k not in ("self", "name"))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DeviceError(
            f"device {name!r} does not take option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(accepted)}"
        )


def get_device(name: str, **options: Any) -> Device:
    """The device called ``name``, configured by ``options``. Unknown name -> ``DeviceError``."""
    options = fold_protocol({k: v for k, v in options.items() if v is not None})
    entry = LOCAL_DEVICES.get(name)
    if entry is not None:
        cls = getattr(importlib.import_module(entry.module), entry.cls)
        _check_options(name, cls, options)
        return cls(**options)
    if name in android_profiles():
        try:
            from latkit.devices.android import AndroidDevice  # noqa: PLC0415 -- optional package, loaded on demand
        except ModuleNotFoundError as exc:
            if exc.name == "latkit.devices.android":
                raise DeviceError(
                    f"device {name!r} is an Android profile, but the Android device module "
                    f"(latkit.devices.android) is not installed in this build"
                ) from None
            raise DeviceError(
                f"device {name!r} needs the android extra ({exc.name} is missing); "
                f"install it with `pip install latkit[android]`"
            ) from None
        _check_options(name, AndroidDevice.from_profile, options)
        return AndroidDevice.from_profile(name, **options)
    raise DeviceError(f"unknown device {name!r}; known devices: {', '.join(device_names())}")
