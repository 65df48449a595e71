"""Training cost of CompOFA's compound schedule vs once-for-all's progressive shrinking.

Both schedules train on the built-in data set with the same per-phase epoch scaling, batch size,
resolutions and seed: CompOFA's on ``compofa-w1.0`` (kernels fixed per stage, no kernel transforms),
once-for-all's on ``ofa-mbv3-w1.0``. Reported per schedule: wall time, training seconds, images drawn,
subnet-image passes, per-phase steps and seconds; at the end the held-out top-1 (each subnet
BN-recalibrated on the same 256 training images) of the largest and the smallest subnet of each
supernet and of the same 20 random CompOFA-reachable subnets (valid in both spaces), their mean,
and the cost ratio CompOFA / once-for-all. With a CUDA GPU it also measures the training throughput
(images/s) of the largest subnet at 224 with batch 256.

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/train_cost.py [--epochs-scale F]
        [--out DIR] [--reuse] [--gpu-only]

Writes OUT/train_cost.json and OUT/{compofa,ofa}/ (checkpoints, logs).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
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


def run_schedule(name: str, space: str, args, data) -> dict:
    from latkit.supernet.train import TrainConfig, train

    out = Path(args.out) / name
    cfg = TrainConfig(space=space, schedule=name, data="builtin:gratings",
                      resolutions=tuple(args.resolutions), epochs_scale=args.epochs_scale,
                      batch_size=args.batch_size, lr_scale=args.lr_scale, seed=args.seed,
                      precision=args.precision)
    last = out / "last.pt"
    if args.reuse and last.is_file():
        import torch

        ck = torch.load(last, weights_only=True)
        if ck.get("finished") and ck.get("config") == cfg.to_dict():
            print(f"[{name}] reusing {last}", flush=True)
            return {"checkpoint": str(last), "wall_s": ck["counters"].get("wall_s"),
                    **ck["counters"], "phases": _phase_costs(out / "train_log.jsonl")}
    if out.exists():
        import shutil

        shutil.rmtree(out)
    print(f"[{name}] training {space} x{args.epochs_scale} ...", flush=True)
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
            def step():
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
    ap.add_argument("--epochs-scale", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr-scale", type=float, default=1.0)
    ap.add_argument("--resolutions", type=lambda s: [int(v) for v in s.split(",")],
                    default=[128])
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "out" / "train_cost"))
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs with this config")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU throughput")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (1 on a shared CPU)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report: dict = {"args": vars(args)}
    if not args.gpu_only:
        from latkit.supernet.data import open_data
        from latkit.supernet.space import get_space

        data = open_data("builtin:gratings")
        r = min(args.resolutions)
        comp = get_space("compofa-w1.0")
        rng = random.Random(1234)
        archs = [comp.sample(rng, r) for _ in range(args.n_random)]
        report["random_archs"] = [str(a) for a in archs]
        for name, space in (("compofa", "compofa-w1.0"), ("ofa", "ofa-mbv3-w1.0")):
            cost = run_schedule(name, space, args, data)
            cost["top1"] = evaluate(cost["checkpoint"], archs, data, r)
            report[name] = cost
            _write(report, args.out)
        c, o = report["compofa"], report["ofa"]
        report["ratio_compofa_over_ofa"] = {
            "wall_s": c["wall_s"] / o["wall_s"], "train_s": c["train_s"] / o["train_s"],
            "image_passes": c["image_passes"] / o["image_passes"], "images": c["images"] / o["images"]}
        _print(report)
    report["gpu"] = gpu_throughput()
    if report["gpu"] is None:
        print("no CUDA GPU: training throughput at 224 x 256 not measured")
    else:
        print("GPU training throughput, largest subnet, 224 x 256:",
              json.dumps(report["gpu"], indent=1))
    _write(report, args.out)
    return 0


def _write(report: dict, out: str) -> None:
    (Path(out) / "train_cost.json").write_text(json.dumps(report, indent=1) + "\n")


def _print(rep: dict) -> None:
    print(f"\n{'schedule':<9} {'wall s':>8} {'train s':>8} {'images':>8} {'passes':>8} "
          f"{'largest':>8} {'smallest':>9} {'20 random':>10}")
    for name in ("compofa", "ofa"):
        d = rep[name]
        t = d["top1"]
        print(f"{name:<9} {d['wall_s']:>8.1f} {d['train_s']:>8.1f} {d['images']:>8} "
              f"{d['image_passes']:>8} {t['largest']:>7.1f}% {t['smallest']:>8.1f}% "
              f"{t['random_mean']:>9.1f}%")
        for ph, v in d["phases"].items():
            print(f"    {ph:<11} {v['steps']:>5} steps x{v['subnets_per_step']} "
                  f"{v['seconds']:>8.1f} s")
    ratio = rep["ratio_compofa_over_ofa"]
    print("CompOFA / once-for-all: wall {wall_s:.3f}, train {train_s:.3f}, subnet-image passes "
          "{image_passes:.3f}, images {images:.3f}".format(**ratio))


if __name__ == "__main__":
    sys.exit(main())
