"""once-for-all's own network code (the ``ofa`` package, MIT; the ``ref`` test-only extra) for parity tests.

Why the stand-in modules: ``import ofa...`` runs ``ofa/utils/__init__.py``, which imports
``ofa.utils.my_dataloader.my_random_resize_crop``; that module imports torchvision and subclasses
``torchvision.transforms.RandomResizedCrop`` at import time. torchvision is not installable here
(and must not be: it would pull another torch build), and once-for-all's network classes never call
its data-loading code. So, before importing ofa, ``sys.modules`` gets stand-ins for ``torchvision``,
``torchvision.transforms``, ``torchvision.transforms.functional`` and ``torchvision.datasets`` whose
module ``__getattr__`` returns a new empty class for any name (enough for the subclassing to
succeed). The stand-ins are installed only where the real torchvision is absent, and never by
product code: latkit itself never imports ofa.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

_TV = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
       "torchvision.datasets")


def _stand_in(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    def __getattr__(attr: str):  # noqa: N807 -- module-level __getattr__ (PEP 562)
        if attr.startswith("__"):
            raise AttributeError(attr)
        cls = type(attr, (), {})
        setattr(mod, attr, cls)
        return cls

    mod.__getattr__ = __getattr__  # type: ignore[method-assign]
    mod.__path__ = []  # a package, so that the submodules below can be imported from it
    return mod


def install_torchvision_stand_in() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return  # the real one, or the stand-in already installed
    for name in _TV:
        sys.modules.setdefault(name, _stand_in(name))
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision"].datasets = sys.modules["torchvision.datasets"]
    sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]


def ofa_modules():
    """(OFAMobileNetV3, DynamicSeparableConv2d) from once-for-all's package; skip if not installed."""
    if importlib.util.find_spec("ofa") is None:
        pytest.skip("once-for-all's package is not installed (pip install 'latkit[ref]'; make deps-test does)")
    install_torchvision_stand_in()
    from ofa.imagenet_classification.elastic_nn.modules.dynamic_op import DynamicSeparableConv2d
    from ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3 import OFAMobileNetV3

    return OFAMobileNetV3, DynamicSeparableConv2d
