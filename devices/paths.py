"""Where the data latkit ships for its devices lives: one answer for the registry and the loaders.

The Android device profiles are ``<latkit package>/data/devices/<name>.yaml``. The registry lists
them as devices; ``devices/android/profile.py`` loads one by name. Neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import latkit


def profiles_dir() -> Path:
    """Where the Android device profiles ship: ``<latkit package>/data/devices``."""
    return Path(latkit.__file__).parent / "data" / "devices"
