"""What supernet writes: through latkit.fileio (refusing FIFOs, devices, symlinks), with provenance."""

import csv
import json
import os
import random
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from latkit import provenance
from latkit.cli import main
from latkit.errors import OutputError
from latkit.supernet.accuracy import ACC_HEADER, accuracy_table
from latkit.supernet.checkpoint import export_checkpoint, load_checkpoint, save_atomic
from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.space import get_space
from latkit.supernet.train import TrainConfig, train

SPACE = get_space("compofa-w1.0")


def _folder(root):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


@pytest.fixture
def ckpt(tmp_path):
    root = _folder(tmp_path / "ds")
    torch.manual_seed(0)
    m = ElasticMobileNetV3(SPACE, n_classes=2, kernel_transform=False)
    path = tmp_path / "c.pt"
    save_atomic(m.checkpoint_dict(kernel_transform=False, config={"data": str(root)}), path)
    return path


def test_save_atomic_refuses_a_symlink_and_a_fifo(tmp_path):
    target = tmp_path / "target.pt"
    target.write_bytes(b"keep")
    link = tmp_path / "link.pt"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        save_atomic({"a": 1}, link)
    assert target.read_bytes() == b"keep"
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="FIFO"):
        save_atomic({"a": 1}, fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.pt", "link.pt", "target.pt"]


def test_export_checkpoint_to_a_device_is_one_line_error(ckpt, capsys):
    assert main(["train", "export-checkpoint", "--checkpoint", str(ckpt), "--out", "/dev/null"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refusing to write /dev/null" in err
    assert os.path.exists("/dev/null")


def test_eval_refuses_a_device_before_evaluating(ckpt, capsys):
    assert main(["train", "eval", "--checkpoint", str(ckpt), "-n", "1", "--resolutions", "128",
                 "--out", "/dev/null", "-q"]) == 2
    assert "refusing to write /dev/null" in capsys.readouterr().err


def test_eval_resumes_a_table_stopped_before_its_first_row(ckpt, tmp_path):
    out = tmp_path / "acc.csv"
    out.write_text(",".join(ACC_HEADER) + "\n")
    archs = [SPACE.sample(random.Random(0), 128)]
    res = accuracy_table(ckpt, SPACE, archs, out, n_calib=4, n_eval=4, command="lat train eval x")
    assert res.n_evaluated == 1 and res.n_kept == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["arch"] for r in rows] == [str(archs[0])]
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["command"] == "lat train eval x"
    again = accuracy_table(ckpt, SPACE, archs, out, n_calib=4, n_eval=4)
    assert again.n_evaluated == 0 and again.n_kept == 1


def test_space_sample_takes_the_one_resolutions_grammar(capsys):
    assert main(["space", "sample", "--space", SPACE.name, "-n", "20", "--resolutions",
                 "128-136"]) == 0
    rs = {SPACE.parse(line).r for line in capsys.readouterr().out.split()}
    assert rs <= {128, 132, 136} and len(rs) > 1
    assert main(["space", "sample", "--space", SPACE.name, "--resolutions", "96"]) == 2
    assert "not in compofa-w1.0" in capsys.readouterr().err


def test_training_records_the_command_as_typed_and_provenance_versions(tmp_path):
    data = _folder(tmp_path / "ds")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--resolutions", "128", "--batch-size", "4",
            "--epochs-scale", "0.012", "--max-steps", "1", "--no-final-eval", "-q", "--out", str(out)]
    assert main(argv, typed=["lat-train", *argv[1:]]) == 0
    ck = load_checkpoint(out / "last.pt")
    assert ck["command"] == shlex.join(["lat-train", *argv[1:]])
    assert ck["versions"].keys() == provenance.versions().keys()
    assert ck["created"][:4].isdigit() and "T" in ck["created"]
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == ck["command"] and config["versions"] == ck["versions"]
    small = export_checkpoint(out / "last.pt", tmp_path / "small.pt")
    assert load_checkpoint(small)["command"] == ck["command"]


def test_library_training_records_the_command_it_is_given(tmp_path):
    data = _folder(tmp_path / "ds")
    cfg = TrainConfig(data=str(data), resolutions=(128,), batch_size=4, epochs_scale=0.012,
                      max_steps=1)
    train(cfg, tmp_path / "a")
    assert load_checkpoint(tmp_path / "a" / "last.pt")["command"] == ""
    train(cfg, tmp_path / "b", command="my notebook")
    assert load_checkpoint(tmp_path / "b" / "last.pt")["command"] == "my notebook"
