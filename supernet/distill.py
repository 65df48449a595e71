"""Losses of one training step: label-smoothed cross-entropy and distillation from soft labels.

once-for-all's loss: ``kd_ratio * KD + CE``, rescaled by ``2 / (kd_ratio + 1)``, with KD the
cross-entropy with the teacher's soft labels (temperature 1). The teacher is one of:

- the full network, frozen (``teacher_logits`` given): what once-for-all's and CompOFA's code do,
  with the trained largest network (7x7 kernels, expand 6, depth 4) as a separate model whose soft
  labels every subnet of the step learns from, the largest included;
- in-place (no ``teacher_logits``): the first subnet of the step, the largest the phase can reach,
  learns from the labels alone and its detached output is the target of the others (as in BigNAS).
  No second network, but the target is only as good as that subnet, which in CompOFA's space has
  the small fixed kernels.

With a temperature T != 1 the KD term is Hinton's: cross-entropy between softmax(t / T) and
softmax(s / T), times T^2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from latkit.supernet.arch import ArchConfig


def soft_target_ce(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
                   ) -> torch.Tensor:
    """Mean over the batch of -sum(softmax(teacher / T) * log_softmax(logits / T)) * T^2."""
    t = temperature
    soft = F.softmax(teacher_logits.detach() / t, dim=1)
    return -(soft * F.log_softmax(logits / t, dim=1)).sum(dim=1).mean() * (t * t)


def subnet_loss(logits: torch.Tensor, target: torch.Tensor, teacher_logits: torch.Tensor | None,
                *, label_smoothing: float = 0.1, kd_ratio: float = 1.0,
                temperature: float = 1.0) -> torch.Tensor:
    """once-for-all's loss: CE (label-smoothed), plus KD from ``teacher_logits`` when given."""
    ce = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    if teacher_logits is None or kd_ratio <= 0:
        return ce
    kd = soft_target_ce(logits, teacher_logits, temperature)
    return (kd_ratio * kd + ce) * (2.0 / (kd_ratio + 1.0))


def accumulate_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    archs: Sequence[ArchConfig], *, distill: bool, label_smoothing: float = 0.1,
                    kd_ratio: float = 1.0, temperature: float = 1.0,
                    autocast: Callable[[], object] | None = None,
                    teacher_logits: torch.Tensor | None = None,
                    scale: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[float]:
    """Forward and backward every subnet of a step on the same batch (gradients accumulate).

    With ``distill``, every subnet learns from ``teacher_logits`` (a frozen full network's output on
    ``x``) when given; otherwise ``archs[0]`` (the largest subnet) is the in-place teacher of the
    others. ``scale``: what the loss is multiplied by before ``backward`` (fp16's gradient scaler).
    Returns each subnet's (unscaled) loss value.
    """
    teacher = teacher_logits.detach().float() if teacher_logits is not None else None
    inplace = teacher is None
    amp = autocast or contextlib.nullcontext
    losses = []
    for j, arch in enumerate(archs):
        with amp():  # type: ignore[operator]
            logits = model(x, arch)
        logits = logits.float()
        loss = subnet_loss(logits, y, teacher if distill else None,
                           label_smoothing=label_smoothing, kd_ratio=kd_ratio,
                           temperature=temperature)
        (scale(loss) if scale is not None else loss).backward()
        if j == 0 and inplace:
            teacher = logits.detach()
        losses.append(float(loss.detach()))
    return losses
