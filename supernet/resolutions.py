"""The one grammar of ``--resolutions``, beside the spaces it selects from.

A resolution list is comma-separated items, each an input side in pixels or an inclusive range::

    128,160          two resolutions
    128-144          128, 132, 136, 140, 144 (a range steps by 4, the step of every latkit space)
    128-224:8        128, 136, ..., 224 (an explicit step)
    all              every resolution of the space (``None``: the caller's "all")

Items may repeat or overlap; the result keeps the first occurrence of each, in the order given.
With a space, every resolution must be one of the space's; the error lists the ones it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latkit.errors import ArchError

if TYPE_CHECKING:
    from latkit.supernet.space import SearchSpace

#: The step of a range written without one (every space in ``supernet.space`` steps by 4).
DEFAULT_STEP = 4
GRAMMAR = "comma-separated integers and ranges such as 128,160 or 128-224:4, or 'all'"


def _item(item: str) -> list[int]:
    if "-" not in item:
        return [int(item)]
    lo_text, hi_text = item.split("-", 1)
    hi_text, _, step_text = hi_text.partition(":")
    lo, hi = int(lo_text), int(hi_text)
    step = int(step_text) if step_text else DEFAULT_STEP
    if step <= 0 or hi < lo:
        raise ValueError(item)
    return list(range(lo, hi + 1, step))


def parse_resolutions(text: str | None, space: SearchSpace | None = None,
                      flag: str = "--resolutions") -> tuple[int, ...] | None:
    """Parse ``text`` (see the module docstring); ``None`` or ``"all"`` gives ``None``.

    Raises ``ArchError`` naming ``flag`` for text outside the grammar, an empty list, a resolution
    that is not positive, or (with ``space``) one the space does not have.
    """
    if text is None or str(text).strip().lower() == "all":
        return None
    out: list[int] = []
    try:
        for item in str(text).split(","):
            item = item.strip()
            if item:
                out += _item(item)
    except ValueError:
        raise ArchError(f"{flag} takes {GRAMMAR}; got {text!r}") from None
    if not out:
        raise ArchError(f"{flag} is empty: {text!r}; it takes {GRAMMAR}")
    bad = [r for r in out if r <= 0]
    if bad:
        raise ArchError(f"{flag}: resolutions are positive pixel counts, got {bad}")
    if space is not None:
        outside = [r for r in out if r not in space.resolutions]
        if outside:
            rs = space.resolutions
            raise ArchError(f"{flag}: {outside} not in {space.name}, whose resolutions are "
                            f"{rs[0]}-{rs[-1]}:{rs[1] - rs[0] if len(rs) > 1 else 1}")
    return tuple(dict.fromkeys(out))


def format_resolutions(resolutions: tuple[int, ...] | list[int]) -> str:
    """The comma-separated form ``parse_resolutions`` reads back."""
    return ",".join(str(int(r)) for r in resolutions)
