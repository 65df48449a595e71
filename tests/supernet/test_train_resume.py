"""Resume after SIGKILL ends with exactly the weights of an uninterrupted run (same seed)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latkit.errors import TrainError
from latkit.supernet.model import load_supernet
from latkit.supernet.train import TrainConfig, train


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("a", "b")):
        (root / c).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            arr[..., ci] = 250
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    # 10 training images, batch 4: 2 steps per epoch; compofa x0.012: phases of 4, 1 and 3 steps
    return [sys.executable, "-m", "latkit.cli", "train", "--data", str(data), "--resolutions",
            "128", "--batch-size", "4", "--epochs-scale", "0.012", "--lr-scale", "20",
            "--deterministic", "--threads", "1", "--no-final-eval", "-q", "--out", str(out),
            *extra]


def _step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - not written yet
        return -1


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    data = make_folder(tmp_path / "ds")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(_cmd(data, tmp_path / "a"), env=env, capture_output=True, text=True,
                          timeout=900)
    assert full.returncode == 0, full.stderr[-2000:]
    ref = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert ref["step"] == 8 and ref["finished"]

    out = tmp_path / "b"
    proc = subprocess.Popen(_cmd(data, out, "--checkpoint-every", "1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    try:
        while _step(out / "last.pt") < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _step(out / "last.pt")
    assert 3 <= killed_at < 8

    again = subprocess.run(_cmd(data, out), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite a run
    res = subprocess.run(_cmd(data, out, "--resume"), env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {out / 'last.pt'} at step {killed_at}/8" in res.stderr
    got = torch.load(out / "last.pt", weights_only=True)
    assert got["step"] == 8 and got["finished"]
    assert got["model"].keys() == ref["model"].keys()
    for k, v in ref["model"].items():
        assert torch.equal(got["model"][k], v), k
    assert got["counters"]["images"] == ref["counters"]["images"]
    assert got["command"].endswith("--resume") and got["config"] == ref["config"]
    model, ck = load_supernet(out / "last.pt")
    assert ck["space"] == "compofa-w1.0" and model.n_classes == 2


def test_resume_refuses_a_different_configuration(tmp_path):
    data = make_folder(tmp_path / "ds")
    cfg = TrainConfig(data=str(data), resolutions=(128,), batch_size=4, epochs_scale=0.012,
                      max_steps=1)
    train(cfg, tmp_path / "r", command="test")
    with pytest.raises(TrainError, match="different configuration"):
        train(TrainConfig(**{**cfg.to_dict(), "resolutions": (128,), "seed": 1}), tmp_path / "r",
              resume=True, command="test")
    res = train(TrainConfig(**{**cfg.to_dict(), "resolutions": (128,), "max_steps": 2}),
                tmp_path / "r", resume=True, command="test")
    assert res.steps == 2 and not res.finished


def test_from_full_starts_the_elastic_phases_from_another_spaces_teacher(tmp_path):
    from latkit.supernet.model import ElasticMobileNetV3
    from latkit.supernet.space import get_space
    from latkit.supernet.train import load_full_network

    data = make_folder(tmp_path / "ds")
    kw = dict(data=str(data), resolutions=(128,), batch_size=4, epochs_scale=0.012, seed=0)
    teacher = train(TrainConfig(space="ofa-mbv3-w1.0", schedule="ofa", max_steps=2, **kw),
                    tmp_path / "teacher", command="test")
    ofa_sd = torch.load(teacher.checkpoint, weights_only=True)["model"]
    comp = ElasticMobileNetV3(get_space("compofa-w1.0"), n_classes=2, kernel_transform=False)
    assert load_full_network(comp, teacher.checkpoint) == len(comp.state_dict())
    sd = comp.state_dict()
    w7 = ofa_sd["stages.0.0.depthwise.weight"]  # 7x7 -> the stage's fixed 3x3: the centre
    assert torch.equal(sd["stages.0.0.depthwise.weight"], w7[:, :, 2:5, 2:5])
    assert torch.equal(sd["stages.1.0.depthwise.weight"], ofa_sd["stages.1.0.depthwise.weight"][:, :, 1:6, 1:6])
    head = next(k for k in sd if k.startswith("classifier") and k.endswith("weight"))
    assert torch.equal(sd[head], ofa_sd[head])
    res = train(TrainConfig(space="compofa-w1.0", schedule="compofa", from_full=str(teacher.checkpoint),
                            max_steps=1, **kw), tmp_path / "c", command="test")
    ck = torch.load(res.checkpoint, weights_only=True)
    assert ck["phase"] != "full" and ck["config"]["from_full"] == str(teacher.checkpoint)
    assert "teacher_model" not in ck  # the frozen teacher is read from from_full again on resume
    whole = train(TrainConfig(space="compofa-w1.0", schedule="compofa", max_steps=3,
                              from_full=str(teacher.checkpoint), **kw), tmp_path / "w", command="test")
    resumed = train(TrainConfig(space="compofa-w1.0", schedule="compofa", max_steps=3,
                                from_full=str(teacher.checkpoint), **kw), tmp_path / "c",
                    resume=True, command="test")
    a = torch.load(whole.checkpoint, weights_only=True)["model"]
    b = torch.load(resumed.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainError, match="model needs"):
        load_full_network(ElasticMobileNetV3(get_space("compofa-w1.0"), n_classes=5), teacher.checkpoint)


def _weights(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def test_frozen_full_network_teacher_is_kept_and_restored_on_resume(tmp_path):
    """kd_teacher="full": the elastic phases distil from the full network as the full-network
    phase left it; it is frozen, kept in the checkpoint, and a run resumed in an elastic phase
    ends with the weights of an uninterrupted one."""
    data = make_folder(tmp_path / "ds")
    # compofa x0.012, 10 images, batch 4: full 4 steps, compound-1 1, compound-2 3
    kw = dict(data=str(data), resolutions=(128,), batch_size=4, epochs_scale=0.012, seed=3,
              lr_scale=20.0)
    end_full = train(TrainConfig(max_steps=4, **kw), tmp_path / "f", command="test")
    full_sd = torch.load(end_full.checkpoint, weights_only=True)
    assert full_sd["phase"] == "full" and "teacher_model" not in full_sd

    ref = train(TrainConfig(**kw), tmp_path / "a", command="test")
    ref_sd = torch.load(ref.checkpoint, weights_only=True)
    assert ref.finished and ref_sd["config"]["kd_teacher"] == "full"
    teacher = _weights(ref_sd["teacher_model"])
    assert teacher.keys() == _weights(full_sd["model"]).keys()
    for k, v in _weights(full_sd["model"]).items():  # frozen: running statistics included
        assert torch.equal(teacher[k], v), k
    assert any(not torch.equal(ref_sd["model"][k], v) for k, v in teacher.items())

    train(TrainConfig(max_steps=6, **kw), tmp_path / "b", command="test")
    mid = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert mid["step"] == 6 and mid["phase"] == "compound-2" and "teacher_model" in mid
    got = train(TrainConfig(**kw), tmp_path / "b", resume=True, command="test")
    got_sd = torch.load(got.checkpoint, weights_only=True)
    for k, v in ref_sd["model"].items():
        assert torch.equal(got_sd["model"][k], v), k

    inplace = train(TrainConfig(kd_teacher="inplace", **kw), tmp_path / "c", command="test")
    in_sd = torch.load(inplace.checkpoint, weights_only=True)
    assert "teacher_model" not in in_sd  # and the targets differ, so the weights do too
    assert any(not torch.equal(in_sd["model"][k], v) for k, v in ref_sd["model"].items())
    # checkpoints written before kd_teacher existed resume with the in-place teacher they used
    old = {k: v for k, v in in_sd["config"].items() if k != "kd_teacher"}
    assert TrainConfig.from_dict(old).kd_teacher == "inplace"
    with pytest.raises(TrainError, match="--kd-teacher"):
        train(TrainConfig(kd_teacher="frozen", **kw), tmp_path / "d", command="test")
