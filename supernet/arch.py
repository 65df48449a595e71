"""Architecture keys: ``ArchConfig``, one subnet of a MobileNetV3 space, and its canonical string.

Canonical arch key grammar (``str(arch)``, ``ArchConfig.parse``)::

    r<resolution>-k<stage1>.<stage2>.<stage3>.<stage4>.<stage5>-e<stage1>. ... .<stage5>

Each stage group lists one digit per ACTIVE block, so the depth of a stage is the length of its
group; e.g. ``r224-k35.737.33.5733.35-e34.463.66.3466.44`` has depths 2,3,2,4,2. Blocks beyond a
stage's depth do not exist in the key, so two once-for-all dicts that differ only in inactive
entries give the same key. ``ArchConfig.parse`` also accepts the once-for-all JSON dict
``{"ks": [20 ints], "e": [20 ints], "d": [5 ints], "r": 224}`` (``r`` may be ``[224]``).

The same key indexes accuracy tables, lookup-table samples, caches and the measurement store: its
format never changes. Whether an arch belongs to a space is the space's question
(``SearchSpace.validate`` in ``latkit.supernet.space``); this module only parses and prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latkit.errors import ArchError


@dataclass(frozen=True)
class ArchConfig:
    """A subnet: resolution plus, per stage, the kernel size and expand ratio of each active block.

    Frozen and hashable; ``str(arch)`` is the canonical key (grammar in the module docstring) and
    ``ArchConfig.parse(str(arch)) == arch``. Depth per stage is ``len(ks[stage])``.
    """

    r: int
    ks: tuple[tuple[int, ...], ...]
    e: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.ks) != len(self.e):
            raise ArchError(f"ks has {len(self.ks)} stages but e has {len(self.e)}")
        for i, (k, e) in enumerate(zip(self.ks, self.e, strict=False)):
            if len(k) != len(e):
                raise ArchError(f"stage {i + 1}: {len(k)} kernel sizes but {len(e)} expand ratios")
            if len(k) == 0:
                raise ArchError(f"stage {i + 1} has depth 0")

    @property
    def d(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.ks)

    @property
    def key(self) -> str:
        ks = ".".join("".join(str(v) for v in stage) for stage in self.ks)
        es = ".".join("".join(str(v) for v in stage) for stage in self.e)
        return f"r{self.r}-k{ks}-e{es}"

    def __str__(self) -> str:
        return self.key

    _KEY_RE = re.compile(r"^r(\d+)-k(\d+(?:\.\d+)*)-e(\d+(?:\.\d+)*)$")

    @classmethod
    def parse(cls, text: str | Mapping[str, Any] | ArchConfig) -> ArchConfig:
        """A canonical key, a once-for-all dict, or its JSON text -> ArchConfig (no space checks)."""
        if isinstance(text, ArchConfig):
            return text
        if isinstance(text, Mapping):
            return cls.from_ofa_dict(text)
        s = str(text).strip()
        if s.startswith("{"):
            try:
                data = json.loads(s)
            except json.JSONDecodeError as exc:
                raise ArchError(f"arch looks like JSON but does not parse: {exc.msg} in {s[:80]!r}") from None
            if not isinstance(data, dict):
                raise ArchError(f"arch JSON must be an object with ks, e, d, r; got {s[:80]!r}")
            return cls.from_ofa_dict(data)
        m = cls._KEY_RE.match(s)
        if not m:
            raise ArchError(
                f"malformed arch {s[:100]!r}: expected a key like "
                "'r224-k35.737.33.5733.35-e34.463.66.3466.44' or a once-for-all JSON dict "
                '\'{"ks": [...20], "e": [...20], "d": [...5], "r": 224}\''
            )
        r = int(m.group(1))
        ks_groups = m.group(2).split(".")
        e_groups = m.group(3).split(".")
        if [len(g) for g in ks_groups] != [len(g) for g in e_groups]:
            raise ArchError(
                f"malformed arch {s!r}: kernel groups {ks_groups} and expand groups {e_groups} "
                "must have the same number of digits per stage (one per active block)"
            )
        return cls(
            r=r,
            ks=tuple(tuple(int(c) for c in g) for g in ks_groups),
            e=tuple(tuple(int(c) for c in g) for g in e_groups),
        )

    @classmethod
    def from_ofa_dict(cls, data: Mapping[str, Any]) -> ArchConfig:
        """once-for-all's ``{"ks": [...], "e": [...], "d": [...], "r": R}``; inactive entries dropped."""
        missing = [k for k in ("ks", "e", "d") if k not in data]
        if missing:
            raise ArchError(f"arch dict is missing {missing}; expected keys ks, e, d, r")
        r = data.get("r", data.get("image_size"))
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise ArchError(f"arch dict field r must be one resolution, got {r}")
            r = r[0]
        if r is None:
            raise ArchError("arch dict is missing r (input resolution)")
        try:
            r = _as_int(r, "resolution r")
            ks = [_as_int(v, "kernel size") for v in data["ks"]]
            e = [_as_int_ratio(v) for v in data["e"]]
            d = [_as_int(v, "depth") for v in data["d"]]
        except (TypeError, ValueError) as exc:
            raise ArchError(f"arch dict fields ks, e, d and r must be integers: {exc}") from None
        if not d:
            raise ArchError("arch dict field d is empty")
        if len(ks) != len(e) or len(ks) % len(d):
            raise ArchError(
                f"arch dict has {len(ks)} ks and {len(e)} e entries for {len(d)} stages; expected "
                f"equal lengths divisible by the number of stages (once-for-all: 20, 20 and 5)"
            )
        per = len(ks) // len(d)
        for i, di in enumerate(d):
            if not 1 <= di <= per:
                raise ArchError(f"d[{i}] = {di} is outside 1..{per}")
        return cls(
            r=r,
            ks=tuple(tuple(ks[i * per : i * per + di]) for i, di in enumerate(d)),
            e=tuple(tuple(e[i * per : i * per + di]) for i, di in enumerate(d)),
        )

    def to_ofa_dict(self, max_depth: int = 4) -> dict[str, Any]:
        """once-for-all's dict; inactive blocks repeat the stage's last active values."""
        ks: list[int] = []
        es: list[int] = []
        for k, e in zip(self.ks, self.e, strict=False):
            pad = max_depth - len(k)
            if pad < 0:
                raise ArchError(f"depth {len(k)} exceeds max depth {max_depth}")
            ks += list(k) + [k[-1]] * pad
            es += list(e) + [e[-1]] * pad
        return {"ks": ks, "e": es, "d": list(self.d), "r": self.r}


def _as_int(v: Any, what: str) -> int:
    """An integral number (176, 176.0 or "176"); 176.5, a boolean or nan is a ValueError."""
    if isinstance(v, bool):
        raise ValueError(f"{what} {v} is not an integer")
    f = float(v)
    if not f.is_integer():
        raise ValueError(f"{what} {v} is not an integer")
    return int(f)


def _as_int_ratio(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"expand ratio {v} is not an integer")
    f = float(v)
    if not f.is_integer():
        raise ValueError(f"expand ratio {v} is not an integer")
    return int(f)
