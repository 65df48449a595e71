"""The trainer's speed settings: --amp resolution, fp16's gradient scaler, channels-last, the loader."""

import json

import numpy as np
import pytest
import torch

import latkit.supernet.accuracy as acc
from latkit.errors import TrainError
from latkit.supernet.data import BatchLoader, BatchPlan, load_train_batch, open_data
from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.space import get_space
from latkit.supernet.train import (
    COMPILE_TEACHER_MIN_STEPS,
    TrainConfig,
    _autocast,
    can_compile,
    compile_teacher,
    freeze_teacher,
    grad_scaler,
    make_optimizer,
    model_step,
    resolve_amp,
    teacher_logits,
    to_memory_format,
    train,
    use_compiled_teacher,
)


def test_amp_auto_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(acc, "cpu_has_bf16", lambda: False)
    assert resolve_amp("auto", "cpu") == "off"
    monkeypatch.setattr(acc, "cpu_has_bf16", lambda: True)
    assert resolve_amp("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_amp("auto", "cuda:0") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp("auto", "cuda:0") == "fp16"
    assert resolve_amp("fp16", "cpu") == "fp16" and resolve_amp("off", "cuda") == "off"
    with pytest.raises(TrainError, match="--amp must be one of auto, bf16, fp16, off"):
        resolve_amp("fp8", "cpu")
    assert grad_scaler("bf16", "cpu") is None and grad_scaler("fp16", "cpu") is not None


def test_a_config_written_before_amp_reads_as_what_it_ran():
    old = {"space": "compofa-w1.0", "precision": "bf16", "kd_teacher": "full"}
    cfg = TrainConfig.from_dict(old)
    assert (cfg.amp, cfg.channels_last, cfg.compile) == ("bf16", False, False)
    assert TrainConfig.from_dict({**old, "precision": "fp32"}).amp == "off"
    # the step's layout and the loader may change on --resume; the arithmetic may not
    assert TrainConfig(amp="off").differences(TrainConfig(amp="off", channels_last=False,
                                                          workers=0)) == []
    assert TrainConfig(amp="off").differences(TrainConfig(amp="bf16")) == ["amp: 'bf16' -> 'off'"]


def _tiny(space, seed=0):
    torch.manual_seed(seed)
    return ElasticMobileNetV3(space, n_classes=4)


def test_channels_last_step_computes_what_the_nchw_step_does():
    space = get_space("compofa-w1.0")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 128, 128, generator=g), torch.tensor([0, 1, 2, 3])
    arch = space.min_arch(128)
    results = []
    for cl in (False, True):
        model = to_memory_format(_tiny(space).train(), cl)
        teacher = freeze_teacher(to_memory_format(_tiny(space, 1), cl))
        cfg = TrainConfig(amp="off", channels_last=cl)
        opt = make_optimizer(model, cfg)
        for grp in opt.param_groups:
            grp["lr"] = 0.1
        xx = x.contiguous(memory_format=torch.channels_last) if cl else x
        w0 = model.stem[0].weight.detach().contiguous().clone()
        losses = model_step(model, opt, xx, y, [arch], distill=True, cfg=cfg, teacher=teacher)
        w = model.stem[0].weight
        assert w.is_contiguous(memory_format=torch.channels_last) == cl
        results.append((losses[0], w.detach().contiguous() - w0))  # the update SGD made
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    (_, d_nchw), (_, d_nhwc) = results
    assert d_nchw.abs().max() > 0
    assert (d_nchw - d_nhwc).abs().max() <= 1e-2 * d_nchw.abs().max()  # other kernels' rounding


def test_fp16_step_with_an_overflowing_scale_is_skipped_and_the_scale_lowered():
    space = get_space("compofa-w1.0")
    model = _tiny(space).train()
    cfg = TrainConfig(amp="fp16", channels_last=False)
    opt = make_optimizer(model, cfg)
    for grp in opt.param_groups:
        grp["lr"] = 0.1
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 60)  # scaled fp16 gradients overflow
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    x, y = torch.randn(2, 3, 128, 128), torch.tensor([0, 1])
    losses = model_step(model, opt, x, y, [space.min_arch(128)], distill=False, cfg=cfg,
                        autocast=_autocast("fp16", "cpu"), scaler=scaler)
    assert all(np.isfinite(losses))
    assert scaler.get_scale() < 2.0 ** 60
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if "num_batches" not in k)
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)  # a sane scale: the step is taken
    model_step(model, opt, x, y, [space.min_arch(128)], distill=False, cfg=cfg,
               autocast=_autocast("fp16", "cpu"), scaler=scaler)
    w = "stages.0.0.expand_conv.weight"
    assert not torch.equal(before[w], model.state_dict()[w])


def test_worker_processes_give_the_batches_of_the_training_process():
    data = open_data("builtin:gratings", max_train=64)
    plan = BatchPlan(len(data.train), 8, (128, 136), seed=3)
    with BatchLoader(data, plan, 5, 9, workers=2) as loader:
        got = [next(loader) for _ in range(4)]
    for step, (x, y, r) in zip(range(5, 9), got, strict=True):
        x0, y0, r0 = load_train_batch(data, plan, step)
        assert r == r0 and torch.equal(x, x0) and torch.equal(y, y0)


def test_a_latkit_error_in_a_worker_is_raised_as_itself(tmp_path):
    from latkit.supernet.data import image_folder

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(8):
            (tmp_path / c / f"{i}.png").write_bytes(b"not an image")
    data = image_folder(tmp_path)
    plan = BatchPlan(len(data.train), 4, (128,), seed=0)
    with BatchLoader(data, plan, 0, 2, workers=1) as loader, pytest.raises(TrainError) as e:
        next(loader)
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_a_run_records_its_step_settings(tmp_path):
    cfg = TrainConfig(space="compofa-w1.0", data="builtin:gratings", resolutions=(128,),
                      batch_size=4, epochs_scale=0.01, max_train_images=16, max_steps=2,
                      workers=1, amp="auto")
    res = train(cfg, tmp_path / "run")
    ck = torch.load(res.checkpoint, weights_only=True)
    assert ck["config"]["amp"] in ("off", "bf16")  # resolved before it is saved
    assert ck["config"]["channels_last"] is True and ck["config"]["workers"] == 1
    assert all(v.is_contiguous() for v in ck["model"].values())
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["step_settings"]
    assert settings["channels_last"] is True and "measured" in settings
    assert settings["compile_teacher"] is False  # auto: 2 steps do not pay for a compile
    assert isinstance(settings["cpu_kernels"], bool)


@pytest.mark.slow  # torch.compile of the supernet takes minutes on a 2-core CPU
def test_compile_trains_the_same_step(tmp_path):
    space = get_space("compofa-w1.0")
    x, y = torch.randn(2, 3, 128, 128), torch.tensor([0, 1])
    losses = []
    for compiled in (False, True):
        model = _tiny(space).train()
        cfg = TrainConfig(amp="off", channels_last=False, compile=compiled)
        opt = make_optimizer(model, cfg)
        fwd = torch.compile(model) if compiled else None
        losses.append(model_step(model, opt, x, y, [space.min_arch(128)], distill=False, cfg=cfg,
                                 forward=fwd)[0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_fused_sgd_with_zero_buffers_takes_the_plain_sgd_steps():
    """The trainer's SGD is the fused kernel with a zero momentum buffer for every parameter
    (the active parameters change from step to step, and the kernel wants a buffer for each);
    over steps on different subnets it moves the weights as plain SGD does."""
    space = get_space("compofa-w1.0")
    x, y = torch.randn(2, 3, 128, 128), torch.tensor([0, 1])
    archs = [space.min_arch(128), space.max_arch(128), space.min_arch(128)]
    weights = []
    for fused in (True, False):
        model = _tiny(space).train()
        cfg = TrainConfig(amp="off", channels_last=False)
        if fused:
            opt = make_optimizer(model, cfg)
            assert all(g["fused"] for g in opt.param_groups)
        else:
            decay = [p for p in model.parameters() if p.ndim > 1]
            rest = [p for p in model.parameters() if p.ndim <= 1]
            opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=0.0,
                                  momentum=cfg.momentum, nesterov=True, foreach=False)
        for grp in opt.param_groups:
            grp["lr"] = 0.05
        for arch in archs:
            model_step(model, opt, x, y, [arch], distill=False, cfg=cfg)
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    deep = "stages.0.3.expand_conv.weight"  # trained only by the largest subnet
    assert not torch.equal(weights[0][deep], _tiny(space).state_dict()[deep])
    for k, v in weights[0].items():
        torch.testing.assert_close(v, weights[1][k], rtol=1e-5, atol=1e-6)


def test_compile_teacher_auto_only_where_it_pays(monkeypatch):
    n = COMPILE_TEACHER_MIN_STEPS
    assert use_compiled_teacher("on", "cpu", 1, 1) and not use_compiled_teacher("off", "cpu", 10**6, 1)
    if can_compile("cpu"):
        assert use_compiled_teacher("auto", "cpu", n, 1)
    assert not use_compiled_teacher("auto", "cpu", n - 1, 1)
    assert not use_compiled_teacher("auto", "cpu", 3 * n - 1, 3)  # one compile per resolution
    assert not use_compiled_teacher("auto", "cuda:0", 10**6, 1)  # not measured there
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    assert not can_compile("cpu") and not use_compiled_teacher("auto", "cpu", 10**6, 1)
    with pytest.raises(TrainError, match="needs a C[+][+] compiler"):
        compile_teacher(freeze_teacher(_tiny(get_space("compofa-w1.0"))))
    with pytest.raises(TrainError, match="auto, on or off"):
        use_compiled_teacher("yes", "cpu", 1, 1)


@pytest.mark.skipif(not can_compile("cpu"), reason="torch.compile on a CPU needs a C++ compiler")
def test_the_compiled_teacher_gives_the_eager_logits():
    """About a minute: Inductor compiles the full teacher once (the trainer does so only for long
    runs, ``--compile-teacher auto``)."""
    space = get_space("compofa-w1.0")
    teacher = freeze_teacher(to_memory_format(_tiny(space, 1), True))
    x = torch.randn(2, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    eager = teacher_logits(teacher, x, 128)
    compiled = teacher_logits(teacher, x, 128, forward=compile_teacher(teacher))
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    assert not compiled.is_inference()  # usable by the losses
