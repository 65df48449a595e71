"""latkit.devices: run an exported artifact on one target and get a ``Measurement``.

``get_device(name, **options)`` returns a device (``cpu``, ``cpu-tflite``, ``cuda`` or an Android
profile); ``list_devices()`` lists them. Importing this package loads no runtime.
"""

from latkit.devices.base import Measurement, ProtocolSettings
from latkit.devices.registry import get_device, list_devices

__all__ = ["Measurement", "ProtocolSettings", "get_device", "list_devices"]
