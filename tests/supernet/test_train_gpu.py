"""The trainer and the evaluator on a CUDA GPU (skipped without one)."""

import numpy as np
import pytest
import torch
from PIL import Image

from latkit.supernet.accuracy import evaluate_subnets, make_eval_images
from latkit.supernet.data import open_data
from latkit.supernet.model import load_supernet
from latkit.supernet.train import TrainConfig, train

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _need_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")


def _folder(root):
    rng = np.random.default_rng(0)
    for ci, c in enumerate("ab"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
            arr[..., ci] = 255
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_train_on_gpu_then_load_on_cpu(tmp_path):
    root = _folder(tmp_path / "ds")
    cfg = TrainConfig(data=str(root), resolutions=(128, 160), batch_size=4, epochs_scale=0.02,
                      max_steps=3, device="cuda", amp="bf16")
    res = train(cfg, tmp_path / "run", command="test")
    assert res.steps == 3
    model, ck = load_supernet(res.checkpoint)
    assert "cuda" in ck["rng"] and next(model.parameters()).device.type == "cpu"
    data = open_data(str(root))
    sp = model.space
    archs = [sp.max_arch(128), sp.min_arch(128)]
    ev = {128: make_eval_images(data, 128, 8, 4)}
    cpu = evaluate_subnets(model, archs, ev)
    gpu = evaluate_subnets(model.cuda(), archs, ev)
    assert gpu.keys() == cpu.keys()


@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_amp_on_gpu_resolves_saves_and_resumes(tmp_path, amp):
    root = _folder(tmp_path / "ds")
    cfg = TrainConfig(data=str(root), resolutions=(128,), batch_size=4, epochs_scale=0.02,
                      max_steps=2, device="cuda", amp=amp, checkpoint_every_steps=1)
    train(cfg, tmp_path / "run")
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    want = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if amp == "auto" else amp
    assert ck["config"]["amp"] == want
    assert ("grad_scaler" in ck) == (want == "fp16")
    res = train(TrainConfig.from_dict({**ck["config"], "max_steps": 4}), tmp_path / "run",
                resume=True)
    assert res.steps == 4
