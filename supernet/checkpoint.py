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
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latkit.errors import TrainError
from latkit.fileio import atomic_path, sha256_file
from latkit.supernet.ofa_format import convert_released, released_state_dict

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


def load_checkpoint(path: str | Path, space: str | None = None,
                    kernel_transform: str | None = None) -> dict[str, Any]:
    """A supernet checkpoint (``weights_only=True``); TrainError naming the problem otherwise.

    Besides latkit's own checkpoints this reads once-for-all's and CompOFA's released
    ``{"state_dict": ...}`` files (either key naming; ``latkit.supernet.ofa_format``) and returns
    them converted to latkit's form for ``space`` (default: the once-for-all space of the file's
    width), with ``source`` recording the file's sha256 and naming. ``space`` and
    ``kernel_transform`` matter only for such files.
    """
    p = Path(path)
    if not p.is_file():
        raise TrainError(f"checkpoint {p} does not exist; train one with `lat-train --out DIR`")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means a bad file
        text = str(exc)
        glob = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if glob:
            found = (f"a pickle that calls {glob.group(1)} (code or objects other than tensors, "
                     "refused by the weights-only unpickler)")
        elif "WeightsUnpickler error:" in text:
            why = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0][:120]
            found = f"a pickle the weights-only unpickler refuses: {why}"
        else:
            first = text.strip().splitlines()[0][:160] if text.strip() else ""
            found = f"{type(exc).__name__}: {first}"
        raise TrainError(f"checkpoint {p} could not be read safely ({found}); expected a latkit "
                         "supernet checkpoint or a once-for-all/CompOFA {'state_dict': ...} file"
                         ) from None
    if isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT:
        return ckpt
    sd = released_state_dict(ckpt)
    if sd is not None:
        out = convert_released(sd, p, space, kernel_transform)
        out["source"]["sha256"] = sha256_file(p)
        return out
    found = (f"a dict with keys {sorted(map(str, ckpt))[:4]}" if isinstance(ckpt, dict)
             else f"a {type(ckpt).__name__}")
    raise TrainError(f"{p} holds {found}; expected a latkit supernet checkpoint (format="
                     f"{CHECKPOINT_FORMAT!r}) or a once-for-all/CompOFA {{'state_dict': ...}} file")


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
