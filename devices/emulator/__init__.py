"""latkit.devices.emulator: an emulated Android phone speaking real ADB, to test the phone path.

A test peer, not product code (STYLE 16): the agent (``latkit.devices.android``) never imports it,
and it takes nothing from the agent but the profile loader (``android/profile.py``).

* ``server.py``: ``EmulatorServer``, the ADB peer over TCP (loopback only), and its command line
  (``python -m latkit.devices.emulator``, ``lat device emulate``);
* ``protocol.py``: the ADB wire format (messages, auth keys, shell v2 and sync packets);
* ``services.py``: ``shell:``, ``shell,v2`` and ``sync:`` streams;
* ``faults.py``: ``FaultSpec``, injected drops, hangs, crashes, slowness and heat;
* ``phone.py`` and ``filesystem.py``: the emulated phone (profile, properties, thermal model,
  counters) and its sandboxed filesystem;
* ``session.py``, ``shell_syntax.py``, ``shell.py`` and ``commands.py``: a small ``sh`` (parser,
  executor) and the toybox-like commands it runs;
* ``benchmark.py``, ``op_profile.py`` and ``stat_text.py``: ``benchmark_model`` with real LiteRT
  inference on the host CPU, its op-profiling tables and its number formatting.
"""

from latkit.devices.emulator.faults import FaultSpec
from latkit.devices.emulator.phone import EmulatedPhone, EmulatorCounters, PhoneProfile, ThermalModel
from latkit.devices.emulator.server import EmulatorServer

__all__ = ["EmulatedPhone", "EmulatorCounters", "EmulatorServer", "FaultSpec", "PhoneProfile",
           "ThermalModel"]
