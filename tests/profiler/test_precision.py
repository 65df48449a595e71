"""fp16 and int8 exports: real quantization of small layers and a small subnet, the precision read
back from the file, and a file whose precision contradicts --precision refused (one line, exit 2)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from latkit.devices.precision import check_precision, detect_precision
from latkit.errors import DeviceError, ExportError
from latkit.profiler.export import ExportCache, export_arch, export_layer, export_module, run_exported
from latkit.profiler.quantize import Calibration, calibration_inputs
from latkit.supernet.model import build_layer, layer_input_shape
from latkit.supernet.space import get_space

SP = get_space("compofa-w1.0")


def _block(r=128):
    return [s for s in SP.unique_layers([r]) if s.kind == "expanded_conv" and s.se][0]


def _stem(r=128):
    return [s for s in SP.unique_layers([r]) if s.kind == "Conv"][0]


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_layer_int8_and_fp16_are_what_they_say(fmt, tmp_path):
    if fmt == "tflite":
        pytest.importorskip("ai_edge_quantizer")
    cache = ExportCache(tmp_path)
    spec = _block()
    paths = {p: export_layer(spec, fmt, cache, precision=p) for p in ("fp32", "fp16", "int8")}
    assert len(set(paths.values())) == 3
    assert {p: detect_precision(f) for p, f in paths.items()} == {p: p for p in paths}
    assert max(paths["int8"].stat().st_size, paths["fp16"].stat().st_size) < paths["fp32"].stat().st_size
    # the quantized layer computes the same function, within int8 resolution
    torch.manual_seed(0)
    mod = build_layer(spec).eval()
    x = torch.randn(layer_input_shape(spec, 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = mod(x).numpy()
    got = np.asarray(run_exported(paths["int8"], x.numpy())).reshape(ref.shape)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3
    # cached: asked again, the same file without a new export
    mtime = paths["int8"].stat().st_mtime_ns
    assert export_layer(spec, fmt, cache, precision="int8") == paths["int8"]
    assert paths["int8"].stat().st_mtime_ns == mtime
    # another calibration set is another file
    other = export_layer(spec, fmt, cache, precision="int8", calibration=Calibration(n=3))
    assert other != paths["int8"]


def test_image_input_calibrates_on_images_and_feature_maps_on_noise(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    got = calibration_inputs(Calibration(str(tmp_path), n=8), (1, 3, 32, 32))
    assert len(got) == 3 and got[0].shape == (1, 3, 32, 32)
    assert not np.allclose(got[0], got[2])  # the three images, normalised
    builtin = calibration_inputs(Calibration(n=4), (2, 3, 32, 32))
    assert len(builtin) == 2 and builtin[0].shape == (2, 3, 32, 32)
    feats = calibration_inputs(Calibration(n=5), (1, 16, 8, 8))
    assert len(feats) == 5 and feats[0].shape == (1, 16, 8, 8)
    with pytest.raises(ExportError, match="no image files"):
        calibration_inputs(Calibration(str(_empty(tmp_path)), n=1), (1, 3, 8, 8))
    with pytest.raises(ExportError, match="not a folder"):
        Calibration(str(tmp_path / "missing"))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_precision_checks_refuse_a_contradiction(tmp_path):
    cache = ExportCache(tmp_path)
    p = export_layer(_stem(), "onnx", cache, precision="int8")
    assert check_precision(p, "int8") == "int8" and check_precision(p, None) == "int8"
    with pytest.raises(DeviceError, match="is an int8 model, not fp32"):
        check_precision(p, "fp32")
    with pytest.raises(ExportError, match="calibrated at one size"):
        export_module(build_layer(_stem()), (1, 3, 128, 128), tmp_path / "d.onnx", "onnx",
                      dynamic_hw=True, precision="int8")


def test_cli_export_and_bench_refuse_a_contradiction(tmp_path):
    out = tmp_path / "m.onnx"
    arch = SP.min_arch(128)
    r = subprocess.run([sys.executable, "-m", "latkit", "export", "--space", SP.name, "--arch",
                        str(arch), "--precision", "fp16", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert detect_precision(out) == "fp16" and ", fp16, " in r.stdout
    for flags, msg in ((["bench", str(out), "--device", "cpu", "--precision", "int8"],
                        "is an fp16 model, not int8"),
                       (["export", "--space", SP.name, "--arch", str(arch), "-o", str(out),
                         "--calib-data", str(tmp_path)], "--calib-data calibrates int8 models")):
        r = subprocess.run([sys.executable, "-m", "latkit", *flags], capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.tflite
def test_subnet_int8_tflite_cli_and_bench_refusal(tmp_path):
    pytest.importorskip("ai_edge_quantizer")
    arch = SP.min_arch(128)
    out = tmp_path / "m.tflite"
    r = subprocess.run([sys.executable, "-m", "latkit", "export", "--space", SP.name, "--arch",
                        str(arch), "--precision", "int8", "-o", str(out), "--json", "--verify"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert detect_precision(out) == "int8" and '"precision": "int8"' in r.stdout
    r = subprocess.run([sys.executable, "-m", "latkit", "bench", str(out), "--device", "cpu-tflite",
                        "--precision", "fp16"], capture_output=True, text=True)
    assert r.returncode == 2 and "is an int8 model, not fp16" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    # the cache path gives the same kind of file
    p = export_arch(SP, arch, "tflite", cache=ExportCache(tmp_path / "c"), precision="fp16")
    assert detect_precision(p) == "fp16"


def test_train_eval_int8_keeps_precisions_apart(tmp_path, folder_checkpoint):
    from latkit.errors import TrainError
    from latkit.supernet.accuracy import accuracy_table

    ckpt, _ = folder_checkpoint(SP)
    arch = SP.min_arch(128)
    (tmp_path / "acc.csv").write_text("arch,top1,space,resolution,checkpoint\n")  # an fp32 table
    (tmp_path / "acc.meta.json").write_text('{"format": "latkit-accuracy", "precision": "fp32"}')
    with pytest.raises(TrainError, match="holds fp32 top-1; this evaluation is int8"):
        accuracy_table(ckpt, SP, [arch], tmp_path / "acc.csv", n_calib=4, n_eval=4,
                       precision="int8", export_scorer=lambda *a: 0.0)
    with pytest.raises(TrainError, match="needs an export_scorer"):
        accuracy_table(ckpt, SP, [arch], tmp_path / "x.csv", precision="int8")


@pytest.mark.slow
def test_train_eval_int8_scores_the_export(tmp_path, folder_checkpoint):
    """``accuracy_table(precision="int8")`` (``lat train eval --precision int8``): each subnet's
    int8 export is scored (ONNX Runtime here, for speed), and the CLI form runs LiteRT."""
    import functools

    from latkit.profiler.quantize import score_int8
    from latkit.supernet.accuracy import accuracy_table

    ckpt, root = folder_checkpoint(SP)
    arch = SP.min_arch(128)
    calls = []

    def scorer(subnet, a, images, spec):
        calls.append((str(a), spec, tuple(images.images.shape[1:])))
        return functools.partial(score_int8, fmt="onnx")(subnet, a, images, spec)

    t = accuracy_table(ckpt, SP, [arch], tmp_path / "acc8.csv", n_calib=4, n_eval=4, batch_size=4,
                       precision="int8", export_scorer=scorer)
    assert calls == [(str(arch), str(root), (3, 128, 128))]
    assert 0.0 <= t.top1[arch] <= 100.0
    assert '"precision": "int8"' in (tmp_path / "acc8.meta.json").read_text()
    r = subprocess.run([sys.executable, "-m", "latkit", "train", "eval", "--checkpoint", str(ckpt),
                        "--archs", str(_archs_file(tmp_path, arch)), "--calib-images", "4",
                        "--eval-images", "4", "--precision", "int8", "--out",
                        str(tmp_path / "cli8.csv"), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"precision": "int8"' in (tmp_path / "cli8.meta.json").read_text()


def _archs_file(tmp_path, arch):
    p = tmp_path / "archs.txt"
    p.write_text(f"{arch}\n")
    return p


def test_layer_campaign_per_precision(tmp_path):
    """``lat profile --precision int8``: its own rows in the store (their precision column), its
    table says int8, an fp32 campaign on the same store measures afresh, and a resume that changes
    the precision is refused."""
    from latkit.errors import LatkitError
    from latkit.profiler.campaign_file import profile
    from latkit.profiler.store import open_store

    store = tmp_path / "s.sqlite"
    common = dict(device="cpu", space=SP.name, resolutions="128", limit=2, quick=True, store=str(store))
    r8 = profile(tmp_path / "int8", precision="int8", **common)
    assert r8.complete and r8.table().precision == "int8" and r8.table().meta["precision"] == "int8"
    r32 = profile(tmp_path / "fp32", **common)
    assert r32.skipped == 0 and r32.table().precision == "fp32"
    with open_store(store) as st:
        frame = st.frame("layer")
    assert sorted(frame["precision"]) == ["fp32", "fp32", "int8", "int8"]
    assert set(frame[frame["precision"] == "int8"]["env_precision"]) == {"int8"}
    with pytest.raises(LatkitError, match="precision = 'fp16' disagrees"):
        profile(tmp_path / "int8", resume=True, precision="fp16")
