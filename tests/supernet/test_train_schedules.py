"""Schedules as data: published phases, scaling, per-phase subnet sampling, lr curve."""

import math
import random

import pytest

from latkit.errors import TrainError
from latkit.supernet.schedules import (
    COMPOFA_KERNELS,
    compofa_schedule,
    get_schedule,
    largest_subnet,
    ofa_schedule,
    sample_subnet,
    step_subnets,
)
from latkit.supernet.space import get_space
from latkit.supernet.train import lr_at, plan_phases

OFA = get_space("ofa-mbv3-w1.0")
COMP = get_space("compofa-w1.0")


def test_ofa_schedule_is_progressive_shrinking():
    s = ofa_schedule()
    assert [p.name for p in s.phases] == ["full", "kernel", "depth-1", "depth-2", "expand-1",
                                          "expand-2"]
    assert [p.epochs for p in s.phases] == [180, 125, 25, 125, 25, 125]
    assert [sorted(p.dims_open) for p in s.phases] == [
        [], ["ks"], ["d", "ks"], ["d", "ks"], ["d", "e", "ks"], ["d", "e", "ks"]]
    assert s.phases[2].d_choices == (3, 4) and s.phases[4].e_choices == (4, 6)
    assert [p.reorder_channels_before for p in s.phases] == [False] * 4 + [True] * 2
    assert not s.phases[0].distill and s.phases[0].subnets_per_step == 1
    assert s.kernel_transform


def test_compofa_schedule_has_no_kernel_phase():
    s = compofa_schedule()
    assert [p.name for p in s.phases] == ["full", "compound-1", "compound-2"]
    assert all("ks" not in p.dims_open for p in s.phases)
    assert all(p.compound for p in s.phases[1:])
    assert not s.kernel_transform
    assert s.total_epochs == 180 + 25 + 125


def test_scaled_multiplies_every_phase():
    s = ofa_schedule().scaled(0.01)
    assert [round(p.epochs, 4) for p in s.phases] == [1.8, 1.25, 0.25, 1.25, 0.25, 1.25]
    assert s.phases[1].warmup_epochs == pytest.approx(0.05)
    with pytest.raises(TrainError):
        ofa_schedule().scaled(0)


def test_ofa_schedule_refuses_coupled_space():
    with pytest.raises(TrainError, match="couples"):
        get_schedule("ofa", COMP)
    with pytest.raises(TrainError, match="unknown schedule"):
        get_schedule("bogus")
    get_schedule("compofa", OFA)  # CompOFA subnets inside the once-for-all space are fine


@pytest.mark.parametrize("phase_name,check", [
    ("kernel", lambda a: a.d == (4,) * 5 and all(e == 6 for s in a.e for e in s)),
    ("depth-1", lambda a: set(a.d) <= {3, 4} and all(e == 6 for s in a.e for e in s)),
    ("depth-2", lambda a: all(e == 6 for s in a.e for e in s)),
    ("expand-1", lambda a: all(e in (4, 6) for s in a.e for e in s)),
])
def test_ofa_phases_sample_only_their_dimensions(phase_name, check):
    phase = next(p for p in ofa_schedule().phases if p.name == phase_name)
    rng = random.Random(0)
    archs = [sample_subnet(OFA, phase, rng, 128) for _ in range(50)]
    assert all(check(a) for a in archs)
    assert len(set(archs)) > 10
    assert largest_subnet(OFA, phase, 128) == OFA.max_arch(128)


def test_compound_phase_couples_depth_and_expand():
    phase = compofa_schedule().phases[1]
    rng = random.Random(1)
    for space in (COMP, OFA):
        for _ in range(30):
            a = sample_subnet(space, phase, rng, 160)
            for s in range(5):
                assert (a.d[s], a.e[s][0]) in ((2, 3), (3, 4), (4, 6))
                assert set(a.e[s]) == {a.e[s][0]}
                assert set(a.ks[s]) == {COMPOFA_KERNELS[s]}
            COMP.validate(a)
    assert largest_subnet(COMP, phase, 128) == COMP.max_arch(128)


def test_step_subnets_are_a_function_of_seed_and_step():
    phase = ofa_schedule().phases[5]
    a = step_subnets(OFA, phase, seed=3, step=17, r=128)
    assert len(a) == phase.subnets_per_step and a[0] == OFA.max_arch(128)
    assert a == step_subnets(OFA, phase, seed=3, step=17, r=128)
    assert a != step_subnets(OFA, phase, seed=3, step=18, r=128)
    assert a != step_subnets(OFA, phase, seed=4, step=17, r=128)


def test_plan_phases_and_learning_rate_curve():
    s = ofa_schedule().scaled(0.01)
    plans = plan_phases(s, steps_per_epoch=10)
    assert [p.steps for p in plans] == [18, 12, 2, 12, 2, 12]  # round(1.25 * 10) = 12
    assert [p.start for p in plans] == [0, 18, 30, 32, 44, 46]
    tiny = plan_phases(ofa_schedule().scaled(1e-6), steps_per_epoch=10)
    assert [p.steps for p in tiny] == [1] * 6
    k = plans[1]
    assert k.warmup_steps == 0  # 0.05 epochs * 10 = 0.5 -> 0
    pp = plan_phases(ofa_schedule().scaled(0.1), steps_per_epoch=10)[1]
    assert pp.warmup_steps == 5
    peak = 0.3
    lrs = [lr_at(pp, pp.start + t, peak) for t in range(pp.steps)]
    assert lrs[:5] == pytest.approx([0.06, 0.12, 0.18, 0.24, 0.30])
    assert lrs[5] == pytest.approx(peak)
    assert all(b <= a for a, b in zip(lrs[5:], lrs[6:]))
    assert lrs[-1] == pytest.approx(0.5 * peak * (1 + math.cos(math.pi * (pp.steps - 6) /
                                                                (pp.steps - 5))))
