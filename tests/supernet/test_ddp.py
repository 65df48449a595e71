"""Data parallelism: 2 gloo processes on CPU.

One step of 2-process training (batch 2 per rank) must equal one step of a single process with
batch 4 from the same weights on the same subnets. BatchNorm is the subtle part: in train mode each
rank normalises with its own 2-image statistics, which differ from the 4-image ones, so for this
equivalence the model runs with eval-mode BatchNorm (running statistics, no dropout); the gradient
averaging, batch sharding, shared subnet sampling and optimizer step are then exactly comparable.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.space import get_space

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _helper():
    spec = importlib.util.spec_from_file_location("ddp_step_helper", HERE / "ddp_step_helper.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_folder(root: Path, n_per_class: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("a", "b", "c")):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
            arr[..., ci] = 250
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def _env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OMP_NUM_THREADS": "1"}


def test_two_process_step_equals_single_process_with_double_batch(tmp_path):
    if not (BIN / "torchrun").exists():
        pytest.skip("torchrun is not installed beside this python")
    data_dir = str(make_folder(tmp_path / "ds"))
    out = tmp_path / "ddp.pt"
    res = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
                          str(HERE / "ddp_step_helper.py"), data_dir, str(out)],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)
    helper = _helper()
    single = helper.one_step(data_dir, 0, 1, batch=4)
    torch.manual_seed(0)
    init = ElasticMobileNetV3(get_space("compofa-w1.0"), n_classes=3,
                              kernel_transform=False).state_dict()
    moved = [k for k in single if not torch.equal(single[k], init[k])]
    assert len(moved) > 50  # the step changed most weights
    for k in single:
        assert torch.allclose(ddp[k], single[k], atol=1e-5, rtol=1e-4), k
    # the check can fail: half of the batch alone gives other weights
    half = helper.one_step(data_dir, 0, 1, batch=2)
    assert any(not torch.allclose(half[k], single[k], atol=1e-5, rtol=1e-4) for k in moved)


def test_torchrun_two_processes_train_and_only_rank0_writes(tmp_path):
    if not (BIN / "torchrun").exists() or not (BIN / "lat-train").exists():
        pytest.skip("torchrun / lat-train not installed in this environment")
    data_dir = make_folder(tmp_path / "ds")
    out = tmp_path / "run"
    env = _env()
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "--no-python",
           "lat-train", "--data", str(data_dir), "--batch-size", "2", "--resolutions", "128",
           "--epochs-scale", "0.02", "--max-steps", "2", "--out", str(out), "--no-final-eval",
           "-q"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "last.pt", "train_log.jsonl"]
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2  # rank 0 only
    shutil.rmtree(out)
