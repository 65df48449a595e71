"""The trainer's subnet sampler: uniform as before, a family's members only, uniform over latency."""

import random

import numpy as np
import pytest

from latkit.errors import TrainError
from latkit.supernet.family import save_family
from latkit.supernet.sampling import SubnetSampler, project
from latkit.supernet.schedules import get_schedule, largest_subnet, step_subnets
from latkit.supernet.space import get_space

PARENT = "compofa-w1.0"


def macs_ms(archs):
    """A latency stand-in (tests only): MACs plus a per-layer cost."""
    sp = get_space(PARENT)
    return np.array([sp.macs(a) / 2e7 + 0.01 * len(sp.layers(a)) for a in archs])


@pytest.fixture(scope="module")
def compound():
    sched = get_schedule("compofa", get_space(PARENT))
    return next(p for p in sched.phases if p.name == "compound-2")


def test_uniform_on_a_builtin_space_is_todays_sampler(compound):
    s = SubnetSampler(PARENT, seed=3)
    for step in range(5):
        assert s(compound, step, 128) == step_subnets(get_space(PARENT), compound, 3, step, 128)


def test_a_family_trains_only_its_members_after_the_largest(tmp_path, compound):
    sp = get_space(PARENT)
    rng = random.Random(0)
    members = list(dict.fromkeys(sp.sample(rng, 160) for _ in range(6)))
    path = save_family(tmp_path / "f.json", sp, members)
    s = SubnetSampler(str(path), seed=0)
    assert s.space is sp and s.family is not None
    structures = {(a.ks, a.e) for a in members}
    seen = set()
    for step in range(40):
        archs = s(compound, step, 128)  # the batch resolution, not the members'
        assert archs[0] == largest_subnet(sp, compound, 128)
        assert len(archs) == compound.subnets_per_step
        assert all(a.r == 128 and (a.ks, a.e) in structures for a in archs[1:])
        seen |= {(a.ks, a.e) for a in archs[1:]}
    assert seen == structures  # uniform over the members: every one is drawn in 160 draws
    assert s(compound, 7, 128) == SubnetSampler(str(path), seed=0)(compound, 7, 128)  # (seed, step)


def test_latency_sampling_is_uniform_over_the_latency_range(compound):
    """Uniform per choice concentrates on mid-size subnets; uniform over latency does not."""
    lat = SubnetSampler(PARENT, seed=0, sampling="latency", latency={"cpu": macs_ms})
    uni = SubnetSampler(PARENT, seed=0)

    def spread(sampler):
        draws = [a for step in range(150) for a in sampler(compound, step, 128)[1:]]
        ms = macs_ms(draws)
        pool = macs_ms(lat.pool(compound, 128))
        lo, hi = pool.min(), pool.max()
        hist, _ = np.histogram((ms - lo) / (hi - lo), bins=4, range=(0, 1))
        return hist / hist.sum()

    h_lat, h_uni = spread(lat), spread(uni)
    assert h_lat.min() > 0.15, h_lat  # every quarter of the latency range gets its share
    assert h_uni.min() < 0.1, h_uni  # the grammar's sampler starves an end of the range
    assert len(lat.pool(compound, 128)) == 243  # CompOFA's subnets at one resolution


def test_latency_sampling_needs_targets_and_checks_them(compound):
    with pytest.raises(TrainError, match="needs the targets' latency"):
        SubnetSampler(PARENT, seed=0, sampling="latency")
    with pytest.raises(TrainError, match="--sampling must be one of"):
        SubnetSampler(PARENT, seed=0, sampling="grammar")
    bad = SubnetSampler(PARENT, seed=0, sampling="latency", latency={"cpu": lambda a: np.zeros(1)})
    with pytest.raises(TrainError, match="gave 1 finite values for 243"):
        bad(compound, 0, 128)


def test_projection_keeps_what_the_phase_opened():
    sp = get_space("ofa-mbv3-w1.0")
    sched = get_schedule("ofa", sp)
    kernel = next(p for p in sched.phases if p.name == "kernel")
    a = sp.min_arch(128)
    got = project(sp, kernel, a, 128)  # kernels open; depth and expand at their largest
    assert got.d == (4,) * 5 and all(e == 6 for st in got.e for e in st)
    assert got.ks[0][:2] == a.ks[0]
