"""BatchNorm recalibration: re-estimate a subnet's BN statistics before it is evaluated or extracted.

A subnet of a weight-sharing supernet sees different activation statistics than the mixture of
subnets that trained the shared running mean/variance, so its BN statistics are re-estimated on a
fixed subset of training images (once-for-all's ``set_running_statistics``): the statistics of the
active channels of every BN layer the subnet uses are replaced by the average over the batches of the
subset (``momentum=None``: cumulative average, the first batch overwriting the old values), with the
network in train mode and no gradients. ``model.extract(arch)`` afterwards copies these statistics
into the static subnet. Layers and channels the subnet does not use keep their values.

Recalibration is a function over a model and its images (STYLE 4), not a mode of the model; the
global RNG is forked so that dropout during recalibration does not disturb a training run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from latkit.supernet.arch import ArchConfig


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model`` (elastic ones included), in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def calibration_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Train mode, cumulative BN averaging restarted, no grad, global RNG untouched; then restored."""
    bns = batchnorm_layers(model)
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        try:
            for bn in bns:
                bn.momentum = None
                if bn.num_batches_tracked is not None:
                    bn.num_batches_tracked.zero_()
            model.train()
            yield model
        finally:
            for bn, m in zip(bns, momenta, strict=False):
                bn.momentum = m
            model.train(was_training)


def iter_batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for i in range(0, images.shape[0], batch_size):
        yield images[i:i + batch_size]


def recalibrate_bn(model: nn.Module, arch: ArchConfig,
                   batches: torch.Tensor | Iterable[torch.Tensor], n_batches: int | None = None,
                   batch_size: int = 64) -> None:
    """Re-estimate the BN statistics of subnet ``arch`` of ``model`` in place.

    ``batches`` is an N x 3 x r x r tensor (split into ``batch_size`` chunks) or an iterable of
    batches; at most ``n_batches`` are used. The images must be at ``arch.r``.
    """
    if isinstance(batches, torch.Tensor):
        batches = iter_batches(batches, batch_size)
    device = next(model.parameters()).device
    with calibration_mode(model):
        for i, x in enumerate(batches):
            if n_batches is not None and i >= n_batches:
                break
            model(x.to(device), arch)
