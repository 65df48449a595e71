"""latkit's own CPU kernels, compiled on this machine once and cached (``--cpu-kernels``).

One kernel so far: the weight gradient of a depthwise convolution with a 5x5 or 7x7 kernel
(``cpu_kernels.cpp``), which oneDNN runs on a generic grouped-convolution path at 5-30x the cost
of the forward pass. Measured on the 2-core AVX-512 CPU, batch 16, channels-last: 144 channels
at 32x32, 7x7, 18.4 ms (oneDNN) against 7.1 ms; 240 at 16x16, 7x7, 7.3 against 2.0 ms; 64 at 64x64,
7x7 stride 2, 15.6 against 3.4 ms; 960 at 4x4, 7x7, 21.7 against 0.65 ms; equal to 1e-6.

The kernel is built with ``torch.utils.cpp_extension`` (the C++ compiler, ``-O3 -march=native``)
into ``$LATKIT_KERNEL_DIR`` (default ``~/.cache/latkit/kernels``), one folder per (source, torch,
Python, CPU) so that a cache shared by several machines never loads a kernel built for another
CPU. The build takes about 40 s on the 2-core CPU; later runs load the built library at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
NAME = "latkit_cpu_kernels"
_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # library path -> module


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be built or loaded here (the message says why)."""


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(lines)))


def build_dir() -> Path:
    """This machine's folder for the built kernels (see the module's text)."""
    import torch  # noqa: PLC0415

    root = Path(os.environ.get("LATKIT_KERNEL_DIR")
                or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "latkit" / "kernels")
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), torch.__version__.encode(), sys.version.encode(),
                 platform.machine().encode(), _cpu_signature().encode()):
        h.update(part)
        h.update(b"\0")
    return root.expanduser() / h.hexdigest()[:16]


def library_path() -> Path:
    return build_dir() / f"{NAME}.so"


def is_built() -> bool:
    """Whether the kernels are built for this machine already (loading them is then free)."""
    return library_path().is_file()


def _import(path: Path) -> Any:
    import torch  # noqa: F401, PLC0415 -- the library links against torch's, loaded first

    spec = importlib.util.spec_from_file_location(NAME, path)
    if spec is None or spec.loader is None:
        raise KernelBuildError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(build: bool = True) -> Any:
    """The kernels' module: loaded if built here, else built first (``build``) or None. Its
    ``dw_weight_grad(x, g, k, stride, padding)`` is d loss / d weight (C, 1, k, k) of a depthwise
    convolution of fp32 CPU ``x`` with output gradient ``g``.

    Raises ``KernelBuildError`` (one line: the compiler's first error, or what is missing) when the
    build fails. Thread-safe; concurrent processes (torchrun ranks) build once, under
    ``torch.utils.cpp_extension``'s lock in the build folder.
    """
    with _lock:
        path = library_path()
        module = _loaded.get(str(path))
        if module is None:
            if path.is_file():
                try:
                    module = _import(path)
                except (ImportError, OSError) as exc:
                    raise KernelBuildError(f"cannot load the built kernels {path}: {exc}; delete "
                                           "that folder to rebuild them") from None
            elif build:
                module = _build(path.parent)
            else:
                return None
            _loaded[str(path)] = module
        return module


def _build(folder: Path) -> Any:
    import shutil  # noqa: PLC0415

    from torch.utils import cpp_extension  # noqa: PLC0415

    cxx = os.environ.get("CXX") or "c++"
    if not shutil.which(cxx):
        raise KernelBuildError(f"no C++ compiler ({cxx}) on PATH to build latkit's CPU kernels; "
                               "install one (g++) or pass --cpu-kernels off")
    if not shutil.which("ninja"):
        raise KernelBuildError("building latkit's CPU kernels needs ninja on PATH (apt install "
                               "ninja-build, or pip install ninja); or pass --cpu-kernels off")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return cpp_extension.load(NAME, [str(SOURCE)], build_directory=str(folder),
                                  extra_cflags=["-O3", "-march=native", "-fopenmp"],
                                  extra_ldflags=["-fopenmp"], verbose=False)
    except (RuntimeError, OSError, ImportError) as exc:
        first = next((ln for ln in str(exc).splitlines() if "error" in ln.lower()),
                     str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise KernelBuildError(f"building latkit's CPU kernels in {folder} failed: "
                               f"{first.strip()[:300]}; pass --cpu-kernels off") from None

