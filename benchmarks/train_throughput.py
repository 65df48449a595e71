"""Training-step throughput: latkit's trainer step against once-for-all's own network code.

One step, as ``latkit.supernet.train`` runs it (``model_step``): the frozen full network's logits
(the distillation teacher), the subnet's forward, once-for-all's loss (label-smoothed CE + KD from
the teacher's soft labels, times 2 / (kd_ratio + 1)), backward, and an SGD (Nesterov) step.
once-for-all's side runs the same step with its own classes (the ``ofa`` package, benchmark-only:
``OFAMobileNetV3`` for the student and the teacher, ``set_active_subnet``, its
``cross_entropy_with_label_smoothing`` and ``cross_entropy_loss_with_soft_target``), as its
``train_one_epoch`` does: teacher under ``torch.no_grad``, fp32, NCHW.

Both sides: ``ofa-mbv3-w1.0`` (kernels 3/5/7, expand 3/4/6, depth 2/3/4), the same archs (the largest
and ``--n-random`` seeded random subnets), the same random batch; the two are interleaved (one latkit
round, one once-for-all round, repeated ``--repeats`` times) and the medians compared. Also: the
loader alone (images/s of ``BatchLoader`` over the built-in data, with and without worker
processes) against the step, so one sees whether the step or the loader sets the pace.

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/train_throughput.py            # CPU
    .venv/bin/python benchmarks/train_throughput.py --device cuda --batch 256 --resolution 224

Defaults: 2 threads, batch 16 at resolution 128 on the CPU (about 4 min on a quiet 2-core
machine, plus about a minute compiling the teacher); with ``--device cuda`` batch 256 at 224.
``--amp/--channels-last/--compile-teacher/--cpu-kernels`` choose latkit's settings (default: the
trainer's defaults on that device for a long run: on the CPU the teacher compiled, as
``--compile-teacher auto`` does for 2000+ distilled steps per resolution, and latkit's C++
depthwise-gradient kernel, built once per machine, as ``--cpu-kernels auto`` uses it). Prints one line per measurement and a summary
with the ratio once-for-all / latkit (>= 2.0 is the target); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _ofa_classes():
    from ofa_side import _install_torchvision_stand_in  # benchmarks/ofa_side.py

    _install_torchvision_stand_in()
    warnings.filterwarnings("ignore", message="Implicit dimension choice")  # ofa's nn.LogSoftmax()
    from ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3 import OFAMobileNetV3
    from ofa.utils import cross_entropy_loss_with_soft_target, cross_entropy_with_label_smoothing

    return OFAMobileNetV3, cross_entropy_with_label_smoothing, cross_entropy_loss_with_soft_target


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class LatkitSide:
    def __init__(self, space, n_classes: int, device: str, amp: str, channels_last: bool,
                 compile_: bool, compile_teacher: bool = False, cpu_kernels: bool = False) -> None:
        import torch

        from latkit.supernet.model import ElasticMobileNetV3
        from latkit.supernet.ops import use_cpu_kernels
        from latkit.supernet.train import (
            TrainConfig,
            _autocast,
            freeze_teacher,
            grad_scaler,
            make_optimizer,
            resolve_amp,
            to_memory_format,
        )
        from latkit.supernet.train import (
            compile_teacher as compiled,
        )

        self.amp = resolve_amp(amp, device)
        self.cfg = TrainConfig(space=space.name, amp=self.amp, channels_last=channels_last,
                               compile=compile_)
        torch.manual_seed(0)
        self.model = to_memory_format(ElasticMobileNetV3(space, n_classes=n_classes).to(device),
                                      channels_last).train()
        torch.manual_seed(1)
        self.teacher = freeze_teacher(to_memory_format(
            ElasticMobileNetV3(space, n_classes=n_classes).to(device), channels_last))
        self.opt = make_optimizer(self.model, self.cfg)
        for g in self.opt.param_groups:
            g["lr"] = 1e-3
        self.autocast = _autocast(self.amp, device)
        self.scaler = grad_scaler(self.amp, device)
        self.forward = torch.compile(self.model) if compile_ else None
        self.teacher_forward = compiled(self.teacher) if compile_teacher else None
        self.channels_last = channels_last
        use_cpu_kernels(cpu_kernels)  # process-wide; once-for-all's side has its own convolutions

    def step(self, x, y, arch) -> None:
        import torch

        from latkit.supernet.train import model_step

        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model_step(self.model, self.opt, x, y, [arch], distill=True, cfg=self.cfg,
                   autocast=self.autocast, teacher=self.teacher, forward=self.forward,
                   scaler=self.scaler, teacher_forward=self.teacher_forward)


class OfaSide:
    def __init__(self, n_classes: int, device: str) -> None:
        import torch

        net_cls, self.ce_ls, self.kd_ce = _ofa_classes()
        kw = dict(n_classes=n_classes, dropout_rate=0.1, width_mult=1.0, ks_list=[3, 5, 7],
                  expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
        torch.manual_seed(0)
        self.model = net_cls(**kw).to(device).train()
        torch.manual_seed(1)
        self.teacher = net_cls(**kw).to(device).train()  # as ofa: teacher_model.train()
        self.teacher.requires_grad_(False)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9, nesterov=True,
                                   weight_decay=3e-5)

    def step(self, x, y, arch) -> None:
        import torch
        import torch.nn.functional as F

        # once-for-all's train_one_epoch (progressive_shrinking.py), one subnet per step
        with torch.no_grad():
            soft_logits = self.teacher(x).detach()
            soft_label = F.softmax(soft_logits, dim=1)
        self.opt.zero_grad()
        d = arch.to_ofa_dict()
        self.model.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
        out = self.model(x)
        loss = self.ce_ls(out, y, label_smoothing=0.1)
        kd = self.kd_ce(out, soft_label)
        loss = (1.0 * kd + loss) * (2.0 / (1.0 + 1.0))
        loss.backward()
        self.opt.step()


def time_steps(side, batches, archs, device: str, steps: int) -> float:
    """Seconds per step, over ``steps`` steps cycling through ``archs`` and ``batches``."""
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        side.step(x, y, archs[i % len(archs)])
    _sync(device)
    return (time.perf_counter() - t0) / steps


def loader_rate(batch: int, r: int, workers: int, n_batches: int) -> float:
    """Images/s of the trainer's BatchLoader alone over the built-in gratings."""
    from latkit.supernet.data import BatchLoader, BatchPlan, open_data

    data = open_data("builtin:gratings")
    plan = BatchPlan(len(data.train), batch, (r,), 0)
    with BatchLoader(data, plan, 0, workers=workers) as loader:
        next(loader)  # workers started and their first batch made
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(loader)
        dt = time.perf_counter() - t0
    return batch * n_batches / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU")
    ap.add_argument("--batch", type=int, help="default 16 on the CPU, 256 on a GPU")
    ap.add_argument("--resolution", type=int, help="default 128 on the CPU, 224 on a GPU")
    ap.add_argument("--n-random", type=int, default=4, help="random subnets (seeded)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds per subnet kind")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--compile-teacher", action=argparse.BooleanOptionalAction,
                    help="torch.compile the teacher (default: on for the CPU, as the trainer's "
                    "--compile-teacher auto does for a run of 2000+ distilled steps per "
                    "resolution; its one-time compile is timed apart, not in the steps)")
    ap.add_argument("--cpu-kernels", action=argparse.BooleanOptionalAction,
                    help="latkit's C++ depthwise weight-gradient kernel (default: on for the CPU, as "
                    "the trainer's --cpu-kernels auto does once it is built; its one-time build "
                    "is timed apart)")
    ap.add_argument("--n-classes", type=int, default=1000)
    ap.add_argument("--no-loader", dest="loader", action="store_false",
                    help="skip the loader-alone measurement")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import torch

    from latkit.supernet.space import get_space

    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu", file=sys.stderr)
        return 2
    if not gpu:
        torch.set_num_threads(args.threads)
    batch = args.batch or (256 if gpu else 16)
    r = args.resolution or (224 if gpu else 128)
    space = get_space("ofa-mbv3-w1.0")
    rng = random.Random(0)
    kinds = {"largest": [space.max_arch(r)],
             "random": [space.sample(rng, r) for _ in range(args.n_random)]}
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch, 3, r, r, generator=g).to(args.device),
                torch.randint(0, args.n_classes, (batch,), generator=g).to(args.device))
               for _ in range(2)]
    ct = (not gpu) if args.compile_teacher is None else args.compile_teacher
    ck = (not gpu) if args.cpu_kernels is None else args.cpu_kernels
    if ck:
        from latkit.supernet import cpu_kernels

        t0 = time.perf_counter()
        built = cpu_kernels.is_built()
        cpu_kernels.load()
        print("latkit's CPU kernel: " + ("built before" if built else
              f"built in {time.perf_counter() - t0:.0f} s (once per machine)"), flush=True)
    lat = LatkitSide(space, args.n_classes, args.device, args.amp, args.channels_last, args.compile,
                     ct, ck)
    ofa = OfaSide(args.n_classes, args.device)
    print(f"device {args.device}" + ("" if gpu else f", {torch.get_num_threads()} threads")
          + f", batch {batch} at {r}, latkit: amp {lat.amp}, channels-last {args.channels_last}, "
          f"compile {args.compile}, compiled teacher {ct}, CPU kernels {ck}; once-for-all: fp32, NCHW, eager",
          flush=True)
    if ct:
        t0 = time.perf_counter()
        time_steps(lat, batches, kinds["largest"], args.device, 1)
        print(f"  the teacher's one-time compile: {time.perf_counter() - t0:.0f} s (with its "
              "first step)", flush=True)
    out: dict = {"device": args.device, "batch": batch, "resolution": r, "amp": lat.amp,
                 "channels_last": args.channels_last, "compile": args.compile,
                 "compile_teacher": ct, "cpu_kernels": ck,
                 "threads": torch.get_num_threads(), "kinds": {}}
    for kind, archs in kinds.items():
        for side in (lat, ofa):  # warm up every arch on both sides
            time_steps(side, batches, archs, args.device, len(archs))
        rows = {"latkit": [], "ofa": []}
        for rep in range(args.repeats):
            order = ((lat, "latkit"), (ofa, "ofa")) if rep % 2 == 0 else ((ofa, "ofa"), (lat, "latkit"))
            for side, name in order:
                s = time_steps(side, batches, archs, args.device, max(args.steps, len(archs)))
                rows[name].append(s)
            print(f"  {kind} round {rep + 1}: latkit {1000 * rows['latkit'][-1]:.0f} ms/step, "
                  f"once-for-all {1000 * rows['ofa'][-1]:.0f} ms/step", flush=True)
        med = {k: statistics.median(v) for k, v in rows.items()}
        ratio = med["ofa"] / med["latkit"]
        out["kinds"][kind] = {"latkit_ms": [1000 * v for v in rows["latkit"]],
                              "ofa_ms": [1000 * v for v in rows["ofa"]],
                              "latkit_images_per_s": batch / med["latkit"],
                              "ofa_images_per_s": batch / med["ofa"], "ratio": ratio}
        print(f"{kind}: latkit {1000 * med['latkit']:.0f} ms/step ({batch / med['latkit']:.1f} "
              f"img/s), once-for-all {1000 * med['ofa']:.0f} ms/step ({batch / med['ofa']:.1f} "
              f"img/s): once-for-all / latkit = {ratio:.2f}x (target >= 2.0)", flush=True)
    if args.loader and not gpu:
        n = 12
        step_ips = out["kinds"]["largest"]["latkit_images_per_s"]
        for workers in (0, 2):
            ips = loader_rate(batch, r, workers, n)
            out[f"loader_images_per_s_workers{workers}"] = ips
            print(f"loader alone, {workers} worker processes: {ips:.0f} img/s "
                  f"({ips / step_ips:.0f}x the images/s of latkit's largest-subnet step)",
                  flush=True)
    print("summary: " + ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in out["kinds"].items())
          + " (once-for-all's step time / latkit's; medians of interleaved rounds)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
