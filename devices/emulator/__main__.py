"""``python -m latkit.devices.emulator [--port N] [--profile pixel4] [--faults SPEC] [--no-auth]``."""

from latkit.devices.emulator.server import main

raise SystemExit(main())
