"""Field checks of predictor files, shared by ``io`` and every predictor's ``set_state``.

Each check takes a value read from JSON and the place it was read from (``where``, e.g.
``pred.json.state.scale``), and returns the value or raises a ``PredictorError`` naming the place,
what was expected and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from latkit.errors import PredictorError


def expect_keys(obj: Any, keys: Iterable[str], where: str) -> None:
    """``obj`` is a JSON object with exactly ``keys``."""
    want = set(keys)
    if not isinstance(obj, dict):
        raise PredictorError(f"{where} must be a JSON object, found {type(obj).__name__}")
    unknown, missing = sorted(set(obj) - want), sorted(want - set(obj))
    if unknown or missing:
        raise PredictorError(
            f"{where} has unexpected fields {unknown} / lacks {missing} (expected exactly "
            f"{sorted(want)}); the file was not written by this latkit or was edited")


def expect_number(v: Any, where: str) -> float:
    """``v`` is a finite number (not a boolean)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PredictorError(f"{where} must be a finite number, found {v!r}")
    return float(v)


def expect_names(v: Any, n: int, where: str) -> list[str]:
    """``v`` is a list of ``n`` feature names."""
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, str) for x in v):
        raise PredictorError(f"{where} must be a list of {n} feature names")
    return list(v)
