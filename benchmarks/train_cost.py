"""Training cost of CompOFA's compound schedule vs once-for-all's progressive shrinking.

By default both schedules start from one shared teacher, the once-for-all full network trained
first (``--teacher-epochs-scale``; its cost is reported on its own), as CompOFA's and once-for-all's
code both start their elastic phases from the released full network; the 7x7 kernels are
centre-cropped to CompOFA's fixed kernels (``lat train --from-full``). ``--no-shared-teacher``
trains each schedule's own full-network phase instead. Both schedules train on the built-in data
set with the same per-phase epoch scaling, batch size, resolutions and seed: CompOFA's on ``compofa-w1.0`` (kernels fixed per stage, no kernel transforms),
once-for-all's on ``ofa-mbv3-w1.0``. Reported per schedule: wall time, training seconds, images drawn,
subnet-image passes, per-phase steps and seconds; at the end the held-out top-1 (each subnet
BN-recalibrated on the same 256 training images) of the largest and the smallest subnet of each
supernet and of the same 20 random CompOFA-reachable subnets (valid in both spaces), their mean,
and the cost ratio CompOFA / once-for-all, in all and after the full-network phase (which both
code bases train once, separately, as the teacher the elastic phases start from). ``--seeds 0,1,2``
trains both schedules once per seed from the same teacher (``--teacher-seed``); 360 held-out images
leave a few points of noise on one run, so the summary gives the per-seed difference of the
20-subnet means and its mean and spread over seeds. With a CUDA GPU it also measures the training throughput
(images/s) of the largest subnet at 224 with batch 256.

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/train_cost.py [--epochs-scale F] [--seeds 0,1,2]
        [--out DIR] [--reuse] [--gpu-only]

Writes OUT/train_cost.json and OUT/{compofa,ofa}/ (checkpoints, logs).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _phase_costs(log_path: Path) -> dict[str, dict[str, float]]:
    """Steps and seconds per phase from a train_log.jsonl (time stamps after each step)."""
    out: dict[str, dict[str, float]] = {}
    prev = None
    for line in log_path.read_text().splitlines():
        row = json.loads(line)
        d = out.setdefault(row["phase"], {"steps": 0, "seconds": 0.0, "subnets_per_step": 0})
        d["steps"] += 1
        d["subnets_per_step"] = row["n_subnets"]
        if prev is not None:
            d["seconds"] += row["time"] - prev
        prev = row["time"]
    return out


def teacher_config(args, data):
    """Once-for-all's full-network phase alone (``--teacher-epochs-scale``), on ofa-mbv3-w1.0."""
    from latkit.supernet.data import BatchPlan
    from latkit.supernet.schedules import get_schedule
    from latkit.supernet.space import get_space
    from latkit.supernet.train import TrainConfig, plan_phases

    sp = get_space("ofa-mbv3-w1.0")
    sched = get_schedule("ofa", sp).scaled(args.teacher_epochs_scale)
    per_epoch = BatchPlan(len(data.train), args.batch_size, args.resolutions, args.teacher_seed, 0, 1).steps_per_epoch
    full = next(p for p in plan_phases(sched, per_epoch) if p.phase.name == "full")
    return TrainConfig(space=sp.name, schedule="ofa", data="builtin:gratings",
                       resolutions=tuple(args.resolutions), epochs_scale=args.teacher_epochs_scale,
                       batch_size=args.batch_size, lr_scale=args.lr_scale, seed=args.teacher_seed,
                       **step_settings(args), max_steps=full.end)


def step_settings(args) -> dict:
    """The trainer's step settings: its defaults (``--amp auto`` resolved for the CPU, channels-last,
    loader workers), or with ``--old-step`` what it ran before them (fp32, NCHW, batches loaded
    in the training process)."""
    from latkit.supernet.train import resolve_amp

    if args.old_step:
        return {"amp": "off", "channels_last": False, "workers": 0}
    return {"amp": resolve_amp(args.amp, "cpu")}


def _same_run(cfg, have: dict, name: str) -> bool:
    """A finished run's saved config is this one (runtime fields, which may differ on --resume,
    aside; a run written before --amp reads as what it ran: fp32 is --amp off)."""
    from latkit.supernet.train import TrainConfig

    old = TrainConfig.from_dict(have)
    if name == "teacher":  # the full-network phase distils nothing: kd_teacher is moot
        old = replace(old, kd_teacher=cfg.kd_teacher)
    return not cfg.differences(old)


def run_dir(name: str, seed: int, scale: float | None = None) -> str:
    """OUT/compofa and OUT/ofa for seed 0 (as before --seeds), OUT/compofa-seed1 ... otherwise;
    a CompOFA run with its own --compofa-epochs-scale gets the scale in its name."""
    base = name if scale is None else f"{name}-x{scale:g}"
    return base if seed == 0 else f"{base}-seed{seed}"


def run_schedule(name: str, space: str, args, data, from_full: str | None = None,
                 seed: int = 0) -> dict:
    from latkit.supernet.train import TrainConfig, train

    own = args.compofa_epochs_scale if name == "compofa" else None
    out = Path(args.out) / (name if name == "teacher" else run_dir(name, seed, own))
    if name == "teacher":
        cfg = teacher_config(args, data)
    else:
        cfg = TrainConfig(space=space, schedule=name, data="builtin:gratings",
                          resolutions=tuple(args.resolutions),
                          epochs_scale=own or args.epochs_scale,
                          batch_size=args.batch_size, lr_scale=args.lr_scale, seed=seed,
                          **step_settings(args), from_full=from_full)
    last = out / "last.pt"
    if args.reuse and last.is_file():
        import torch

        ck = torch.load(last, weights_only=True)
        done = ck.get("finished") or (cfg.max_steps is not None and ck.get("step") == cfg.max_steps)
        if done and _same_run(cfg, dict(ck.get("config") or {}), name):
            print(f"[{name}] reusing {last}", flush=True)
            return {"checkpoint": str(last), "wall_s": ck["counters"].get("wall_s"),
                    **ck["counters"], "phases": _phase_costs(out / "train_log.jsonl")}
    if out.exists():
        import shutil

        shutil.rmtree(out)
    print(f"[{name}] training {space} x{cfg.epochs_scale}" + (f" up to step {cfg.max_steps}" if cfg.max_steps else "") + (f" from {from_full}" if from_full else "") + " ...", flush=True)
    t0 = time.perf_counter()
    res = train(cfg, out, command=" ".join(sys.argv), data=data,
                on_step=lambda i: print(f"  {name} step {i.step}/{i.total_steps} {i.phase} "
                                        f"loss {i.loss:.3f} {i.images_per_s:.1f} img/s",
                                        flush=True) if i.step % 25 == 0 else None)
    wall = time.perf_counter() - t0
    # keep the wall time in the checkpoint's counters for --reuse
    import torch

    from latkit.supernet.checkpoint import save_atomic

    ck = torch.load(last, weights_only=True)
    ck["counters"]["wall_s"] = wall
    save_atomic(ck, last)
    return {"checkpoint": str(last), "wall_s": wall, "train_s": res.train_s,
            "images": res.images, "image_passes": res.image_passes,
            "phases": _phase_costs(out / "train_log.jsonl")}


def evaluate(checkpoint: str, archs: list, data, r: int) -> dict:
    from latkit.supernet.accuracy import evaluate_subnets, make_eval_images
    from latkit.supernet.model import load_supernet

    model, _ = load_supernet(checkpoint)
    sp = model.space
    big, small = sp.max_arch(r), sp.min_arch(r)
    t0 = time.perf_counter()
    acc = evaluate_subnets(model, [big, small, *archs], {r: make_eval_images(data, r, 256, None)})
    rand = [acc[a] for a in archs]
    return {"largest": acc[big], "smallest": acc[small], "random": rand,
            "random_mean": sum(rand) / len(rand), "largest_arch": str(big),
            "smallest_arch": str(small), "eval_s": time.perf_counter() - t0}


def gpu_throughput(batch: int = 256, r: int = 224, steps: int = 20) -> dict | None:
    """Training images/s of the largest subnet (fwd + bwd + SGD step), synthetic data."""
    import torch

    if not torch.cuda.is_available():
        return None
    from latkit.supernet.model import ElasticMobileNetV3
    from latkit.supernet.space import get_space

    torch.backends.cudnn.benchmark = True
    out = {"device": torch.cuda.get_device_name(0), "batch": batch, "resolution": r}
    for space in ("compofa-w1.0", "ofa-mbv3-w1.0"):
        sp = get_space(space)
        model = ElasticMobileNetV3(sp, n_classes=1000).cuda().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        x = torch.randn(batch, 3, r, r, device="cuda")
        y = torch.randint(0, 1000, (batch,), device="cuda")
        arch = sp.max_arch(r)
        for precision in ("fp32", "bf16"):
            def step(model=model, opt=opt, x=x, y=y, arch=arch, precision=precision):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = torch.nn.functional.cross_entropy(model(x, arch).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            for _ in range(5):
                step()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
            out[f"{space}/{precision}_images_per_s"] = batch * steps / (time.perf_counter() - t0)
        del model, opt
        torch.cuda.empty_cache()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs-scale", type=float, default=0.03,
                    help="per-phase epoch scaling of both schedules (default 0.03: 134 CompOFA "
                    "and 380 once-for-all steps on the built-in data)")
    ap.add_argument("--compofa-epochs-scale", type=float,
                    help="CompOFA's own epoch scaling (default: --epochs-scale), for the "
                    "equal-cost question: does CompOFA given about half once-for-all's time reach "
                    "its top-1? (the headline comparison keeps the scaling the same)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr-scale", type=float, default=1.0)
    ap.add_argument("--resolutions", type=lambda s: [int(v) for v in s.split(",")],
                    default=[128])
    ap.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"),
                    help="the trainer's --amp (default auto: fp32 on a CPU without bfloat16)")
    ap.add_argument("--old-step", action="store_true",
                    help="train with fp32, NCHW activations and no loader workers (a true NCHW "
                    "step: the trainer before issue 21 ran channels-last convolutions in effect, "
                    "its batches being NHWC-strided, so its own time is that code's, e.g. a "
                    "checkout of 9b12fcb)")
    ap.add_argument("--compare", metavar="OLD.json", action="append",
                    help="after the runs, print this report's mean top-1 and wall time per seed "
                    "against OLD.json's (e.g. an --old-step run's train_cost.json; repeat it to "
                    "pool the seeds of several reports)")
    ap.add_argument("--report", metavar="NEW.json",
                    help="train nothing: print --compare for this finished train_cost.json")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2],
                    help="seeds of the two schedules' runs, e.g. 0,1,2: each seed trains both from "
                    "the same teacher (data order and subnet sampling differ); the summary gives "
                    "the per-seed difference of the 20-subnet mean and its mean over seeds")
    ap.add_argument("--teacher-seed", type=int, default=0)
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "out" / "train_cost"))
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs with this config")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU throughput")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (1 on a shared CPU)")
    ap.add_argument("--no-shared-teacher", dest="shared_teacher", action="store_false",
                    help="train each schedule's own full-network phase instead of starting both "
                    "from one once-for-all full network (the teacher, as both code bases do)")
    ap.add_argument("--teacher-epochs-scale", type=float, default=0.5,
                    help="length of the shared teacher's full-network phase (default 0.5: 90 "
                    "epochs, 24 min on a 2-core CPU, 98.6%% top-1: converged, as the papers' "
                    "teacher; at 0.1 it is at 49%% and accuracy then tracks training volume)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report: dict = {"args": vars(args)}
    if args.report:
        report = json.loads(Path(args.report).read_text())
        _compare([json.loads(Path(p).read_text()) for p in args.compare or ()], report,
                 args.compare or [])
        return 0
    if not args.gpu_only:
        from latkit.supernet.data import open_data
        from latkit.supernet.space import get_space

        data = open_data("builtin:gratings")
        r = min(args.resolutions)
        comp = get_space("compofa-w1.0")
        rng = random.Random(1234)
        archs = [comp.sample(rng, r) for _ in range(args.n_random)]
        report["random_archs"] = [str(a) for a in archs]
        teacher = None
        if args.shared_teacher:
            t = run_schedule("teacher", "ofa-mbv3-w1.0", args, data)
            t["top1"] = evaluate(t["checkpoint"], archs, data, r)
            report["teacher"] = t
            teacher = t["checkpoint"]
        report["runs"] = []
        for seed in args.seeds:
            run: dict = {"seed": seed}
            report["runs"].append(run)
            for name, space in (("compofa", "compofa-w1.0"), ("ofa", "ofa-mbv3-w1.0")):
                cost = run_schedule(name, space, args, data, from_full=teacher, seed=seed)
                cost["top1"] = evaluate(cost["checkpoint"], archs, data, r)
                run[name] = cost
                _write(report, args.out)
            run["ratio_compofa_over_ofa"] = _ratios(run, report.get("teacher"))
        report["summary"] = _summary(report["runs"])
        _write(report, args.out)
        _print(report)
    if args.compare and "summary" in report:
        _compare([json.loads(Path(p).read_text()) for p in args.compare], report, args.compare)
    report["gpu"] = gpu_throughput()
    if report["gpu"] is None:
        print("no CUDA GPU: training throughput at 224 x 256 not measured")
    else:
        print("GPU training throughput, largest subnet, 224 x 256:",
              json.dumps(report["gpu"], indent=1))
    _write(report, args.out)
    return 0


def _compare(olds: list[dict], new: dict, names: list[str]) -> None:
    """Per schedule: mean top-1 of the 20 subnets over seeds (and its spread) and the mean wall time
    per seed, new against the pooled seeds of the ``olds`` reports."""
    import statistics as st

    old_runs = [r for rep in olds for r in rep["runs"]]
    print(f"\nthis run against {', '.join(names)} (seeds {[r['seed'] for r in old_runs]} vs "
          f"{[r['seed'] for r in new['runs']]}):")
    for name in ("compofa", "ofa"):
        cols = []
        for runs in (old_runs, new["runs"]):
            tops = [r[name]["top1"]["random_mean"] for r in runs]
            walls = [r[name]["wall_s"] for r in runs]
            cols.append((st.mean(tops), st.stdev(tops) if len(tops) > 1 else 0.0, st.mean(walls),
                         walls))
        (t0, s0, w0, ws0), (t1, s1, w1, ws1) = cols
        print(f"  {name:<8} top-1 {t0:.2f}% (sd {s0:.2f}) -> {t1:.2f}% (sd {s1:.2f}), difference "
              f"{t1 - t0:+.2f}; wall per seed {w0:.0f} s -> {w1:.0f} s ({w0 / w1:.2f}x faster; "
              f"{', '.join(f'{w:.0f}' for w in ws0)} -> {', '.join(f'{w:.0f}' for w in ws1)})")


def _ratios(run: dict, teacher: dict | None) -> dict:
    c, o = run["compofa"], run["ofa"]
    ratio = {"wall_s": c["wall_s"] / o["wall_s"], "train_s": c["train_s"] / o["train_s"],
             "image_passes": c["image_passes"] / o["image_passes"], "images": c["images"] / o["images"],
             "after_full_s": _after_full(c, "seconds") / _after_full(o, "seconds"),
             "after_full_passes": _after_full(c, "passes") / _after_full(o, "passes")}
    if teacher:
        tw = teacher["wall_s"]
        ratio["with_teacher_wall_s"] = (c["wall_s"] + tw) / (o["wall_s"] + tw)
    return ratio


def _summary(runs: list[dict]) -> dict:
    """Over seeds: the median wall-time ratio, and the 20-subnet mean top-1 of each schedule with the
    per-seed difference CompOFA - once-for-all (its mean and standard deviation over seeds)."""
    import statistics as st

    diffs = [r["compofa"]["top1"]["random_mean"] - r["ofa"]["top1"]["random_mean"] for r in runs]
    return {"seeds": [r["seed"] for r in runs],
            "wall_ratio_median": st.median(r["ratio_compofa_over_ofa"]["wall_s"] for r in runs),
            "compofa_random_mean": st.mean(r["compofa"]["top1"]["random_mean"] for r in runs),
            "ofa_random_mean": st.mean(r["ofa"]["top1"]["random_mean"] for r in runs),
            "diff_per_seed": diffs, "diff_mean": st.mean(diffs),
            "diff_sd": st.stdev(diffs) if len(diffs) > 1 else None}


def _after_full(run: dict, what: str) -> float:
    """Seconds or subnet-steps of the phases after the full-network phase. Both code bases start
    those phases from the same separately trained full network (once-for-all's teacher), so this
    is the cost the two schedules do not share."""
    phases = [v for k, v in run["phases"].items() if k != "full"]
    if what == "seconds":
        return sum(v["seconds"] for v in phases)
    return float(sum(v["steps"] * v["subnets_per_step"] for v in phases))


def _write(report: dict, out: str) -> None:
    (Path(out) / "train_cost.json").write_text(json.dumps(report, indent=1) + "\n")


def _print(rep: dict) -> None:
    if "teacher" in rep:
        t = rep["teacher"]
        print(f"\nshared teacher (once-for-all full network, ofa-mbv3-w1.0): {t['wall_s']:.1f} s, "
              f"largest {t['top1']['largest']:.1f}%; both schedules start from it")
    a = rep["args"]
    scales = (f"CompOFA x{a['compofa_epochs_scale'] or a['epochs_scale']:g}, once-for-all "
              f"x{a['epochs_scale']:g}")
    for run in rep["runs"]:
        print(f"\nseed {run['seed']} ({scales})\n{'schedule':<9} {'wall s':>8} {'train s':>8} {'images':>8} "
              f"{'passes':>8} {'largest':>8} {'smallest':>9} {'20 random':>10}")
        for name in ("compofa", "ofa"):
            d = run[name]
            t = d["top1"]
            print(f"{name:<9} {d['wall_s']:>8.1f} {d['train_s']:>8.1f} {d['images']:>8} "
                  f"{d['image_passes']:>8} {t['largest']:>7.1f}% {t['smallest']:>8.1f}% "
                  f"{t['random_mean']:>9.1f}%")
            for ph, v in d["phases"].items():
                print(f"    {ph:<11} {v['steps']:>5} steps x{v['subnets_per_step']} "
                      f"{v['seconds']:>8.1f} s")
        ratio = run["ratio_compofa_over_ofa"]
        print("CompOFA / once-for-all: wall {wall_s:.3f}, train {train_s:.3f}, subnet-image passes "
              "{image_passes:.3f}, images {images:.3f}".format(**ratio))
        print("  phases after the full network: seconds {after_full_s:.3f}, subnet-steps "
              "{after_full_passes:.3f}".format(**ratio))
        if "with_teacher_wall_s" in ratio:
            print("  counting the shared teacher in both: wall {with_teacher_wall_s:.3f}".format(**ratio))
        c, o = run["compofa"]["top1"], run["ofa"]["top1"]
        print(f"  mean top-1 of the same {len(c['random'])} CompOFA subnets: CompOFA "
              f"{c['random_mean']:.2f}% vs once-for-all {o['random_mean']:.2f}%")
    s = rep["summary"]
    sd = f" (sd {s['diff_sd']:.2f} over seeds)" if s["diff_sd"] is not None else ""
    print(f"\nover seeds {s['seeds']}: wall ratio median {s['wall_ratio_median']:.3f}; mean top-1 of "
          f"the 20 subnets CompOFA {s['compofa_random_mean']:.2f}% vs once-for-all "
          f"{s['ofa_random_mean']:.2f}%, difference {s['diff_mean']:+.2f} points{sd}")


if __name__ == "__main__":
    sys.exit(main())
