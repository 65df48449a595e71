"""latkit: hardware-aware deployment of weight-sharing supernets.

One trained once-for-all / CompOFA MobileNetV3 supernet, many targets: latkit measures layers and
subnets on each target (``devices``, ``profiler``), models what it measured (``predictors``), trains
the supernet (``supernet``) and picks the most accurate subnet under a measured latency budget
(``search``). See README.md for a tour.
"""

__version__ = "0.1.0"

from latkit.errors import LatkitError  # noqa: E402

__all__ = ["__version__", "LatkitError"]
