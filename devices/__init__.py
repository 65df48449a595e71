"""latkit.devices: run an exported artifact on one target and get a ``Measurement``.

``get_device(name, **options)`` returns a device (``cpu``, ``cpu-tflite``, ``cuda`` or an Android
profile); ``list_devices()`` lists them. Importing this package loads no runtime.

Where things are:

* ``base.py``: the ``Device`` protocol, ``Measurement``, ``ProtocolSettings`` and the shared protocol;
  ``registry.py``: names to devices; ``paths.py``: where the device profiles ship; ``cli.py``:
  ``lat bench`` and ``lat device``;
* local devices: ``onnx_cpu.py`` (``cpu``), ``tflite_cpu.py`` (``cpu-tflite``), ``cuda.py``
  (``cuda``), sharing ``local.py`` and the host facts of ``host.py`` (affinity, pinning, snapshot);
* ``android/``: phones over adb (agent, adb link, ``benchmark_model`` parser, profile loader);
* ``emulator/``: the ADB device emulator, a test peer the agent never imports.
"""

from latkit.devices.base import Measurement, ProtocolSettings
from latkit.devices.registry import get_device, list_devices

__all__ = ["Measurement", "ProtocolSettings", "get_device", "list_devices"]
