"""The supernet trainer: schedules of phases, several subnets per step, torchrun DDP, exact resume.

``train(config, out_dir)`` trains ``ElasticMobileNetV3(config.space)`` with a schedule of
``latkit.supernet.schedules`` on a data set of ``latkit.supernet.data`` and writes ``out_dir/last.pt``
(see ``checkpoint`` for its contents), ``out_dir/config.json`` and ``out_dir/train_log.jsonl``.

One step: the batch plan gives this rank's images and the batch resolution (from (seed, step)); the
phase gives the subnets (the largest first, then random ones, from (seed, step)); every subnet runs
forward and backward on the batch (gradients accumulate), distilled from the frozen full network
(``kd_teacher="full"``: the ``from_full`` checkpoint's network, or this run's own network as its
full-network phase left it, as both code bases do) or from the step's first subnet
(``kd_teacher="inplace"``); under
torchrun the accumulated gradients are averaged over ranks in one flat all-reduce; SGD with Nesterov
momentum steps with the learning rate of the phase's warmup-then-cosine curve. Every phase starts
with a fresh optimizer (each once-for-all/CompOFA phase is a separate run), after re-ordering
channels by importance where the phase asks for it.

Distributed: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...) selects
``torch.distributed`` with gloo on CPU and nccl on CUDA. Data parallelism is written out instead of
wrapping the model in ``DistributedDataParallel``: every rank samples the same subnets, so the same
parameters receive gradients on every rank and one all-reduce after the step's last backward
replaces DDP's per-backward synchronisation and its unused-parameter search. BatchNorm statistics
are per rank (as in once-for-all); only rank 0 writes files.

Speed (``amp``, ``channels_last``, ``compile``, ``workers``; defaults by measurement, see
``STEP_DEFAULTS_MEASURED``): the step runs under the resolved ``--amp`` (bf16 autocast, or fp16 with a
``GradScaler`` whose state is checkpointed), with NHWC weights and activations, the teacher once per
step under ``torch.inference_mode``, and the next batches made by ``BatchLoader`` worker processes
while it runs. ``model_step`` is the step on a batch (``benchmarks/train_throughput.py`` times it).
Checkpoints hold the weights in the standard layout whatever the run's.

Resume: a checkpoint holds model, optimizer, step, phase, counters and RNG states; batches and
subnets are functions of (seed, step), so ``train(..., resume=True)`` continues a killed run and
ends with the weights an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from latkit.errors import TrainError
from latkit.fileio import check_writable, write_text
from latkit.provenance import now_iso, versions
from latkit.supernet.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)
from latkit.supernet.data import BatchLoader, BatchPlan, TrainData, load_train_batch, open_data
from latkit.supernet.distill import accumulate_step
from latkit.supernet.model import ElasticMobileNetV3, supernet_from_checkpoint
from latkit.supernet.ops import use_cpu_kernels
from latkit.supernet.sampling import LatencyFn, SubnetSampler, latency_provenance
from latkit.supernet.schedules import Phase, Schedule, get_schedule, step_subnets
from latkit.supernet.space import get_space

REFERENCE_BATCH = 256  # published learning rates are for this global batch


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint)."""

    space: str = "compofa-w1.0"
    schedule: str = "compofa"
    data: str = "builtin:gratings"
    resolutions: tuple[int, ...] | None = None  # None: the data set's default
    epochs_scale: float = 1.0
    batch_size: int = 16  # per process
    lr_scale: float = 1.0  # times the published lr rescaled to the global batch
    weight_decay: float = 3e-5
    momentum: float = 0.9
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    kd_temperature: float = 1.0
    dropout: float = 0.1
    seed: int = 0
    max_train_images: int | None = None
    # mixed precision (see ``resolve_amp``): "auto" is resolved by ``train`` before it is saved
    amp: str = "auto"
    deterministic: bool = False
    # how a run is carried out; may change on --resume (the same arithmetic in other kernels)
    channels_last: bool = True  # NHWC activations and weights (see ``STEP_DEFAULTS_MEASURED``)
    compile: bool = False  # torch.compile the supernet's forward
    compile_teacher: str = "auto"  # torch.compile the frozen teacher: auto|on|off (``use_compiled_teacher``)
    cpu_kernels: str = "auto"  # latkit's C++ depthwise-gradient kernel: auto|on|off (``resolve_cpu_kernels``)
    workers: int = 2  # loader worker processes (0: load batches in the training process)
    checkpoint_every_steps: int = 0
    checkpoint_every_s: float = 600.0
    max_steps: int | None = None
    device: str = "auto"
    # start from the full network of this checkpoint (either space) and skip the schedule's
    # full-network phase, as both code bases start their elastic phases from one trained teacher
    from_full: str | None = None
    # distillation target of the elastic phases: "full" (a frozen copy of the full network, as
    # once-for-all's and CompOFA's code) or "inplace" (the step's largest subnet)
    kd_teacher: str = "full"
    # how each step's random subnets are drawn (supernet/sampling.py): "uniform" or "latency"
    # (uniform over the latency range of these (device, predictor spec) targets)
    sampling: str = "uniform"
    latency: tuple[tuple[str, str], ...] | None = None

    RUNTIME_FIELDS = ("checkpoint_every_steps", "checkpoint_every_s", "max_steps", "device",
                      "channels_last", "compile", "compile_teacher", "cpu_kernels", "workers")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resolutions"] = list(self.resolutions) if self.resolutions else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if d and "kd_teacher" not in d:  # written before the frozen teacher: in-place distillation
            kw["kd_teacher"] = "inplace"
        if d and "amp" not in d:  # written before --amp: --precision fp32|bf16, NCHW, eager
            kw["amp"] = "bf16" if d.get("precision") == "bf16" else "off"
            kw.setdefault("channels_last", False)
            kw.setdefault("compile", False)
        if kw.get("resolutions") is not None:
            kw["resolutions"] = tuple(int(r) for r in kw["resolutions"])
        if kw.get("latency") is not None:
            kw["latency"] = tuple((str(d), str(p)) for d, p in kw["latency"])
        return cls(**kw)

    def differences(self, other: TrainConfig) -> list[str]:
        return [f"{f.name}: {getattr(other, f.name)!r} -> {getattr(self, f.name)!r}"
                for f in fields(self) if f.name not in self.RUNTIME_FIELDS
                and getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class PhasePlan:
    index: int
    phase: Phase
    start: int  # first global step
    steps: int
    warmup_steps: int

    @property
    def end(self) -> int:
        return self.start + self.steps


@dataclass(frozen=True)
class StepInfo:
    """What the progress hook gets after every step."""

    step: int
    total_steps: int
    phase: str
    lr: float
    loss: float
    resolution: int
    n_subnets: int
    images_per_s: float
    images: int


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    steps: int
    total_steps: int
    finished: bool
    train_s: float
    images: int
    image_passes: int


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def plan_phases(schedule: Schedule, steps_per_epoch: int) -> list[PhasePlan]:
    """Phase lengths in steps: round(epochs * steps_per_epoch), at least 1 (0 epochs: skipped)."""
    plans, start = [], 0
    for i, p in enumerate(schedule.phases):
        if p.epochs <= 0:
            continue
        steps = max(1, int(round(p.epochs * steps_per_epoch)))
        warm = min(steps - 1, int(round(p.warmup_epochs * steps_per_epoch)))
        plans.append(PhasePlan(i, p, start, steps, max(0, warm)))
        start += steps
    return plans


def lr_at(pp: PhasePlan, step: int, peak: float) -> float:
    """Linear warmup to ``peak`` over the warmup steps, then cosine to 0 over the rest."""
    t = step - pp.start
    if t < pp.warmup_steps:
        return peak * (t + 1) / pp.warmup_steps
    n = pp.steps - pp.warmup_steps
    return 0.5 * peak * (1.0 + math.cos(math.pi * (t - pp.warmup_steps) / max(1, n)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD, Nesterov momentum; no weight decay on BN weights and biases (1-d parameters)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=0.0, momentum=cfg.momentum, nesterov=True, fused=_fused_ok(model),
    )
    fill_momentum(opt)
    return opt


def fill_momentum(opt: torch.optim.Optimizer) -> None:
    """A zero momentum buffer for every parameter that has none yet.

    The fused kernel needs a buffer for each parameter with a gradient, and in a supernet the
    parameters active in a step change from step to step. With dampening 0 a zero buffer gives
    what SGD's first step gives without one (buffer = 0.9 * 0 + gradient = gradient). Call after
    ``load_state_dict`` too: a checkpoint holds buffers only for parameters trained so far.
    """
    if not opt.defaults.get("momentum"):
        return
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state[p]
            if st.get("momentum_buffer") is None:
                st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _fused_ok(model: torch.nn.Module) -> bool:
    """PyTorch's one-kernel SGD (weight decay, momentum and the update in one pass per tensor,
    instead of four dispatched ops each) where it exists: float parameters on a CPU or CUDA."""
    return all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16,
                                                                  torch.bfloat16, torch.float64)
               for p in model.parameters())


@torch.no_grad()
def zero_last_gamma(model: torch.nn.Module) -> None:
    """once-for-all's ``zero_last_gamma``: residual blocks start as the identity.

    The projection BatchNorm of every block with an identity skip gets gamma 0, so a deep subnet
    starts out as a shallow one; SGD from scratch then trains the 20-block largest subnet about as
    fast as the 10-block smallest (without it, a short run leaves the largest subnet behind).
    """
    for blocks in getattr(model, "stages", []):
        for block in blocks:
            if getattr(block, "idskip", False):
                block.project_bn.weight.zero_()


def init_distributed(device: str = "auto") -> DistContext:
    """torchrun's environment -> process group (gloo on CPU, nccl on CUDA); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = f"cuda:{local}" if use_cuda else "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local, dev)


def allreduce_gradients(model: torch.nn.Module, world_size: int) -> None:
    """Average the gradients over ranks in one flat all-reduce (same parameters on every rank)."""
    if world_size <= 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world_size)
    for g, r in zip(grads, _unflatten_dense_tensors(flat, grads), strict=False):
        g.copy_(r)


def broadcast_state(model: torch.nn.Module, world_size: int) -> None:
    if world_size <= 1:
        return
    for t in model.state_dict().values():
        dist.broadcast(t, 0)


AMP_CHOICES = ("auto", "bf16", "fp16", "off")

# What chose the defaults of --amp, --channels-last and --compile (benchmarks/train_throughput.py,
# 2 threads, batch 16 at 128, this project's 2-core Xeon with AVX-512 but no AVX512-BF16/AMX):
# channels-last took the step from 1.53 s to 0.83 s for the largest subnet; bfloat16 autocast made
# it 1.9-9x slower (emulated bfloat16 convolutions), so "auto" keeps fp32 on CPUs without native
# bfloat16; torch.compile was slower still (7.5 s per step, a recompile per subnet shape) and
# compiling took minutes, so it is off by default.
STEP_DEFAULTS_MEASURED = (
    "channels-last 1.8x faster; bf16 autocast 2-9x slower on a CPU without AVX512-BF16/AMX; "
    "torch.compile of the supernet slower (a recompile per subnet); of the teacher 1.3-1.4x "
    "faster after a 50 s compile per resolution (auto: CPU runs of 2000+ distilled steps per "
    "resolution)")


# --compile-teacher auto compiles the teacher for a CPU run with at least this many distilled steps
# per resolution ahead: compiling took about 50 s per resolution on the 2-core CPU and saved about
# 35 ms a step (batch 16 at 128), so it pays for itself after some 1,500 steps
COMPILE_TEACHER_MIN_STEPS = 2000


def can_compile(device_type: str = "cpu") -> bool:
    """Whether torch.compile can build kernels here: on a CPU Inductor needs a C++ compiler."""
    import shutil  # noqa: PLC0415

    if device_type != "cpu":
        return True
    cxx = os.environ.get("CXX")
    return bool((cxx and shutil.which(cxx)) or shutil.which("g++") or shutil.which("c++"))


def use_compiled_teacher(choice: str, device: str, distilled_steps: int, n_resolutions: int) -> bool:
    """``--compile-teacher`` resolved: ``on``/``off`` as given; ``auto`` on a CPU when the run has
    at least ``COMPILE_TEACHER_MIN_STEPS`` distilled steps per resolution ahead (one compile per
    resolution), off on GPUs (not measured there)."""
    if choice not in ("auto", "on", "off"):
        raise TrainError(f"--compile-teacher must be auto, on or off, got {choice!r}")
    if choice != "auto":
        return choice == "on"
    return (not device.startswith("cuda") and can_compile("cpu")
            and distilled_steps >= COMPILE_TEACHER_MIN_STEPS * max(1, n_resolutions))


# --cpu-kernels auto builds latkit's C++ kernel (about 40 s once per machine, cached) for a CPU run
# with at least this many steps ahead; a kernel built here before is used by every CPU run. It saved
# 40-60 ms a step (one random subnet, batch 16 at 128, on the 2-core CPU), so the build pays for
# itself after about 1,000 steps
CPU_KERNELS_MIN_STEPS = 1000


def resolve_cpu_kernels(choice: str, device: str, steps: int,
                        say: Callable[[str], None] = lambda m: None) -> bool:
    """``--cpu-kernels`` resolved, loading (or building) the kernel when it is on: ``off``; ``on``
    (on a CPU: built now if need be, a ``TrainError`` if it cannot be); ``auto`` (on a CPU: used if
    built here before, built first for a run of ``CPU_KERNELS_MIN_STEPS`` steps or more; a failed
    build is said and the run goes on without it). Never on GPUs (cuDNN's own kernels)."""
    from latkit.supernet import cpu_kernels  # noqa: PLC0415

    if choice not in ("auto", "on", "off"):
        raise TrainError(f"--cpu-kernels must be auto, on or off, got {choice!r}")
    if choice == "off" or device.startswith("cuda"):
        return False
    build = choice == "on" or steps >= CPU_KERNELS_MIN_STEPS
    if build and not cpu_kernels.is_built():
        say("building latkit's CPU kernel (once for this machine, about 40 s)")
    try:
        return cpu_kernels.load(build=build) is not None
    except cpu_kernels.KernelBuildError as exc:
        if choice == "on":
            raise TrainError(str(exc)) from None
        say(f"{exc}; going on with oneDNN's kernels")
        return False


def compile_teacher(teacher: torch.nn.Module, n_resolutions: int = 1) -> Callable:
    """The teacher's forward under ``torch.compile``: the teacher is the same frozen network every
    step, so each resolution compiles once (its ``max_arch`` is a constant of the graph) and the
    BatchNorm-activation chains run fused. On a CPU, Inductor builds C++: without a C++ compiler
    this is a ``TrainError`` (``--compile-teacher auto`` checks ``can_compile`` first)."""
    import torch._dynamo  # noqa: PLC0415

    if not can_compile(next(teacher.parameters()).device.type):
        raise TrainError("--compile-teacher on needs a C++ compiler (g++ or c++ on PATH, or $CXX) "
                         "for torch.compile on a CPU; install one or pass --compile-teacher off")

    limit = torch._dynamo.config.cache_size_limit
    torch._dynamo.config.cache_size_limit = max(limit, n_resolutions + 2)
    return torch.compile(teacher, dynamic=False)


def resolve_amp(amp: str, device: str) -> str:
    """``auto`` -> bf16 on a CUDA GPU with bfloat16 (fp16 with a gradient scaler on one without) and
    on a CPU with native bfloat16 (AVX512-BF16 or AMX); fp32 ("off") on other CPUs, where
    emulated bfloat16 is slower than fp32."""
    from latkit.supernet.accuracy import cpu_has_bf16  # noqa: PLC0415 -- reads /proc/cpuinfo only for auto

    if amp not in AMP_CHOICES:
        raise TrainError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp != "auto":
        return amp
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "off"


def _autocast(amp: str, device: str) -> Callable[[], Any] | None:
    """A context-manager factory for ``amp`` (resolved: bf16, fp16 or off), or None for off."""
    if amp == "off":
        return None
    if amp not in ("bf16", "fp16"):
        raise TrainError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(kind, dtype=dtype)


def grad_scaler(amp: str, device: str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling (its range is too small for gradients); bf16 and fp32 do not."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler("cuda" if device.startswith("cuda") else "cpu")


def to_memory_format(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """The model's 4-d weights (and so its activations) in NHWC (``channels_last``) or NCHW."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=fmt)


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, x: torch.Tensor, r: int,
                   autocast: Callable[[], Any] | None = None,
                   forward: Callable | None = None) -> torch.Tensor:
    """The frozen teacher's fp32 logits on ``x`` (its largest subnet), once per step.

    Run under ``torch.inference_mode`` (no autograd bookkeeping at all) and the step's reduced
    precision; the result is cloned out of inference mode so that the losses may use it.
    ``forward``: what runs the teacher (``teacher`` or ``compile_teacher(teacher)``).
    """
    with torch.inference_mode(), (autocast or contextlib.nullcontext)():
        out = (forward if forward is not None else teacher)(x, teacher.space.max_arch(r))
    return out.float().clone()


def _checkpoint_payload(model, optimizer, cfg: TrainConfig, schedule: Schedule, pp: PhasePlan,
                        step: int, plan: BatchPlan, data: TrainData, counters: dict,
                        command: str, ctx: DistContext, finished: bool,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    ck = model.checkpoint_dict(
        **(extra or {}),
        version=FORMAT_VERSION,
        kernel_transform=schedule.kernel_transform,
        optimizer=optimizer.state_dict() if optimizer is not None else None,
        step=step, phase_index=pp.index, phase=pp.phase.name, epoch=plan.epoch(step),
        rng=rng_state(), sampler={"seed": plan.seed, "step": step,
                                  "steps_per_epoch": plan.steps_per_epoch},
        counters=dict(counters), schedule=schedule.to_dict(), config=cfg.to_dict(),
        data=data.describe(), command=command, versions=versions(),
        world_size=ctx.world_size, created=now_iso(), finished=finished,
    )
    # weights in the standard layout, whatever the run's --channels-last (readers may view them)
    for key in ("model", "teacher_model"):
        if isinstance(ck.get(key), dict):
            ck[key] = {k: v.contiguous() for k, v in ck[key].items()}
    return ck


def model_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, archs, *, distill: bool, cfg: TrainConfig,
               autocast: Callable[[], Any] | None = None,
               teacher: torch.nn.Module | None = None, forward: Callable | None = None,
               scaler: torch.amp.GradScaler | None = None, world_size: int = 1,
               teacher_forward: Callable | None = None) -> list[float]:
    """The model's part of a step on one batch: the teacher's logits (once, shared by every subnet),
    every subnet's forward and backward, the all-reduce, the finiteness check, the optimizer step.

    ``forward``: what runs the supernet (``model`` or its ``torch.compile``); ``teacher_forward``:
    what runs the teacher (``teacher`` or ``compile_teacher(teacher)``); ``scaler``: fp16's
    gradient scaler (a step whose scaled gradients overflowed is skipped and the scale lowered, as
    ``GradScaler`` does, instead of stopping the run). Returns the subnets' losses.
    """
    optimizer.zero_grad(set_to_none=True)
    r = int(x.shape[-1])
    soft = None
    if teacher is not None and distill:
        soft = teacher_logits(teacher, x, r, autocast, teacher_forward)
    losses = accumulate_step(
        forward if forward is not None else model, x, y, archs, distill=distill,
        label_smoothing=cfg.label_smoothing, kd_ratio=cfg.kd_ratio,
        temperature=cfg.kd_temperature, autocast=autocast, teacher_logits=soft,
        scale=scaler.scale if scaler is not None else None)
    allreduce_gradients(model, world_size)
    if scaler is not None:
        scaler.unscale_(optimizer)
        bad = [v for v in losses if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"training loss is not finite ({bad[0]}) under --amp fp16; "
                                "lower --lr-scale or use --amp bf16/off")
        scaler.step(optimizer)  # skipped if a gradient overflowed
        scaler.update()
        return losses
    _check_finite(model, losses)
    optimizer.step()
    return losses


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
               space, data: TrainData, plan: BatchPlan, pp: PhasePlan, step: int,
               ctx: DistContext, autocast: Callable[[], Any] | None = None,
               teacher: torch.nn.Module | None = None, forward: Callable | None = None,
               scaler: torch.amp.GradScaler | None = None,
               batch: tuple[torch.Tensor, torch.Tensor, int] | None = None,
               sampler: SubnetSampler | None = None,
               teacher_forward: Callable | None = None,
               ) -> tuple[float, float, int, int]:
    """One global step on this rank; returns (lr, mean loss, resolution, number of subnets).

    ``batch``: this step's (images, labels, resolution) if already loaded (by a ``BatchLoader``).
    """
    peak = pp.phase.lr * plan.global_batch / REFERENCE_BATCH * cfg.lr_scale
    lr = lr_at(pp, step, peak)
    for g in optimizer.param_groups:
        g["lr"] = lr
    x, y, r = batch if batch is not None else load_train_batch(data, plan, step)
    x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
    # the loader's batches come NHWC-strided (decoded images are HWC), which alone makes PyTorch
    # run every convolution channels-last: --no-channels-last means NCHW activations too
    x = x.contiguous(memory_format=torch.channels_last if cfg.channels_last
                     else torch.contiguous_format)
    archs = (sampler(pp.phase, step, r) if sampler is not None
             else step_subnets(space, pp.phase, cfg.seed, step, r))
    try:
        losses = model_step(model, optimizer, x, y, archs, distill=pp.phase.distill, cfg=cfg,
                            autocast=autocast, teacher=teacher, forward=forward, scaler=scaler,
                            world_size=ctx.world_size, teacher_forward=teacher_forward)
    except NonFiniteLoss as exc:
        raise NonFiniteLoss(f"{exc}{_where(step, pp, r)}") from None
    return lr, float(np.mean(losses)), r, len(archs)


class NonFiniteLoss(TrainError):
    """A step's loss or gradients are not finite: training stops before the weights take them."""


def _where(step: int, pp: PhasePlan, r: int) -> str:
    return (f" at step {step + 1} (phase {pp.phase.name}, resolution {r}); stopped before the "
            "optimizer step, nothing of it saved (the run directory keeps its last checkpoint, "
            "if any); lower --lr-scale or check --data")


def _check_finite(model: torch.nn.Module, losses: list[float], step: int | None = None,
                  pp: PhasePlan | None = None, r: int = 0) -> None:
    """Raise ``NonFiniteLoss`` before ``optimizer.step`` if a loss or a gradient is NaN or infinite.

    Gradients are checked too (after the all-reduce every rank holds the same ones, so every rank
    stops together); the weights are still those of the last finite step (BatchNorm's running
    statistics are not, which is why the step is never saved). With ``step`` and ``pp`` the
    message says where (``train_step`` adds it otherwise).
    """
    bad = [v for v in losses if not math.isfinite(v)]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not bad and grads and not bool(torch.isfinite(
            torch.stack(torch._foreach_norm(grads))).all()):  # each tensor's norm, one fused call
        bad = ["non-finite gradients"]
    if bad:
        where = _where(step, pp, r) if step is not None and pp is not None else ""
        raise NonFiniteLoss(f"training loss is not finite ({bad[0]}){where}")


def _open_log(path: Path, step: int):
    """The per-step JSON-lines log, cut back to ``step`` (a killed run logged steps it lost).

    Appended line by line on purpose (a resumed run continues it): ``check_writable`` refuses a
    FIFO, device node or symlink first; the cut-back rewrite is atomic.
    """
    check_writable(path)
    if path.is_file():
        keep = [ln for ln in path.read_text().splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        write_text(path, "".join(ln + "\n" for ln in keep))
    return path.open("a")


def freeze_teacher(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as a frozen distillation teacher, as once-for-all's code runs its teacher.

    No gradients; BatchNorm normalises with the batch's statistics (training mode, as once-for-all
    calls ``teacher_model.train()``) but momentum 0 keeps its running statistics unchanged; dropout
    is off (once-for-all's teacher is built with dropout 0).
    """
    model.requires_grad_(False)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
        elif isinstance(m, (torch.nn.Hardswish, torch.nn.ReLU)):
            m.inplace = True  # nothing is saved for a backward: overwrite the BatchNorm's output
    return model


def _check_teacher(teacher: torch.nn.Module, n_classes: int, path: str) -> None:
    if teacher.n_classes != n_classes:
        raise TrainError(f"the full network in {path} has {teacher.n_classes} classes, the data "
                         f"{n_classes}: train the teacher on the same data")


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def load_full_network(model: torch.nn.Module, path: str | Path,
                      ckpt: dict[str, Any] | None = None) -> int:
    """Copy the weights of the supernet checkpoint at ``path`` into ``model``; returns the count.

    The source may be of the other space: a depthwise kernel larger than ``model``'s is cropped to
    its centre (how an elastic kernel takes its smaller sizes, and how CompOFA's fixed kernels are
    taken from once-for-all's 7x7 teacher); kernel-transform matrices the model lacks are dropped
    and those the source lacks keep their initial (identity) values. Any other mismatch, a missing
    weight or another class count, is a TrainError. ``ckpt``: the checkpoint at ``path``, if read.
    """
    ck = ckpt if ckpt is not None else load_checkpoint(path)
    src = ck.get("model")
    if not isinstance(src, dict):
        raise TrainError(f"{path} holds no model weights")
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in own.items():
        w = src.get(k)
        if w is None:
            if ".t7to5" in k or ".t5to3" in k or k.endswith("num_batches_tracked"):
                continue
            raise TrainError(f"{path} has no weight {k}: not a supernet checkpoint of this family")
        if w.shape != v.shape:
            big, small = w.shape[-1], v.shape[-1]
            if (w.dim() == 4 and w.shape[:2] == v.shape[:2] and w.shape[2] == big and big > small
                    and (big - small) % 2 == 0):
                o = (big - small) // 2
                w = w[:, :, o:o + small, o:o + small]
            else:
                raise TrainError(f"{path}: {k} is {tuple(w.shape)}, the model needs "
                                 f"{tuple(v.shape)} (another class count or width?)")
        out[k] = w.to(v.dtype)
    model.load_state_dict(out, strict=False)
    return len(out)


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          command: str | None = None, on_step: Callable[[StepInfo], None] | None = None,
          log: Callable[[str], None] | None = None, data: TrainData | None = None,
          latency: dict[str, LatencyFn] | None = None) -> TrainResult:
    """Train (or, with ``resume``, continue) a supernet; see the module docstring.

    ``latency`` (device -> predicted ms of a list of archs) serves ``cfg.sampling == "latency"``
    (``supernet.sampling``); a family ``cfg.space`` trains its parent's supernet on its members.

    ``command`` is recorded in the checkpoints and ``config.json`` (the CLI passes the command line
    as typed; a library caller its own, or nothing).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a run directory; give a directory (it is "
                         "created if missing)")
    last = out / "last.pt"
    command = command or ""
    ctx = init_distributed(cfg.device)
    say = (log if ctx.is_main else None) or (lambda msg: None)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if cfg.batch_size < 1:
        raise TrainError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.kd_teacher not in ("full", "inplace"):
        raise TrainError(f"--kd-teacher must be full or inplace, got {cfg.kd_teacher!r}")
    cfg = replace(cfg, amp=resolve_amp(cfg.amp, ctx.device))  # saved resolved: resume compares it

    ckpt = None
    if last.is_file():
        if not resume:
            raise TrainError(f"{out} already holds a run ({last}); pass --resume to continue it, "
                             "or choose another --out")
        ckpt = load_checkpoint(last)
        old = TrainConfig.from_dict(ckpt.get("config") or {})
        diff = cfg.differences(old)
        if diff:
            raise TrainError(f"--resume with a different configuration than {last} ("
                             + "; ".join(diff[:4]) + "); rerun with the original flags")
        if int(ckpt.get("world_size", 1)) != ctx.world_size:
            raise TrainError(f"{last} was written by {ckpt.get('world_size')} processes; resume "
                             f"with the same number (now {ctx.world_size}) to continue exactly")
    elif resume:
        say(f"no checkpoint in {out}; starting a new run")

    sampler = SubnetSampler(get_space(cfg.space), cfg.seed, cfg.sampling, latency)
    space = sampler.space  # the supernet's: a family's parent
    schedule = get_schedule(cfg.schedule, space).scaled(cfg.epochs_scale)
    if cfg.from_full:
        rest = tuple(p for p in schedule.phases if p.name != "full")
        if not rest:
            raise TrainError(f"schedule {cfg.schedule} has nothing after its full-network phase "
                             "to start from --from-full")
        schedule = replace(schedule, phases=rest)
    for r in cfg.resolutions or ():
        if r not in space.resolutions:
            raise TrainError(f"resolution {r} is not in {space.name} (allowed "
                             f"{space.resolutions[0]}..{space.resolutions[-1]} step 4)")
    if data is None:
        data = open_data(cfg.data, max_train=cfg.max_train_images, warn=say)
    resolutions = tuple(r for r in (cfg.resolutions or data.default_resolutions)
                        if r in space.resolutions) or (space.resolutions[0],)
    plan = BatchPlan(len(data.train), cfg.batch_size, resolutions, cfg.seed, ctx.rank,
                     ctx.world_size)
    phases = plan_phases(schedule, plan.steps_per_epoch)
    total = phases[-1].end

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = ElasticMobileNetV3(space, n_classes=data.n_classes, dropout=cfg.dropout,
                               kernel_transform=schedule.kernel_transform).to(ctx.device)
    zero_last_gamma(model)
    # the frozen distillation teacher: the from_full network (read once with the weights below;
    # built under a forked RNG, as its initialisation must not move the generator a resumed run
    # restores), or this run's full network, copied when the first distilled phase starts and
    # kept in the checkpoint
    teacher: torch.nn.Module | None = None
    full_ck = load_checkpoint(cfg.from_full) if cfg.from_full and (
        ckpt is None or cfg.kd_teacher == "full") else None
    if cfg.kd_teacher == "full" and full_ck is not None:
        with torch.random.fork_rng(devices=[]):
            teacher = freeze_teacher(to_memory_format(
                supernet_from_checkpoint(full_ck, cfg.from_full).to(ctx.device), cfg.channels_last))
        _check_teacher(teacher, data.n_classes, cfg.from_full)
    elif cfg.kd_teacher == "full" and ckpt is not None and ckpt.get("teacher_model") is not None:
        teacher = freeze_teacher(copy.deepcopy(model))
        teacher.load_state_dict(ckpt["teacher_model"])
    if cfg.from_full and ckpt is None:
        n = load_full_network(model, cfg.from_full, full_ck)
        say(f"starting from the full network of {cfg.from_full} ({n} tensors)")
    counters = {"images": 0, "image_passes": 0, "train_s": 0.0}
    step, optimizer = 0, None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        step = int(ckpt["step"])
        counters.update(ckpt.get("counters") or {})
        if ckpt.get("optimizer") is not None and step < total and not any(
                pp.start == step for pp in phases):
            optimizer = make_optimizer(model, cfg)
            optimizer.load_state_dict(ckpt["optimizer"])
            fill_momentum(optimizer)
        set_rng_state(ckpt["rng"])
        say(f"resuming {last} at step {step}/{total} (phase {ckpt.get('phase')})")
    broadcast_state(model, ctx.world_size)
    model.train()
    to_memory_format(model, cfg.channels_last)
    if teacher is not None:
        to_memory_format(teacher, cfg.channels_last)
    scaler = grad_scaler(cfg.amp, ctx.device)
    if scaler is not None and ckpt is not None and ckpt.get("grad_scaler"):
        scaler.load_state_dict(ckpt["grad_scaler"])
    forward = torch.compile(model) if cfg.compile else None
    stop = total if cfg.max_steps is None else min(total, cfg.max_steps)
    distilled_ahead = sum(max(0, min(p.end, stop) - max(p.start, step)) for p in phases
                          if p.phase.distill)
    teacher_compiled = cfg.kd_teacher == "full" and use_compiled_teacher(
        cfg.compile_teacher, ctx.device, distilled_ahead, len(resolutions))
    teacher_forward: Callable | None = None
    kernels_on = resolve_cpu_kernels(cfg.cpu_kernels, ctx.device, stop - step, say)
    use_cpu_kernels(kernels_on)
    sampling = {**sampler.describe(), "latency": latency_provenance(cfg.latency)}

    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(
            {"config": cfg.to_dict(), "schedule": schedule.to_dict(), "data": data.describe(),
             "step_settings": {"amp": cfg.amp, "channels_last": cfg.channels_last,
                               "compile": cfg.compile, "compile_teacher": teacher_compiled,
                               "cpu_kernels": kernels_on,
                               "measured": STEP_DEFAULTS_MEASURED},
             "phases": [{"name": p.phase.name, "start": p.start, "steps": p.steps,
                         "warmup_steps": p.warmup_steps} for p in phases],
             "steps_per_epoch": plan.steps_per_epoch, "world_size": ctx.world_size,
             "command": command, "versions": versions(), "subnet_sampling": sampling},
            indent=1) + "\n")
    log_f = _open_log(out / "train_log.jsonl", step) if ctx.is_main else None
    autocast = _autocast(cfg.amp, ctx.device)
    pp = next(p for p in phases if p.start <= min(step, total - 1) < p.end)
    last_save = time.monotonic()
    ema_ips = 0.0
    first_step = step

    def save(finished: bool) -> None:
        nonlocal last_save
        if ctx.is_main:
            own = teacher is not None and not cfg.from_full
            extra: dict[str, Any] = {"teacher_model": teacher.state_dict()} if own else {}
            if scaler is not None:
                extra["grad_scaler"] = scaler.state_dict()
            save_atomic(_checkpoint_payload(
                model, optimizer, cfg, schedule, pp, step, plan, data, counters, command, ctx,
                finished, {"subnet_sampling": sampling, **extra}), last)
        last_save = time.monotonic()

    loader = BatchLoader(data, plan, step, stop, workers=cfg.workers,
                         pin_memory=ctx.device.startswith("cuda"))
    try:
        while step < stop:
            pp = next(p for p in phases if p.start <= step < p.end)
            if teacher is None and cfg.kd_teacher == "full" and pp.phase.distill:
                teacher = freeze_teacher(copy.deepcopy(model))  # keeps the model's memory format
            if teacher_compiled and teacher is not None and teacher_forward is None:
                teacher_forward = compile_teacher(teacher, len(resolutions))
            if step == pp.start or optimizer is None:
                if step == pp.start and pp.phase.reorder_channels_before:
                    model.reorder_channels()
                optimizer = make_optimizer(model, cfg)
            t0 = time.perf_counter()
            batch = next(loader)  # made ahead by the workers while the last step ran
            # a NonFiniteLoss propagates unsaved: that forward pass already fed BatchNorm's
            # running statistics, so only the last checkpoint on disk holds a finite state
            lr, loss, r, n_sub = train_step(model, optimizer, cfg, space, data, plan, pp, step,
                                            ctx, autocast, teacher, forward, scaler, batch,
                                            sampler, teacher_forward)
            step += 1
            dt = time.perf_counter() - t0
            counters["images"] += plan.global_batch
            counters["image_passes"] += plan.global_batch * n_sub
            counters["train_s"] += dt
            ips = plan.global_batch / max(dt, 1e-9)
            ema_ips = ips if ema_ips == 0 else 0.9 * ema_ips + 0.1 * ips
            info = StepInfo(step, total, pp.phase.name, lr, loss, r, n_sub, ema_ips,
                            counters["images"])
            if log_f is not None:
                log_f.write(json.dumps({**asdict(info), "time": round(time.time(), 3)}) + "\n")
                log_f.flush()
            if on_step is not None and ctx.is_main:
                on_step(info)
            due = (cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0) or (
                time.monotonic() - last_save >= cfg.checkpoint_every_s) or step == pp.end
            if due and step < stop:
                save(finished=False)
        if step > first_step:
            save(finished=step >= total)
    finally:
        loader.close()
        if log_f is not None:
            log_f.close()
    return TrainResult(last, step, total, step >= total, counters["train_s"], counters["images"],
                       counters["image_passes"])

