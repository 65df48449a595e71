"""Where the data latkit ships for its devices lives, and where the user's own devices live.

The Android device profiles latkit ships are ``<latkit package>/data/devices/<name>.yaml``; the ones
``lat device add`` writes are ``$LATKIT_HOME/devices/<name>.yaml`` (``LATKIT_HOME`` defaults to
``~/.config/latkit``). A user profile of the same name as a built-in one wins. The registry lists
both; ``devices/android/profile.py`` loads one by name. Neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import latkit


def profiles_dir() -> Path:
    """Where the Android device profiles ship: ``<latkit package>/data/devices``."""
    return Path(latkit.__file__).parent / "data" / "devices"


def latkit_home() -> Path:
    """The user's latkit directory: ``$LATKIT_HOME``, default ``~/.config/latkit``."""
    return Path(os.environ.get("LATKIT_HOME") or "~/.config/latkit").expanduser()


def user_profiles_dir() -> Path:
    """Where ``lat device add`` writes profiles: ``$LATKIT_HOME/devices``."""
    return latkit_home() / "devices"


def locks_dir() -> Path:
    """Per-phone lock files shared by every latkit process of this user: ``$LATKIT_HOME/locks``."""
    return latkit_home() / "locks"


def profile_files() -> dict[str, tuple[Path, str]]:
    """Android profile name -> (YAML file, ``"builtin"`` or ``"user"``); a user profile wins."""
    found: dict[str, tuple[Path, str]] = {}
    for folder, kind in ((profiles_dir(), "builtin"), (user_profiles_dir(), "user")):
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")):
                found[p.stem] = (p, kind)
    return dict(sorted(found.items()))
