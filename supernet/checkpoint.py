"""Training checkpoints: everything needed to resume exactly, written atomically, read safely.

A checkpoint is a dict that ``torch.load(weights_only=True)`` can read (tensors, numbers, strings,
lists, dicts only) and that ``latkit.supernet.model.load_supernet`` accepts:

``format`` ("latkit-supernet"), ``version``, ``space``, ``n_classes``, ``dropout``,
``kernel_transform``, ``model`` (state dict), ``optimizer`` (state dict of the current phase's
SGD), ``step`` (global steps done), ``phase_index``, ``phase``, ``epoch`` (data epochs done,
fractional), ``rng`` (python, numpy, torch CPU and CUDA generator states as tensors/lists),
``sampler`` (its seed and position: batches are a function of (seed, step)), ``counters`` (images,
subnet-image passes, training seconds), ``schedule``, ``config``, ``data``, ``command``, ``versions``,
``world_size``, ``created``, ``finished``.

Writes go through ``latkit.fileio.atomic_path`` (a temporary file in the same directory, flushed to
disk, then renamed over the old file), so a run killed at any moment leaves either the old or the
new checkpoint. ``versions``, ``command`` and ``created`` are ``latkit.provenance``'s.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latkit.errors import TrainError
from latkit.fileio import atomic_path

#: The ``format`` of every supernet checkpoint (``load_checkpoint`` refuses anything else).
CHECKPOINT_FORMAT = "latkit-supernet"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every global RNG state, in types the weights-only unpickler accepts."""
    py = random.getstate()
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "python": {"version": int(py[0]), "state": torch.tensor(py[1], dtype=torch.int64),
                   "gauss": py[2]},
        "numpy": {"kind": str(np_state[0]),
                  "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["kind"], nps["keys"].numpy().astype(np.uint32), int(nps["pos"]),
                         int(nps["has_gauss"]), float(nps["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` ``payload`` to ``path`` atomically (``latkit.fileio.atomic_path``)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint (``weights_only=True``); TrainError naming the problem otherwise."""
    p = Path(path)
    if not p.is_file():
        raise TrainError(f"checkpoint {p} does not exist; train one with `lat-train --out DIR`")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means a bad file
        raise TrainError(f"checkpoint {p} could not be read safely ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{p} is not a latkit supernet checkpoint (no format={CHECKPOINT_FORMAT!r})")
    return ckpt


def export_checkpoint(src: str | Path, dst: str | Path, *, half: bool = False) -> Path:
    """A small copy of a checkpoint with only what evaluation needs (optionally fp16 weights).

    Keeps format, space, n_classes, dropout, kernel_transform, model, config, data, schedule,
    command, versions and counters; drops the optimizer and RNG states. ``load_supernet`` reads it
    (fp16 tensors are cast back to fp32 on load).
    """
    ck = load_checkpoint(src)
    model = ck["model"]
    if half:
        model = {k: (v.half() if torch.is_floating_point(v) else v) for k, v in model.items()}
    keep = ("format", "version", "space", "n_classes", "dropout", "kernel_transform", "config",
            "data", "schedule", "command", "versions", "counters", "step", "phase", "created",
            "finished")
    out = {k: ck[k] for k in keep if k in ck}
    out["model"] = model
    out["exported_from"] = str(src)
    out["weights_dtype"] = "float16" if half else "float32"
    return save_atomic(out, dst)
