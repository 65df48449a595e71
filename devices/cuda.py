"""The ``cuda`` device: onnxruntime's CUDAExecutionProvider on one NVIDIA GPU.

Inputs are copied to the GPU once and bound with I/O binding, so a timed run moves no data between
host and device. Each run is timed on the GPU with CUDA events when torch with CUDA is importable
(onnxruntime then computes on a torch-created stream, passed as ``user_compute_stream``, and the
events are recorded on that stream); otherwise by wall time around ``run_with_iobinding``, which is
synchronous. The timer used is recorded in the environment.

The batch size is the input's batch dimension: a model exported with a fixed batch of 1 cannot be run
at another batch (export it with ``--batch``); a dynamic batch axis takes the asked batch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from latkit.devices.base import ProtocolSettings
from latkit.devices.local import LocalDevice, Prepared, dist_version, random_input, resolve_shape
from latkit.devices.onnx_cpu import graph_opt_level_name, onnx_dtype, ort_session
from latkit.errors import DeviceError

__all__ = ["CudaDevice", "cuda_provider_available", "gpu_snapshot"]

TIMERS = ("auto", "events", "wall")


def cuda_provider_available() -> tuple[bool, list[str]]:
    """Whether onnxruntime here has the CUDA provider, and the providers it has."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False, []
    providers = list(ort.get_available_providers())
    return "CUDAExecutionProvider" in providers, providers


def _torch_cuda() -> Any:
    """torch if it is importable and sees a CUDA GPU, else None."""
    try:
        import torch  # noqa: PLC0415 -- optional here (CUDA-event timing) and seconds to import
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 -- a broken driver must not break the device, whatever it raises
        return None


class CudaDevice(LocalDevice):
    """onnxruntime + CUDA on GPU ``device_id``, with I/O binding and GPU-side timing where possible."""

    name = "cuda"
    formats = ("onnx",)
    suffix = ".onnx"

    def __init__(self, *, batch: int | None = None, device_id: int = 0,
                 graph_opt_level: str | int | None = None, timer: str = "auto",
                 delegate: str | None = None, affinity: Any = None, seed: int = 0,
                 protocol: ProtocolSettings | None = None, cache_size: int = 4) -> None:
        available, providers = cuda_provider_available()
        if not available:
            raise DeviceError(
                f"cuda: no CUDA GPU/provider available on this machine (onnxruntime providers: "
                f"{providers}); use --device cpu"
            )
        if delegate not in (None, "cuda", "gpu"):
            raise DeviceError(f"cuda: delegate {delegate!r} is for android devices; drop --delegate")
        if timer not in TIMERS:
            raise DeviceError(f"cuda: timer must be one of {', '.join(TIMERS)}, got {timer!r}")
        super().__init__(threads=1, affinity=affinity, batch=batch, seed=seed, protocol=protocol,
                         cache_size=cache_size)
        self.device_id = int(device_id)
        self.graph_opt_level = graph_opt_level_name(graph_opt_level)
        self._torch = _torch_cuda() if timer in ("auto", "events") else None
        if timer == "events" and self._torch is None:
            raise DeviceError("cuda: timer 'events' needs torch with CUDA; use timer 'wall'")
        self.timer = "events" if self._torch is not None else "wall"
        self._stream = None
        if self._torch is not None:
            with self._torch.cuda.device(self.device_id):
                self._stream = self._torch.cuda.Stream()

    def _provider_options(self) -> dict[str, str]:
        options = {"device_id": str(self.device_id)}
        if self._stream is not None:  # onnxruntime >= 1.17 computes on this (torch-created) stream
            options["user_compute_stream"] = str(self._stream.cuda_stream)
        return options

    def _load(self, path: Path, sha: str) -> Prepared:
        import onnxruntime as ort

        session = ort_session(path, self.name, threads=1, graph_opt_level=self.graph_opt_level,
                              spinning=False,
                              providers=[("CUDAExecutionProvider", self._provider_options())])
        if session.get_providers()[:1] != ["CUDAExecutionProvider"]:
            raise DeviceError(
                f"cuda: onnxruntime could not start its CUDA provider (session providers: "
                f"{session.get_providers()}); check the GPU driver and the onnxruntime-gpu install"
            )
        rng = np.random.default_rng(self.seed)
        binding = session.io_binding()
        inputs: dict[str, list[int]] = {}
        device_values = []  # keep the GPU copies alive as long as the binding
        for arg in session.get_inputs():
            shape = resolve_shape(self.name, arg.name, arg.shape, self.batch)
            host = random_input(shape, onnx_dtype(arg.type), rng)
            value = ort.OrtValue.ortvalue_from_numpy(host, "cuda", self.device_id)
            binding.bind_ortvalue_input(arg.name, value)
            device_values.append(value)
            inputs[arg.name] = list(shape)
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda", self.device_id)
        binding.synchronize_inputs()
        run_once = self._timed_run(session, binding)
        batches = [s[0] for s in inputs.values() if s]
        return Prepared(path=path, sha256=sha, run_once=run_once, handle=(session, binding, device_values),
                        inputs=inputs, info={"batch": batches[0] if batches else None})

    def _timed_run(self, session: Any, binding: Any):
        run = session.run_with_iobinding
        if self._torch is None:
            def run_wall() -> None:
                run(binding)  # synchronous: returns after the GPU work is done

            return run_wall
        torch, stream = self._torch, self._stream
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)

        def run_events() -> float:
            start.record(stream)
            run(binding)
            end.record(stream)
            end.synchronize()
            return float(start.elapsed_time(end))  # milliseconds

        return run_events

    def _runtime_env(self) -> dict[str, Any]:
        import onnxruntime as ort

        env: dict[str, Any] = {
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "runtime_package": ("onnxruntime-gpu" if dist_version("onnxruntime-gpu") != "unknown"
                                else "onnxruntime"),
            "execution_provider": "CUDAExecutionProvider",
            "delegate": None,
            "threads": 1,
            "graph_opt_level": self.graph_opt_level,
            "io_binding": True,
            "timer": self.timer,
            "gpu_index": self.device_id,
            "seed": self.seed,
        }
        env.update(gpu_snapshot(self.device_id, self._torch))
        return env


def gpu_snapshot(device_id: int, torch: Any = None) -> dict[str, Any]:
    """GPU name, driver, clocks, temperature and power where ``nvidia-smi`` (or torch) can tell."""
    snap: dict[str, Any] = {}
    if torch is not None:
        try:
            props = torch.cuda.get_device_properties(device_id)
            snap.update(gpu_name=props.name, gpu_memory_mib=props.total_memory // (1 << 20),
                        cuda_runtime=torch.version.cuda)
        except Exception:  # noqa: BLE001 -- a snapshot is best effort; it must never fail a measurement
            pass
    fields = ["name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem",
              "temperature.gpu", "power.draw", "pstate"]
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={device_id}", f"--query-gpu={','.join(fields)}",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return snap
    if out:
        values = [v.strip() for v in out[0].split(",")]
        if len(values) == len(fields):
            keys = ["gpu_name", "gpu_driver", "gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz",
                    "gpu_mem_clock_mhz", "gpu_temperature_c", "gpu_power_w", "gpu_pstate"]
            for key, value in zip(keys, values):
                snap[key] = _number(value)
    return snap


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
