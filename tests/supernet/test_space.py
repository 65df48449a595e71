"""Search spaces: once-for-all's reference figures, key round-trips, validation, operators."""

import json
import random
import subprocess
import sys

import pytest

from latkit.errors import ArchError, SpaceError
from latkit.supernet import arch as arch_mod
from latkit.supernet import layers as layers_mod
from latkit.supernet import space as space_mod
from latkit.supernet.space import ArchConfig, LayerSpec, get_space, list_spaces, unique_layers

SPACES = list_spaces()


def test_reference_figures_w10():
    sp = get_space("ofa-mbv3-w1.0")
    big, small = sp.max_arch(224), sp.min_arch(224)
    assert sp.params(big) == 7_664_760
    assert round(sp.macs(big) / 1e6, 1) == 566.2
    assert sp.params(small) == 3_410_792
    assert round(sp.macs(small) / 1e6, 1) == 121.3


def test_widths_w12_match_ofa():
    assert get_space("ofa-mbv3-w1.2").describe()["widths"] == [24, 24, 32, 48, 96, 136, 192, 1152, 1536]


def test_subnet_counts():
    assert get_space("compofa-w1.0").num_subnets() == 243
    assert len(list(get_space("compofa-w1.0").enumerate(224))) == 243
    n = get_space("ofa-mbv3-w1.0").num_subnets()
    assert n == (9**2 + 9**3 + 9**4) ** 5 and 2.1e19 < n < 2.3e19
    with pytest.raises(ArchError, match="too many to enumerate"):
        next(get_space("ofa-mbv3-w1.0").enumerate(224))


@pytest.mark.parametrize("name", SPACES)
def test_keys_round_trip(name):
    sp, rng = get_space(name), random.Random(0)
    for _ in range(500):
        a = sp.sample(rng)
        assert ArchConfig.parse(str(a)) == a
        assert sp.parse(json.dumps(a.to_ofa_dict())) == a
        assert hash(ArchConfig.parse(str(a))) == hash(a)


def test_inactive_entries_are_normalised():
    d1 = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224}
    d2 = dict(d1, ks=[3, 3, 7, 5] * 5, e=[3, 3, 6, 4] * 5)
    assert ArchConfig.parse(d1) == ArchConfig.parse(d2)
    assert str(ArchConfig.parse(d1)) == str(ArchConfig.parse(d2)) == "r224-k33.33.33.33.33-e33.33.33.33.33"
    assert ArchConfig.parse(dict(d1, r=[224])) == ArchConfig.parse(d1)


@pytest.mark.parametrize(
    "arch, match",
    [
        ("r225-k33.33.33.33.33-e33.33.33.33.33", "resolution r=225"),
        ("r224-k93.33.33.33.33-e33.33.33.33.33", r"ks of stage 1 block 1 = 9 not in \{3, 5, 7\}"),
        ("r224-k33.33.33.33.33-e35.33.33.33.33", r"e of stage 1 block 2 = 5 not in \{3, 4, 6\}"),
        ("r224-k3.33.33.33.33-e3.33.33.33.33", r"d\[0\] = 1 not in \{2, 3, 4\}"),
        ("r224-k33.33.33.33-e33.33.33.33", "has 5 stages"),
        ("r224-k33.33-e33", "same number of digits"),
        ("hello", "malformed arch"),
        ('{"ks": [3], "e": [3], "d": [1, 2], "r": 224}', "divisible"),
        ('{"ks": [3]}', "missing"),
    ],
)
def test_validation_errors_name_the_field(arch, match):
    with pytest.raises(ArchError, match=match):
        get_space("ofa-mbv3-w1.0").parse(arch)


def test_compofa_coupling_and_fixed_kernels():
    sp = get_space("compofa-w1.0")
    with pytest.raises(ArchError, match="couples depth and expand"):
        sp.parse("r224-k333.555.33.33.55-e444.444.33.33.34")
    with pytest.raises(ArchError, match=r"ks of stage 2 block 1 = 3 not in \{5\}"):
        sp.parse("r224-k33.33.33.33.55-e33.33.33.33.33")
    ok = sp.parse("r224-k333.555.33.3333.55-e444.444.33.6666.33")
    assert ok.d == (3, 3, 2, 4, 2)


@pytest.mark.parametrize("name", SPACES)
def test_sample_mutate_crossover_stay_in_space(name):
    sp, rng = get_space(name), random.Random(1)
    archs = [sp.sample(rng) for _ in range(50)]
    for a, b in zip(archs, archs[1:]):
        sp.validate(sp.mutate(a, rng, prob=0.5))
        sp.validate(sp.crossover(a, b, rng))
    assert len({str(a) for a in archs}) > 40  # really random
    r1 = [str(sp.sample(random.Random(7))) for _ in range(3)]
    r2 = [str(sp.sample(random.Random(7))) for _ in range(3)]
    assert r1 == r2  # injected rng -> reproducible


def test_layer_keys_round_trip_and_decomposition():
    sp = get_space("ofa-mbv3-w1.0")
    arch = sp.parse("r224-k35.737.33.5733.35-e34.463.66.3466.44")
    layers = sp.layers(arch)
    assert [l.kind for l in layers[:2]] == ["Conv", "expanded_conv"]
    assert [l.kind for l in layers[-4:]] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    assert len(layers) == 2 + sum(arch.d) + 4
    assert layers[0].key == "Conv-input:224x224x3-output:112x112x16"
    assert layers[2].key == ("expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3"
                             "-stride:2-idskip:0-se:0-hs:0")
    assert layers[-1].key == "Logits-input:1x1x1280-output:1000"
    for l in layers:
        assert LayerSpec.parse(l.key).key == l.key


def test_unique_layers_cover_every_subnet():
    sp = get_space("compofa-w1.0")
    uniq = {l.key for l in unique_layers("compofa-w1.0", [128, 224])}
    for r in (128, 224):
        for a in sp.enumerate(r):
            assert {l.key for l in sp.layers(a)} <= uniq
    assert len(unique_layers("ofa-mbv3-w1.0", [224])) == 96


def test_w12_unique_layers_equal_note10_table(shared_data):
    import yaml

    table = shared_data / "ofa_note10_lut"
    if not table.is_dir():
        pytest.skip("shared/data/ofa_note10_lut not present beside the checkout")
    keys = set()
    for f in table.glob("*_lookup_table.yaml"):
        keys |= set(yaml.safe_load(f.read_text()))
    assert keys == {l.key for l in unique_layers("ofa-mbv3-w1.2")}


def test_unknown_space():
    with pytest.raises(SpaceError, match="known spaces: ofa-mbv3-w1.0"):
        get_space("mbv2")


def test_space_module_re_exports_the_arch_and_layer_modules_without_torch():
    assert space_mod.ArchConfig is arch_mod.ArchConfig
    assert space_mod.LayerSpec is layers_mod.LayerSpec and space_mod.LAYER_KINDS is layers_mod.LAYER_KINDS
    assert space_mod.make_divisible is layers_mod.make_divisible
    assert space_mod.out_size is layers_mod.out_size
    code = ("import sys, latkit.supernet.space, latkit.supernet.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
