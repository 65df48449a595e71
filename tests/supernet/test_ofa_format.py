"""Released once-for-all / CompOFA supernet files: parity with once-for-all's own network code.

once-for-all's ``OFAMobileNetV3`` (the ``ofa`` package, test-only ``ref`` extra; ``ofa_ref``) is
built with random weights, perturbed BatchNorm statistics and affine weights, and random
kernel-transform matrices; its state dict is saved in the current and in the released key naming;
latkit loads the file through the ordinary ``--checkpoint`` path and, for random archs, latkit's
extracted subnet must give ofa's ``set_active_subnet`` + ``get_active_subnet(preserve_weight=True)``
output on the same input (eval mode): max |latkit - ofa| / max |ofa| < 1e-5 in torch, and the ONNX
latkit exports within 1e-4. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ofa_ref  # noqa: E402

from latkit.errors import TrainError  # noqa: E402
from latkit.supernet.checkpoint import load_checkpoint  # noqa: E402
from latkit.supernet.model import load_supernet  # noqa: E402
from latkit.supernet.ofa_format import canonical_key  # noqa: E402
from latkit.supernet.space import get_space  # noqa: E402

N_CLASSES = 10  # the head is the only part the class count changes; 1000 is tested for detection


def _ofa_net(width: float, n_classes: int = N_CLASSES, seed: int = 0):
    OFAMobileNetV3, _ = ofa_ref.ofa_modules()
    torch.manual_seed(seed)
    net = OFAMobileNetV3(n_classes=n_classes, width_mult=width, ks_list=[3, 5, 7],
                         expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        for name, p in net.named_parameters():
            if name.endswith("_matrix"):
                p.copy_(torch.eye(p.shape[0]) + 0.1 * torch.randn_like(p))
            elif name.endswith(("fc.reduce.bias", "fc.expand.bias", "linear.bias")):
                p.normal_(0.0, 0.2)
    return net.eval()


def released_naming(sd: dict) -> dict:
    """The released files' naming: blocks.N.mobile_inverted_conv.*, doubled forms made single,
    the classifier's doubled (both forms occur in the released files)."""
    out = {}
    for k, v in sd.items():
        k2 = k
        if k.startswith("blocks."):
            n = k.split(".")[1]
            k2 = k.replace(f"blocks.{n}.conv.", f"blocks.{n}.mobile_inverted_conv.", 1)
            k2 = k2.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")
        k2 = k2.replace("classifier.linear.", "classifier.linear.linear.")
        out[k2] = v
    return out


def _save(sd: dict, path: Path) -> Path:
    torch.save({"state_dict": sd, "epoch": 180, "best_acc": 0.0}, path)
    return path


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


def _ofa_subnet(net, arch):
    d = arch.to_ofa_dict()
    net.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
    return net.get_active_subnet(preserve_weight=True).eval()


def _archs(space, n: int, seed: int):
    sp = get_space(space)
    rng = random.Random(seed)
    archs = [sp.max_arch(sp.resolutions[0]), sp.min_arch(sp.resolutions[0])]
    return archs + [sp.sample(rng, [sp.resolutions[0], 160]) for _ in range(n)]


@pytest.fixture(scope="module")
def nets():
    return {1.0: _ofa_net(1.0, seed=1), 1.2: _ofa_net(1.2, seed=2)}


@pytest.mark.parametrize("naming", ["current", "released"])
@pytest.mark.parametrize("space,width", [("ofa-mbv3-w1.0", 1.0), ("ofa-mbv3-w1.2", 1.2)])
def test_parity_with_once_for_all(nets, tmp_path, space, width, naming):
    net = nets[width]
    sd = net.state_dict()
    if naming == "released":
        sd = released_naming(sd)
        assert any(".mobile_inverted_conv." in k for k in sd)
        type(net).load_state_dict(_ofa_net(width, seed=9), sd)  # once-for-all reads this naming
    f = _save(sd, tmp_path / "ofa.pth")
    supernet, ck = load_supernet(f, space)
    assert ck["source"]["naming"] == naming and ck["source"]["width"] == f"{width:.1f}"
    worst = 0.0
    for arch in _archs(space, 3, seed=int(width * 10)):
        x = torch.randn(2, 3, arch.r, arch.r)
        with torch.no_grad():
            ref = _ofa_subnet(net, arch)(x)
            out = supernet.extract(arch).eval()(x)
            via_supernet = supernet(x, arch)
        worst = max(worst, _rel(out, ref), _rel(via_supernet, ref))
    print(f"\nparity {space} {naming} naming: max rel diff {worst:.2e}")
    assert worst < 1e-5


@pytest.mark.parametrize("kernel_transform", ["centre", "matrices"])
def test_parity_compofa(nets, tmp_path, kernel_transform):
    """CompOFA's files are w1.0 with 7x7 kernels and matrices; its space fixes kernels 3,5,3,3,5."""
    _, DynamicSeparableConv2d = ofa_ref.ofa_modules()
    net = nets[1.0]
    f = _save(released_naming(net.state_dict()), tmp_path / "compofa.pth")
    ck = load_checkpoint(f, "compofa-w1.0", kernel_transform)
    if kernel_transform == "centre":
        assert ck["source"]["kernel_transform"] == "centre"  # the default for compofa-w1.0
        assert load_checkpoint(f, "compofa-w1.0")["source"]["kernel_transform"] == "centre"
    from latkit.supernet.model import supernet_from_checkpoint

    supernet = supernet_from_checkpoint(ck, f, "compofa-w1.0")
    old = DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE
    DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE = 1 if kernel_transform == "matrices" else None
    try:
        worst = 0.0
        for arch in _archs("compofa-w1.0", 3, seed=5):
            x = torch.randn(2, 3, arch.r, arch.r)
            with torch.no_grad():
                ref = _ofa_subnet(net, arch)(x)
                out = supernet.extract(arch).eval()(x)
            worst = max(worst, _rel(out, ref))
    finally:
        DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE = old
    print(f"\nparity compofa-w1.0 released naming, kernel transform {kernel_transform}: "
          f"max rel diff {worst:.2e}")
    assert worst < 1e-5


def test_onnx_export_parity(nets, tmp_path):
    from latkit.profiler.export import export_onnx, run_exported

    net = nets[1.2]
    f = _save(released_naming(net.state_dict()), tmp_path / "ofa12.pth")
    supernet, _ = load_supernet(f, "ofa-mbv3-w1.2")
    worst = 0.0
    for arch in _archs("ofa-mbv3-w1.2", 1, seed=3)[1:]:
        x = torch.randn(1, 3, arch.r, arch.r)
        with torch.no_grad():
            ref = _ofa_subnet(net, arch)(x)
        path = export_onnx(supernet.extract(arch), tuple(x.shape), tmp_path / "sub.onnx")
        out = torch.from_numpy(run_exported(path, x.numpy()))
        worst = max(worst, _rel(out, ref))
    print(f"\nparity ONNX (latkit export) vs once-for-all torch, ofa-mbv3-w1.2: max rel diff {worst:.2e}")
    assert worst < 1e-4


@pytest.mark.parametrize("space,width", [("ofa-mbv3-w1.0", 1.0), ("compofa-w1.0", 1.0)])
def test_import_export_round_trip(nets, tmp_path, space, width):
    """released file -> lat train import -> lat train export-ofa -> once-for-all's load_state_dict."""
    from latkit.cli import main

    OFAMobileNetV3, DynamicSeparableConv2d = ofa_ref.ofa_modules()
    net = nets[width]
    src = _save(released_naming(net.state_dict()), tmp_path / "in.pth")
    ckpt, back = tmp_path / "imported.pt", tmp_path / "back.pth"
    assert main(["train", "import", str(src), "--space", space, "-o", str(ckpt)]) == 0
    ck = load_checkpoint(ckpt)
    from latkit.fileio import sha256_file

    assert ck["source"]["sha256"] == sha256_file(src) and ck["source"]["naming"] == "released"
    assert ck["command"] or ck["versions"]
    assert main(["train", "export-ofa", str(ckpt), "-o", str(back)]) == 0
    sd = torch.load(back, map_location="cpu", weights_only=True)["state_dict"]
    ofa2 = OFAMobileNetV3(n_classes=N_CLASSES, width_mult=width, ks_list=[3, 5, 7],
                          expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]).eval()
    ofa2.load_state_dict(sd)
    assert set(sd) == set(ofa2.state_dict())
    supernet, _ = load_supernet(ckpt, space)
    worst = 0.0
    old = DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE
    for arch in _archs(space, 2, seed=7):
        x = torch.randn(1, 3, arch.r, arch.r)
        with torch.no_grad():
            a = _ofa_subnet(ofa2, arch)(x)
            b = supernet.extract(arch).eval()(x)
        worst = max(worst, _rel(a, b))
    DynamicSeparableConv2d.KERNEL_TRANSFORM_MODE = old
    if space.startswith("ofa-"):  # the whole supernet comes back tensor for tensor
        orig = net.state_dict()
        assert all(torch.equal(sd[k], orig[k]) for k in orig)
    print(f"\nround trip {space}: latkit -> export-ofa -> once-for-all: max rel diff {worst:.2e}")
    assert worst < 1e-6


def test_width_and_classes_read_from_tensors(tmp_path):
    """A 1000-class w1.2 file: width and class count come from the tensors; a w1.0 space refuses it."""
    net = _ofa_net(1.2, n_classes=1000, seed=4)
    f = _save(released_naming(net.state_dict()), tmp_path / "ofa_mbv3_d234_e346_k357_w1.2")
    ck = load_checkpoint(f)
    assert (ck["space"], ck["n_classes"]) == ("ofa-mbv3-w1.2", 1000)
    with pytest.raises(TrainError) as e:
        load_supernet(f, "ofa-mbv3-w1.0")
    msg = str(e.value)
    assert "width 1.2" in msg and "1000 classes" in msg and "expects width 1.0" in msg and "\n" not in msg
    # the CLI: one line, exit 2
    r = subprocess.run([sys.executable, "-m", "latkit", "export", "--space", "ofa-mbv3-w1.0",
                        "--arch", str(get_space("ofa-mbv3-w1.0").min_arch(128)), "--checkpoint", str(f),
                        "-o", str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert r.returncode == 2 and "width 1.2" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _proxyless_keys() -> dict:
    """The key pattern of once-for-all's OFAProxylessNASNets file (no final_expand_layer)."""
    t = torch.zeros(1)
    keys = ["first_conv.conv.weight", "first_conv.bn.weight",
            "blocks.0.mobile_inverted_conv.depth_conv.conv.weight",
            "blocks.1.mobile_inverted_conv.inverted_bottleneck.conv.conv.weight",
            "blocks.1.mobile_inverted_conv.depth_conv.conv.conv.weight",
            "feature_mix_layer.conv.weight", "feature_mix_layer.bn.weight", "classifier.linear.weight"]
    return {k: t for k in keys}


def _resnet_keys() -> dict:
    t = torch.zeros(1)
    keys = ["input_stem.0.conv.conv.weight", "input_stem.0.bn.bn.weight",
            "blocks.0.conv1.conv.conv.weight", "blocks.0.conv2.conv.conv.weight",
            "classifier.linear.linear.weight"]
    return {k: t for k in keys}


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


@pytest.mark.parametrize("case", ["truncated", "pickle", "resnet", "proxyless", "not-a-dict"])
def test_bad_files_one_line_exit_2(nets, tmp_path, capsys, case):
    from latkit.cli import main

    f = tmp_path / f"{case}.pth"
    if case == "truncated":
        _save(released_naming(nets[1.0].state_dict()), f)
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        want = "could not be read safely"
    elif case == "pickle":
        f.write_bytes(pickle.dumps({"state_dict": _RunsCode()}, protocol=2))
        want = "calls print"
    elif case == "resnet":
        _save(_resnet_keys(), f)
        want = "ResNet"
    elif case == "proxyless":
        _save(_proxyless_keys(), f)
        want = "ProxylessNAS"
    else:
        torch.save([1, 2, 3], f)
        want = "holds a list"
    rc = main(["train", "import", str(f), "--space", "ofa-mbv3-w1.0", "-o", str(tmp_path / "out.pt")])
    out, err = capsys.readouterr()
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and want in lines[0] and "expected" in lines[0], err
    assert "this pickle runs code" not in out + err
    assert not (tmp_path / "out.pt").exists()


def test_canonical_key_folds_both_namings():
    assert canonical_key("blocks.3.mobile_inverted_conv.depth_conv.conv.conv.weight") == \
        canonical_key("blocks.3.conv.depth_conv.conv.weight")
    assert canonical_key("classifier.linear.linear.bias") == "classifier.linear.bias"
    assert canonical_key("blocks.1.conv.point_linear.bn.bn.running_var") == \
        "blocks.1.conv.point_linear.bn.running_var"


def test_product_code_never_imports_ofa():
    """once-for-all's package is a test- and benchmark-only reference (the ``ref`` extra), never a
    runtime dependency: only tests/ and benchmarks/ may import it."""
    import re

    root = Path(__file__).resolve().parents[2]
    pat = re.compile(r"^\s*(import ofa\b|from ofa\b)", re.M)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if not p.is_relative_to(root / "tests") and not p.is_relative_to(root / "benchmarks")
                 and ".venv" not in p.parts
                 and pat.search(p.read_text(errors="replace"))]
    assert offenders == []


def test_every_checkpoint_option_reads_released_files(nets, tmp_path, capsys):
    """lat export, lat train eval and lat-train --from-full take the released file as it is
    (lat search and lat measure load through the same load_supernet(path, space))."""
    from latkit.cli import main

    f = _save(released_naming(nets[1.0].state_dict()), tmp_path / "ofa_w1.0.pth")
    arch = str(get_space("compofa-w1.0").min_arch(128))
    assert main(["export", "--space", "compofa-w1.0", "--arch", arch, "--checkpoint", str(f),
                 "-o", str(tmp_path / "a.onnx"), "--verify"]) == 0
    (tmp_path / "archs.txt").write_text(arch + "\n")
    assert main(["train", "eval", "--checkpoint", str(f), "--space", "compofa-w1.0", "--data",
                 "builtin:gratings", "--archs", str(tmp_path / "archs.txt"), "--resolutions", "128",
                 "--calib-images", "16", "--eval-images", "32", "--out", str(tmp_path / "acc.csv"),
                 "-q"]) == 0
    assert arch in (tmp_path / "acc.csv").read_text()
    assert main(["train", "--space", "compofa-w1.0", "--from-full", str(f), "--epochs-scale", "0.01",
                 "--max-steps", "1", "--max-train-images", "32", "--no-final-eval", "-q",
                 "--out", str(tmp_path / "run")]) == 0
    assert "starting from the full network" in capsys.readouterr().err
