"""Arch features: exact MACs/params/table sums, zeros for inactive blocks, loud table gaps."""

from __future__ import annotations

import random

import numpy as np
import pytest

from latkit.errors import LookupMiss
from latkit.predictors.features import ArchFeaturizer, as_archs
from latkit.supernet.space import get_space


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "compofa-w1.0", "ofa-mbv3-w1.2"])
def test_costs_match_the_space(name):
    sp = get_space(name)
    f = ArchFeaturizer(sp)
    rng = random.Random(3)
    archs = [sp.sample(rng) for _ in range(50)] + [sp.max_arch(), sp.min_arch()]
    X = f.transform(archs)
    assert X.shape == (52, len(f.names)) and len(set(f.names)) == len(f.names)
    np.testing.assert_allclose(X[:, f.names.index("macs_M")] * 1e6, [sp.macs(a) for a in archs])
    np.testing.assert_allclose(X[:, f.names.index("params_M")] * 1e6, [sp.params(a) for a in archs])
    for s in range(sp.n_stages):
        assert list(X[:, f.names.index(f"d_s{s + 1}")]) == [a.d[s] for a in archs]


def test_inactive_blocks_are_zero():
    sp = get_space("ofa-mbv3-w1.0")
    f = ArchFeaturizer(sp)
    x = f.transform([sp.min_arch(224)])[0]  # depth 2 everywhere: blocks 3 and 4 inactive
    for s in range(1, 6):
        for b in (3, 4):
            cols = [i for i, n in enumerate(f.names) if n.split("*")[0].endswith(f"_s{s}b{b}")]
            assert cols and not x[cols].any()
        assert x[f.names.index(f"k3_s{s}b1")] == 1 and x[f.names.index(f"e3_s{s}b2")] == 1


def test_table_columns_sum_to_the_table(table, space, data):
    archs, _ = data
    f = ArchFeaturizer(space, table)
    X = f.transform(archs[:30])
    want = [table.predict_arch_sum(space, a) for a in archs[:30]]
    np.testing.assert_allclose(X[:, f.names.index("lut_ms")], want, rtol=1e-12)
    parts = [f.names.index("lut_ms_fixed")] + [f.names.index(f"lut_ms_s{s}") for s in range(1, 6)]
    np.testing.assert_allclose(X[:, parts].sum(axis=1), want, rtol=1e-12)


def test_missing_table_entry_names_key_and_command(table, space):
    f = ArchFeaturizer(space, table)  # the table covers 160, 192, 224 only
    arch = space.sample(random.Random(0), 128)
    with pytest.raises(LookupMiss) as info:
        f.transform([arch])
    msg = str(info.value)
    assert "input:" in msg and "lat-profile --device synthetic" in msg and "128" in msg


def test_as_archs_accepts_every_form_and_validates(space):
    a = space.max_arch(224)
    got = as_archs(space, [a, str(a), a.to_ofa_dict(4)])
    assert got == [a, a, a]
    with pytest.raises(Exception, match="r=100"):
        as_archs(space, ["r100" + str(a)[4:]])


def test_lut_sum_alone_equals_the_lut_column_to_the_bit(table, space, data):
    """The calibrated table's sum skips the other features but gives transform's numbers exactly."""
    archs, _ = data
    f = ArchFeaturizer(space, table)
    assert np.array_equal(f.lut_sum_ms(archs), f.transform(archs)[:, f.names.index("lut_ms")])
    assert f.lut_sum_ms([]).shape == (0,)
