"""Family spaces: a parent space and an explicit list of its subnets, read from a JSON file.

A family is a space like the others (``--space family.json`` wherever ``--space NAME`` is taken):
it validates, samples, enumerates and decomposes archs, but only its members. Its weights, lookup
tables and predictors are its parent's (``name`` is the parent's name, so a predictor fitted for
``compofa-w1.0`` scores a family of it), and its unique layers come from its members only (a
profile campaign of a family measures what the family needs).

File format (``lat space derive`` writes one; a hand-written one needs only the first four keys)::

    {"format": "latkit-family", "version": 1, "parent": "compofa-w1.0",
     "members": ["r160-k33.55.33.33.55-e33.33.33.33.33", ...],
     "members_sha256": "<sha256 of the members joined by newlines>",   (optional)
     "derivation": {...how the family was chosen: provenance, budgets, predictors...}}  (optional)

Reading is strict (STYLE 6): an unknown key, a member that is not a valid subnet of the parent,
a duplicate, or a ``members_sha256`` that does not match the members (the list was edited after
it was written) is a ``SpaceError`` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from latkit.errors import ArchError, LatkitError, SpaceError
from latkit.fileio import sha256_file, write_text
from latkit.supernet.arch import ArchConfig
from latkit.supernet.layers import LayerSpec
from latkit.supernet.space import SearchSpace, get_space

__all__ = ["FORMAT", "FamilySpace", "is_family_path", "load_family", "members_sha256", "save_family"]

FORMAT = "latkit-family"
VERSION = 1
TOP_FIELDS = {"format", "version", "parent", "members", "members_sha256", "derivation"}
MAX_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 1_000_000


def is_family_path(name: str) -> bool:
    """Whether a ``--space`` value names a family file rather than a built-in space."""
    return name.lower().endswith(".json") or "/" in name or "\\" in name


def members_sha256(members: Iterable[ArchConfig]) -> str:
    """The checksum a family file records: sha256 of the member keys, one per line, in order."""
    return hashlib.sha256("\n".join(str(a) for a in members).encode()).hexdigest()


@dataclass(frozen=True)
class FamilySpace(SearchSpace):
    """The members of a family over the parent space ``conf`` (see the module docstring)."""

    members: tuple[ArchConfig, ...] = ()
    source: str = ""  # the file, as given
    sha256: str = ""  # of the file
    derivation: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    # ---- what the family is ----
    @property
    def parent(self) -> SearchSpace:
        return get_space(self.conf.name)

    @property
    def label(self) -> str:
        return f"family {self.source} ({len(self.members)} subnets of {self.conf.name})"

    @cached_property
    def members_set(self) -> frozenset[ArchConfig]:
        return frozenset(self.members)

    @cached_property
    def _by_resolution(self) -> dict[int, tuple[ArchConfig, ...]]:
        out: dict[int, list[ArchConfig]] = {}
        for a in self.members:
            out.setdefault(a.r, []).append(a)
        return {r: tuple(v) for r, v in sorted(out.items())}

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self._by_resolution)

    def structures(self) -> list[ArchConfig]:
        """The distinct member structures (kernels and expands, whatever the resolution), as archs
        at the parent's smallest resolution: what the trainer samples at each batch resolution."""
        r0 = self.conf.resolutions[0]
        seen = dict.fromkeys(ArchConfig(r=r0, ks=a.ks, e=a.e) for a in self.members)
        return list(seen)

    def _at(self, resolution: int | Sequence[int] | None) -> tuple[ArchConfig, ...]:
        if resolution is None:
            return self.members
        rs = [resolution] if isinstance(resolution, int) else list(resolution)
        bad = [r for r in rs if r not in self._by_resolution]
        if bad:
            raise ArchError(f"resolution(s) {bad} have no member in {self.label}; its resolutions "
                            f"are {list(self.resolutions)}")
        return tuple(a for r in rs for a in self._by_resolution[r])

    # ---- the SearchSpace interface, restricted to the members ----
    def validate(self, arch: ArchConfig) -> ArchConfig:
        if arch in self.members_set:
            return arch
        super().validate(arch)
        raise ArchError(f"{arch} is a subnet of {self.conf.name} but not of {self.label}; "
                        f"list its members with lat space enumerate --space {self.source}")

    def max_arch(self, r: int | None = None) -> ArchConfig:
        """The member with the most MACs (at ``r`` when given)."""
        return max(self._at(r), key=self.macs)

    def min_arch(self, r: int | None = None) -> ArchConfig:
        """The member with the fewest MACs (at ``r`` when given)."""
        return min(self._at(r), key=self.macs)

    def sample(self, rng: random.Random, resolution: int | Sequence[int] | None = None) -> ArchConfig:
        """A member drawn uniformly (among those at ``resolution`` when given)."""
        return rng.choice(self._at(resolution))

    def enumerate(self, resolution: int | None = None) -> Iterator[ArchConfig]:
        return iter(self._at(resolution))

    def num_subnets(self, per_resolution: bool = True) -> int:
        """Members (``per_resolution``: at the resolution with the most of them)."""
        if not per_resolution:
            return len(self.members)
        return max((len(v) for v in self._by_resolution.values()), default=0)

    def mutate(self, arch: ArchConfig, rng: random.Random, prob: float = 0.1,
               resolutions: Sequence[int] | None = None) -> ArchConfig:
        """With probability ``prob`` another member (at ``resolutions`` when given), else ``arch``."""
        if rng.random() < prob:
            return self.sample(rng, resolutions)
        return arch

    def crossover(self, a: ArchConfig, b: ArchConfig, rng: random.Random) -> ArchConfig:
        """Either parent (a family has no stage-wise recombination that stays inside it)."""
        return a if rng.random() < 0.5 else b

    def unique_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerSpec]:
        """Every distinct layer of the members at these resolutions (all of them if None)."""
        seen: dict[str, LayerSpec] = {}
        for a in self._at(None if resolutions is None else list(resolutions)):
            for spec in self.layers(a):
                seen.setdefault(spec.key, spec)
        return list(seen.values())

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        counts = {r: len(v) for r, v in self._by_resolution.items()}
        d.update({
            "name": self.source, "parent": self.conf.name, "family": True,
            "description": f"family of {len(self.members)} subnets of {self.conf.name}",
            "resolutions": list(self.resolutions), "members_per_resolution": counts,
            "structures": len(self.structures()),
            "subnets_per_resolution": self.num_subnets(), "subnets_total": len(self.members),
            "sha256": self.sha256,
        })
        return d

    def provenance(self) -> dict[str, Any]:
        """What a checkpoint or search trained on this family records about it."""
        return {"path": self.source, "sha256": self.sha256, "parent": self.conf.name,
                "members": len(self.members), "members_sha256": members_sha256(self.members),
                "derivation": dict(self.derivation) if self.derivation else None}


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------


def _bad(path: str, what: str) -> SpaceError:
    return SpaceError(f"family file {path}: {what}; write one with lat space derive ... -o {path}")


def load_family(path: str | Path) -> FamilySpace:
    """Read and check a family file (``get_space`` does, for a ``--space`` that names a file)."""
    p, shown = Path(path), str(path)
    if not p.is_file():
        raise SpaceError(f"--space {shown}: no such family file, and not a built-in space (lat "
                         "space list); write a family with lat space derive ... -o FILE.json")
    if p.stat().st_size > MAX_BYTES:
        raise _bad(shown, f"{p.stat().st_size} bytes, larger than any family file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _bad(shown, "not a text file") from None
    except json.JSONDecodeError as exc:
        raise _bad(shown, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise _bad(shown, str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(shown, f"not a family file (expected {{\"format\": \"{FORMAT}\", ...}})")
    unknown = sorted(set(doc) - TOP_FIELDS)
    if unknown:
        raise _bad(shown, f"unknown field(s) {unknown}; known: {sorted(TOP_FIELDS)}")
    if doc.get("version") != VERSION:
        raise _bad(shown, f"version {doc.get('version')!r}, this latkit reads version {VERSION}")
    parent_name = doc.get("parent")
    if not isinstance(parent_name, str) or not parent_name:
        raise _bad(shown, "\"parent\" must name a built-in space (lat space list)")
    try:
        parent = get_space(parent_name)
    except LatkitError as exc:
        raise _bad(shown, f"parent: {exc}") from None
    if isinstance(parent, FamilySpace):
        raise _bad(shown, "the parent of a family must be a built-in space, not another family")
    raw = doc.get("members")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise _bad(shown, "\"members\" must be a non-empty list of arch keys")
    if len(raw) > MAX_MEMBERS:
        raise _bad(shown, f"{len(raw)} members, more than {MAX_MEMBERS}")
    members = []
    for i, key in enumerate(raw):
        try:
            members.append(parent.parse(key))
        except LatkitError as exc:
            raise _bad(shown, f"member {i + 1} {key!r}: {exc}") from None
    if len(set(members)) != len(members):
        dup = next(a for a in members if members.count(a) > 1)
        raise _bad(shown, f"member {dup} is listed more than once")
    check = doc.get("members_sha256")
    if check is not None and check != members_sha256(members):
        raise _bad(shown, "its members do not match its members_sha256 (the list was edited after "
                   "it was written); derive it again, or drop members_sha256 for a hand-made family")
    deriv = doc.get("derivation")
    if deriv is not None and not isinstance(deriv, dict):
        raise _bad(shown, "\"derivation\" must be an object")
    return FamilySpace(parent.conf, members=tuple(members), source=shown, sha256=sha256_file(p),
                       derivation=deriv)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def save_family(path: str | Path, parent: SearchSpace, members: Sequence[ArchConfig],
                derivation: Mapping[str, Any] | None = None) -> Path:
    """Write a family file (atomically), with its members' checksum."""
    for a in members:
        parent.validate(a)
    doc = {"format": FORMAT, "version": VERSION, "parent": parent.name,
           "members": [str(a) for a in members], "members_sha256": members_sha256(members),
           "derivation": dict(derivation) if derivation else None}
    return write_text(path, json.dumps(doc, indent=1, default=str) + "\n")
