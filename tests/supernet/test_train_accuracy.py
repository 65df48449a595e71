"""Accuracy table: prefix-shared evaluation equals one-at-a-time recalibrate-and-evaluate."""

import csv
import random

import numpy as np
import pytest
import torch

from latkit.errors import TrainError
from latkit.predictors.accuracy import fit_accuracy_predictor
from latkit.supernet.accuracy import (
    EvalImages,
    accuracy_table,
    evaluate_subnets,
)
from latkit.supernet.accuracy_csv import read_accuracy_csv
from latkit.supernet.bn_calib import recalibrate_bn
from latkit.supernet.data import IMAGENET_MEAN, IMAGENET_STD
from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")


def _images(r, n_calib=24, n_eval=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    calib = torch.randint(0, 256, (n_calib, 3, r, r), generator=g, dtype=torch.uint8)
    imgs = torch.randint(0, 256, (n_eval, 3, r, r), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 4, (n_eval,), generator=g)
    return EvalImages(r, calib, imgs, labels)


def _norm(u8):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (u8.float() / 255 - mean) / std


def _naive_top1(model, arch, ev, bs):
    recalibrate_bn(model, arch, _norm(ev.calib), batch_size=bs)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(_norm(ev.images[i:i + bs]), arch)
                            for i in range(0, len(ev.images), bs)])
    return 100.0 * (logits.argmax(1) == ev.labels).float().mean().item(), logits


def test_prefix_shared_evaluation_matches_one_at_a_time():
    torch.manual_seed(0)
    model = ElasticMobileNetV3(SPACE, n_classes=4, kernel_transform=False)
    rng = random.Random(0)
    base = SPACE.sample(rng, 128)
    archs = [base, SPACE.min_arch(128), SPACE.max_arch(128)]
    # siblings that share long prefixes with base
    for s in (4, 3, 1):
        a = SPACE.sample(rng, 128)
        archs.append(type(base)(128, base.ks[:s] + a.ks[s:], base.e[:s] + a.e[s:]))
    archs.append(SPACE.sample(rng, 132))
    images = {128: _images(128), 132: _images(132, seed=1)}
    # train the supernet a bit so that the logits are not all alike
    seen = []
    got = evaluate_subnets(model, archs, images, batch_size=8,
                           on_result=lambda a, t: seen.append(a))
    assert sorted(map(str, seen)) == sorted(map(str, set(archs)))
    for a in archs:
        want, _ = _naive_top1(model, a, images[a.r], 8)
        assert got[a] == pytest.approx(want), str(a)


def test_accuracy_table_writes_and_resumes(tmp_path, folder_checkpoint):
    ckpt, root = folder_checkpoint(SPACE)
    archs = [SPACE.min_arch(128), SPACE.max_arch(128), SPACE.sample(random.Random(2), 128)]
    out = tmp_path / "acc.csv"
    t = accuracy_table(ckpt, SPACE, archs[:2], out, n_calib=4, n_eval=4, batch_size=4)
    assert t.n_evaluated == 2 and t.n_kept == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["arch", "top1", "space", "resolution", "checkpoint"]
    assert [r["arch"] for r in rows] == [str(a) for a in archs[:2]]
    assert all(0 <= float(r["top1"]) <= 100 and r["resolution"] == "128" for r in rows)
    t2 = accuracy_table(ckpt, SPACE, archs, out, n_calib=4, n_eval=4, batch_size=4)
    assert t2.n_evaluated == 1 and t2.n_kept == 2 and len(t2.top1) == 3
    assert [a for a, _, _ in read_accuracy_csv(out, SPACE)] == archs
    assert (tmp_path / "acc.meta.json").is_file()
    from PIL import Image

    (root / "c").mkdir()  # a class the checkpoint was not trained on
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "c" / "0.png")
    with pytest.raises(TrainError, match="classes"):
        accuracy_table(ckpt, SPACE, archs, out, data_spec=str(root), n_calib=4, n_eval=4)


def test_accuracy_predictor_ranks_subnets():
    archs = [a for a in SPACE.enumerate(128)]
    rng = np.random.default_rng(0)
    y = np.array([SPACE.macs(a) / 1e6 for a in archs]) * 0.1 + rng.normal(0, 0.5, len(archs))
    pred, metrics = fit_accuracy_predictor(SPACE, archs, y, model="ridge", seed=0)
    assert metrics["spearman_heldout"] > 0.8 and metrics["n_test"] == round(0.2 * len(archs))
    assert pred.predict(archs[:3]).shape == (3,)
    with pytest.raises(TrainError):
        fit_accuracy_predictor(SPACE, archs[:5], y[:5])


def test_precision_auto_and_the_model_is_given_back_in_its_memory_format(monkeypatch):
    import latkit.supernet.accuracy as acc

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert acc.resolve_precision("fp32", cpu) == "fp32" and acc.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(acc, "cpu_has_bf16", lambda: False)
    assert acc.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(acc, "cpu_has_bf16", lambda: True)
    assert acc.resolve_precision("auto", cpu) == "bf16"
    with pytest.raises(TrainError, match="fp32, bf16 or auto"):
        acc.resolve_precision("fp16", cpu)
    torch.manual_seed(0)
    model = ElasticMobileNetV3(SPACE, n_classes=4, kernel_transform=False)
    a = SPACE.max_arch(128)
    fp32 = evaluate_subnets(model, [a], {128: _images(128)}, batch_size=8)
    bf16 = evaluate_subnets(model, [a], {128: _images(128)}, batch_size=8, precision="bf16")
    assert abs(fp32[a] - bf16[a]) <= 10.0  # 20 images: at most two may flip
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)
