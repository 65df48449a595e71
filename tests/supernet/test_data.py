"""Image-folder loader, transforms, elastic-resolution batch plan, built-in digits."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from latkit.errors import TrainError
from latkit.supernet.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augment,
    BatchPlan,
    calibration_indices,
    center_box,
    eval_transform,
    load_eval_images,
    load_train_batch,
    open_data,
    random_resized_box,
    to_tensor,
    train_transform,
)


def make_folder(root, classes=("cat", "dog", "eel"), per_class=5, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            arr[..., ci] = 255
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_image_folder_split_and_labels(tmp_path):
    root = make_folder(tmp_path / "ds")
    (root / "notes.txt").write_text("not a class")
    (root / "empty").mkdir()
    d = open_data(str(root))
    assert d.classes == ["cat", "dog", "eel"] and d.n_classes == 3
    assert len(d.train) + len(d.heldout) == 15
    assert len(d.heldout) == 3  # 10% of 5 rounds to 0 -> at least one per class
    img, y = d.train.item(0)
    assert img.mode == "RGB" and img.size == (48, 40) and y == 0
    again = open_data(str(root))
    assert [str(f) for f in again.heldout.files] == [str(f) for f in d.heldout.files]


def test_image_folder_train_val_layout(tmp_path):
    make_folder(tmp_path / "ds" / "train", per_class=3)
    make_folder(tmp_path / "ds" / "val", classes=("cat", "eel"), per_class=2)
    d = open_data(str(tmp_path / "ds"))
    assert len(d.train) == 9 and len(d.heldout) == 4
    assert sorted(set(d.heldout.labels.tolist())) == [0, 2]
    make_folder(tmp_path / "bad" / "train", per_class=2)
    make_folder(tmp_path / "bad" / "val", classes=("yak",), per_class=1)
    with pytest.raises(TrainError, match="yak"):
        open_data(str(tmp_path / "bad"))


def test_missing_and_empty_dirs_are_one_line_errors(tmp_path):
    with pytest.raises(TrainError) as e:
        open_data(str(tmp_path / "nope"))
    assert "does not exist" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(TrainError) as e:
        open_data(str(tmp_path / "empty"))
    assert "no images" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TrainError, match="builtin:digits"):
        open_data("builtin:cifar")


def test_corrupt_image_is_skipped_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=4)
    (root / "cat" / "0.png").write_bytes(b"this is not a png")
    msgs = []
    d = open_data(str(root), warn=msgs.append)
    files = [str(f) for f in d.train.files]
    bad = files.index(str(root / "cat" / "0.png")) if str(root / "cat" / "0.png") in files else None
    if bad is None:  # it landed in the held-out split
        src, bad = d.heldout, [str(f) for f in d.heldout.files].index(str(root / "cat" / "0.png"))
    else:
        src = d.train
    img, y = src.item(bad)
    assert img.size == (48, 40)
    assert len(msgs) == 1 and "0.png" in msgs[0] and "skipping" in msgs[0]
    src.item(bad)
    assert len(msgs) == 1  # warned once
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        d2 = open_data(str(root))
        for i in range(len(d2.train)):
            d2.train.item(i)
        for i in range(len(d2.heldout)):
            d2.heldout.item(i)
    assert any("unreadable" in str(x.message) for x in w)


def test_transforms():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, x1, y1 = random_resized_box(64, 48, rng, 0.08)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48
        assert (x1 - x0) * (y1 - y0) <= 64 * 48
    assert center_box(100, 60, 0.875) == (24, 4, 76, 56)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    a = train_transform(img, 32, Augment(), np.random.default_rng(2))
    b = train_transform(img, 32, Augment(), np.random.default_rng(2))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert eval_transform(img, 40, Augment()).shape == (40, 40, 3)
    t = to_tensor(np.full((2, 4, 4, 3), 255, np.uint8))
    assert t.shape == (2, 3, 4, 4)
    assert t[0, 0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], 1e-5)


def test_batch_plan_shards_and_resolution():
    single = BatchPlan(40, 4, (128, 132, 136), seed=5)
    ranks = [BatchPlan(40, 2, (128, 132, 136), seed=5, rank=r, world_size=2) for r in range(2)]
    assert single.steps_per_epoch == 10 == ranks[0].steps_per_epoch
    seen = []
    for step in range(25):
        g = single.global_indices(step)
        parts = [p.indices(step) for p in ranks]
        assert np.array_equal(np.concatenate(parts), g)
        assert single.resolution(step) == ranks[0].resolution(step) == ranks[1].resolution(step)
        if step < 10:
            seen += g.tolist()
    assert sorted(seen) == list(range(40))  # one epoch visits every image once
    assert len({single.resolution(s) for s in range(30)}) == 3
    assert not np.array_equal(single.global_indices(0), single.global_indices(10))
    with pytest.raises(TrainError, match="fewer than one global batch"):
        BatchPlan(3, 2, (128,), seed=0, world_size=2)


def test_train_batch_does_not_depend_on_rank_split(tmp_path):
    d = open_data(str(make_folder(tmp_path / "ds", per_class=6)))
    single = BatchPlan(len(d.train), 4, (128,), seed=1)
    x, y, r = load_train_batch(d, single, 3)
    assert x.shape == (4, 3, 128, 128) and r == 128 and x.dtype == torch.float32
    halves = [load_train_batch(d, BatchPlan(len(d.train), 2, (128,), seed=1, rank=k,
                                            world_size=2), 3) for k in range(2)]
    assert torch.equal(torch.cat([h[0] for h in halves]), x)
    assert torch.equal(torch.cat([h[1] for h in halves]), y)
    ci = calibration_indices(d, 5)
    imgs, labels = load_eval_images(d.train, ci, 64, d.augment)
    assert imgs.shape == (5, 64, 64, 3) and np.array_equal(ci, np.sort(ci))


def test_builtin_digits_subset_is_deterministic():
    a = open_data("builtin:digits", max_train=6, max_heldout=4)
    b = open_data("builtin:digits", max_train=3, max_heldout=2)
    assert a.n_classes == 10 and a.augment.flip is False
    assert a.train.images.shape == (6, 144, 144, 3)
    assert np.array_equal(a.train.images[:3], b.train.images)
    assert np.array_equal(a.train.labels[:3], b.train.labels)
    assert "scikit-learn" in a.origin and all(128 <= r <= 144 for r in a.default_resolutions)


def test_builtin_gratings_are_balanced_and_orientation_safe():
    a = open_data("builtin:gratings", max_train=20, max_heldout=10)
    b = open_data("builtin:gratings", max_train=5, max_heldout=2)
    assert a.n_classes == 10 and a.classes[1] == "18deg"
    assert np.array_equal(a.train.images[:5], b.train.images)
    # flips and aspect changes would change the orientation, i.e. the label
    assert a.augment.flip is False and a.augment.ratio == (1.0, 1.0)
    assert "latkit's own generator" in a.origin
