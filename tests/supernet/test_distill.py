"""The step loss: label-smoothed CE plus distillation, in-place or from a frozen full network."""

import torch
import torch.nn.functional as F
from torch import nn

from latkit.supernet.distill import accumulate_step, soft_target_ce, subnet_loss


class Heads(nn.Module):
    """A stand-in supernet: one linear head per 'arch' (accumulate_step only calls model(x, arch))."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.heads = nn.ModuleDict({a: nn.Linear(6, 4) for a in ("big", "mid", "small")})

    def forward(self, x, arch):
        return self.heads[arch](x)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=g), torch.randint(0, 4, (8,), generator=g)


def test_subnet_loss_is_once_for_alls():
    x, y = _batch()
    logits, teacher = torch.randn(8, 4), torch.randn(8, 4)
    ce = F.cross_entropy(logits, y, label_smoothing=0.1)
    assert torch.allclose(subnet_loss(logits, y, None), ce)
    kd = -(F.softmax(teacher, 1) * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(soft_target_ce(logits, teacher), kd)
    assert torch.allclose(subnet_loss(logits, y, teacher), kd + ce)  # kd_ratio 1: (kd + ce) * 2/2
    assert torch.allclose(subnet_loss(logits, y, teacher, kd_ratio=3.0), (3 * kd + ce) * 0.5)


def test_inplace_distillation_targets_the_first_subnet():
    x, y = _batch()
    m = Heads()
    losses = accumulate_step(m, x, y, ["big", "mid", "small"], distill=True)
    with torch.no_grad():
        big = m(x, "big")
        assert abs(losses[0] - float(subnet_loss(big, y, None))) < 1e-6
        assert abs(losses[2] - float(subnet_loss(m(x, "small"), y, big))) < 1e-6
    assert all(m.heads[a].weight.grad is not None for a in ("big", "mid", "small"))


def test_frozen_teacher_is_the_target_of_every_subnet_the_largest_included():
    x, y = _batch()
    m = Heads()
    soft = torch.randn(8, 4)
    losses = accumulate_step(m, x, y, ["big", "mid", "small"], distill=True, teacher_logits=soft)
    with torch.no_grad():
        for a, got in zip(("big", "mid", "small"), losses):
            assert abs(got - float(subnet_loss(m(x, a), y, soft))) < 1e-6, a
        assert abs(losses[0] - float(subnet_loss(m(x, "big"), y, None))) > 1e-3
    # without distillation (the full-network phase) the teacher is ignored
    m2 = Heads()
    plain = accumulate_step(m2, x, y, ["big"], distill=False, teacher_logits=soft)
    with torch.no_grad():
        assert abs(plain[0] - float(subnet_loss(m2(x, "big"), y, None))) < 1e-6
