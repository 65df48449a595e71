"""``lat train eval --data DIR``: a class-per-folder image folder, once-for-all's evaluation transform,
multi-process decoding (same images as one process), classes in sorted folder-name order."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from latkit.supernet.data import Augment, eval_transform, load_eval_images, open_data

CLASSES = ["n03", "n01", "n10", "n02"]  # written out of order: labels follow sorted names


def _folder(root: Path, n: int = 6, sizes=((120, 90), (80, 130), (100, 100))) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                w, h = sizes[i % len(sizes)]
                Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")).save(d / f"{i}.JPEG")
    return root


def test_once_for_all_eval_transform():
    """Resize the short side to ceil(r / 0.875) (bilinear), then the centred r x r (torchvision's
    Resize + CenterCrop arithmetic: long side int(size * long / short), offsets int(round(...)))."""
    img = Image.fromarray((np.random.default_rng(1).random((90, 120, 3)) * 255).astype("uint8"))
    r = 64
    size = math.ceil(r / 0.875)
    assert size == 74
    nw, nh = int(74 * 120 / 90), 74  # 98 x 74
    top, left = int(round((nh - r) / 2.0)), int(round((nw - r) / 2.0))
    ref = np.asarray(img.resize((nw, nh), Image.BILINEAR).crop((left, top, left + r, top + r)))
    out = eval_transform(img, r, Augment())
    assert out.shape == (r, r, 3) and np.array_equal(out, ref)
    tall = img.transpose(Image.Transpose.TRANSPOSE)  # 90 x 120: the width is the short side
    assert eval_transform(tall, r, Augment()).shape == (r, r, 3)


def test_sorted_classes_and_multiprocess_decoding(tmp_path):
    data = open_data(str(_folder(tmp_path / "img")))
    assert data.classes == sorted(CLASSES)
    assert [data.classes[y] for y in data.heldout.labels[:1]] == ["n01"]
    idx = list(range(len(data.heldout)))
    one, y1 = load_eval_images(data.heldout, idx, 64, data.augment, workers=0)
    seen = []
    two, y2 = load_eval_images(data.heldout, idx, 64, data.augment, workers=2, on_progress=seen.append)
    assert np.array_equal(one, two) and np.array_equal(y1, y2) and sum(seen) == len(idx)


def test_lat_train_eval_on_an_image_folder(tmp_path, capsys):
    """A released once-for-all file (4 classes) evaluated on the folder: BN recalibrated on train/."""
    sys.path.insert(0, str(Path(__file__).parent))
    import ofa_ref
    from test_ofa_format import _ofa_net, _save, released_naming

    ofa_ref.ofa_modules()
    from latkit.cli import main

    f = _save(released_naming(_ofa_net(1.0, n_classes=len(CLASSES)).state_dict()), tmp_path / "w.pth")
    img = _folder(tmp_path / "img")
    rc = main(["train", "eval", "--checkpoint", str(f), "--data", str(img), "-n", "2",
               "--resolutions", "128", "--calib-images", "16", "--eval-images", "24", "--workers", "2",
               "--out", str(tmp_path / "acc.csv")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "img/s" in err and "decoding" in err
    rows = (tmp_path / "acc.csv").read_text().splitlines()
    assert len(rows) == 3 and all(0.0 <= float(r.split(",")[1]) <= 100.0 for r in rows[1:])
    f10 = _save(released_naming(_ofa_net(1.0, n_classes=10).state_dict()), tmp_path / "w10.pth")
    rc = main(["train", "eval", "--checkpoint", str(f10), "--data", str(img), "-n", "1",
               "--resolutions", "128", "--out", str(tmp_path / "acc10.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "4 classes" in err and len(err.strip().splitlines()) == 1
