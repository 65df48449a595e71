"""Export: ONNX and TFLite outputs equal torch; the cache never serves a stale file."""

import random

import pytest
import torch

from latkit.errors import ExportError
from latkit.profiler.export import ExportCache, build_subnet, export_arch, export_layer, max_abs_diff
from latkit.supernet.model import ElasticMobileNetV3, build_layer, layer_input_shape
from latkit.supernet.space import get_space, list_spaces


@pytest.mark.parametrize("name", list_spaces())
def test_onnx_equals_torch(name, tmp_path):
    sp = get_space(name)
    arch = sp.sample(random.Random(5), resolution=sp.resolutions[0])
    torch.manual_seed(0)
    supernet = ElasticMobileNetV3(sp).eval()
    module = build_subnet(sp, arch, supernet)
    path = export_arch(sp, arch, "onnx", tmp_path / "m.onnx", supernet=supernet)
    assert max_abs_diff(module, path, (1, 3, arch.r, arch.r)) < 1e-4


@pytest.mark.tflite
def test_tflite_equals_torch(tmp_path):
    pytest.importorskip("litert_torch")
    sp = get_space("compofa-w1.0")
    arch = sp.sample(random.Random(2), resolution=128)
    module = build_subnet(sp, arch, None, seed=3)
    path = export_arch(sp, arch, "tflite", tmp_path / "m.tflite", seed=3)
    assert max_abs_diff(module, path, (1, 3, 128, 128)) < 1e-4


def test_cache_reuses_and_never_serves_stale(tmp_path):
    sp = get_space("ofa-mbv3-w1.0")
    cache = ExportCache(tmp_path)
    arch = sp.min_arch(128)
    p1 = export_arch(sp, arch, "onnx", cache=cache)
    mtime = p1.stat().st_mtime_ns
    assert export_arch(sp, arch, "onnx", cache=cache) == p1 and p1.stat().st_mtime_ns == mtime
    p1.write_bytes(p1.read_bytes()[:100])  # damaged file -> re-exported
    p2 = export_arch(sp, arch, "onnx", cache=cache)
    assert p2 == p1 and p2.stat().st_size > 1000
    p3 = export_arch(sp, arch, "onnx", cache=cache, seed=1)  # other weights -> other file
    assert p3 != p1
    assert str(arch) in p1.name


def test_layer_family_shares_one_dynamic_onnx(tmp_path):
    sp = get_space("compofa-w1.0")
    cache = ExportCache(tmp_path)
    by_res = {r: [l for l in sp.unique_layers([r]) if l.kind == "expanded_conv" and l.se][0]
              for r in (128, 224)}
    p128 = export_layer(by_res[128], "onnx", cache, dynamic_hw=True)
    p224 = export_layer(by_res[224], "onnx", cache, dynamic_hw=True)
    assert p128 == p224
    for spec in by_res.values():
        torch.manual_seed(0)
        mod = build_layer(spec).eval()
        assert max_abs_diff(mod, p224, layer_input_shape(spec)) < 1e-4


def test_bad_format_and_path(tmp_path):
    sp = get_space("ofa-mbv3-w1.0")
    with pytest.raises(ExportError, match="unknown export format"):
        export_arch(sp, sp.min_arch(128), "pb", tmp_path / "x.pb")
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(ExportError, match="is a directory"):
        export_arch(sp, sp.min_arch(128), "onnx", tmp_path / "d.onnx")
