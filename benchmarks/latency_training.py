"""Latency-aware training: CompOFA's family vs a family derived from two devices' latency.

Three conditions at the same training cost (same schedule, epochs, batch, subnets per step, from
one shared teacher), each with ``--seeds`` (default 0,1,2), on the built-in data at one resolution:

- ``compofa-uniform``: CompOFA's space (243 subnets per resolution), subnets drawn uniformly per
  choice (CompOFA's and once-for-all's sampler);
- ``compofa-latency``: the same space, ``--sampling latency`` over the two devices' latency range;
- ``derived-latency``: the family ``lat space derive`` chooses from the two devices' latency
  (``cpu`` and ``cpu-tflite``), ``--sampling latency``.

Latency comes from lookup tables this script measures once (``lat profile --quick`` of the space's
layers at the resolution, on ``cpu`` and ``cpu-tflite``; reused with ``--reuse``). Each device gets
three budgets: the 30th, 60th and 90th percentile of the CompOFA subnets' predicted latency.

Evaluation, per trained supernet: the candidates a user would search are, for each device and
budget, the ``--per-budget`` subnets with the most MACs within the budget (CompOFA's space for the
CompOFA conditions, the family for the derived one; the MACs frontier is where the accuracy
frontier lies, and the same rule picks for all). Each is evaluated on the held-out split after BN
recalibration (``latkit.supernet.accuracy``), and the best top-1 within each budget is reported,
with its mean over the 6 (device, budget) pairs, per seed and as mean and spread (sd) over seeds.
Also reported: family size and budget coverage against CompOFA's 243 per resolution, and the
training cost of every run (subnet-image passes, seconds) to show it is the same.

    nice -n 10 .venv/bin/python benchmarks/latency_training.py [--out DIR] [--reuse] [--seeds 0,1,2]
        [--epochs-scale F] [--teacher-epochs-scale F]

Writes OUT/latency_training.json, OUT/lut (tables), OUT/family.json and OUT/<condition>-seed<N>/.

Durations on the 2-core VM under a load of 6-7 (other runs beside it): tables 3 min, the shared
teacher 34 min, then 3 min per run at ``--epochs-scale 0.001`` (evaluation included); ``--reuse``
keeps the tables, the teacher and every finished run. The scales are tiny (a few steps of the
compound phases from a teacher trained for 9 epochs): at these, the conditions differ by about
their seed spread; give a quiet machine ``--epochs-scale 0.01 --per-budget 3 --calib-images 256
--eval-images 0`` for figures with a signal.
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = "compofa-w1.0"
DEVICES = ("cpu", "cpu-tflite")
CONDITIONS = (("compofa-uniform", SPACE, "uniform"), ("compofa-latency", SPACE, "latency"),
              ("derived-latency", "FAMILY", "latency"))
QUANTILES = (0.3, 0.6, 0.9)


def log(msg: str) -> None:
    print(msg, flush=True)


def tables(out: Path, r: int, reuse: bool) -> dict[str, str]:
    """``lat profile --quick`` of the space's layers at ``r`` on both devices -> lut: specs."""
    d = out / "lut"
    specs = {dev: f"lut:{d / dev}" for dev in DEVICES}
    if reuse and all((d / dev).is_dir() for dev in DEVICES):
        log(f"reusing the lookup tables in {d}")
        return specs
    cmd = [sys.executable, "-m", "latkit", "profile", "--device", ",".join(DEVICES), "--space", SPACE,
           "--resolutions", str(r), "--quick", "--out", str(d), "--quiet"]
    log("measuring the lookup tables: " + " ".join(cmd[2:]))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    log(f"  {time.perf_counter() - t0:.0f} s")
    return specs


def budgets_for(specs: dict[str, str], r: int) -> dict[str, list[float]]:
    import numpy as np

    from latkit.search.protocols import latency_source
    from latkit.supernet.space import get_space

    sp = get_space(SPACE)
    archs = list(sp.enumerate(r))
    out = {}
    for dev, spec in specs.items():
        ms = latency_source(dev, spec, sp).predict_ms(archs)
        out[dev] = [round(float(np.quantile(ms, q)), 3) for q in QUANTILES]
    return out


def derive(out: Path, specs: dict[str, str], budgets: dict[str, list[float]], r: int,
           size: int | None) -> tuple[str, dict]:
    from latkit.search.derive import derive_family, write_family

    latency = list(specs.items())
    der = derive_family(SPACE, latency, budgets, resolutions=[r], size=size)
    path = write_family(der, out / "family.json", latency, " ".join(sys.argv))
    return str(path), der.report


def teacher(args, out: Path, data) -> str:
    """CompOFA's full-network phase alone (``--teacher-epochs-scale``): every run starts from it."""
    from latkit.supernet.data import BatchPlan
    from latkit.supernet.schedules import get_schedule
    from latkit.supernet.space import get_space
    from latkit.supernet.train import TrainConfig, plan_phases

    sched = get_schedule("compofa", get_space(SPACE)).scaled(args.teacher_epochs_scale)
    per_epoch = BatchPlan(len(data.train), args.batch_size, (args.resolution,), 0, 0, 1).steps_per_epoch
    full = next(p for p in plan_phases(sched, per_epoch) if p.phase.name == "full")
    cfg = TrainConfig(space=SPACE, schedule="compofa", resolutions=(args.resolution,),
                      epochs_scale=args.teacher_epochs_scale, batch_size=args.batch_size,
                      seed=0, max_steps=full.end)
    return run(cfg, out / "teacher", args.reuse, data, None)["checkpoint"]


def run(cfg, out: Path, reuse: bool, data, latency) -> dict:
    import torch

    from latkit.supernet.train import train

    last = out / "last.pt"
    if reuse and last.is_file():
        ck = torch.load(last, weights_only=True)
        done = ck.get("finished") or (cfg.max_steps is not None and ck.get("step") == cfg.max_steps)
        if done and dict(ck.get("config") or {}) == cfg.to_dict():
            log(f"reusing {last}")
            return {"checkpoint": str(last), **ck["counters"]}
    if out.exists():
        import shutil

        shutil.rmtree(out)
    log(f"training {out.name} ({cfg.space}, sampling {cfg.sampling}) ...")
    res = train(cfg, out, command=" ".join(sys.argv), data=data, latency=latency)
    log(f"  {res.train_s:.0f} s, {res.image_passes} subnet-image passes")
    return {"checkpoint": str(res.checkpoint), "train_s": res.train_s, "images": res.images,
            "image_passes": res.image_passes}


def candidates(space, specs: dict[str, str], budgets: dict[str, list[float]], r: int,
               per_budget: int) -> tuple[list, dict]:
    """Per device and budget the ``per_budget`` subnets with the most MACs within it."""
    from latkit.search.protocols import latency_source

    archs = list(space.enumerate(r))
    lat = {d: latency_source(d, s, space).predict_ms(archs) for d, s in specs.items()}
    macs = [space.macs(a) for a in archs]
    picked: list = []
    for d, bs in budgets.items():
        for b in bs:
            inside = sorted((i for i in range(len(archs)) if lat[d][i] <= b), key=lambda i: -macs[i])
            picked += [archs[i] for i in inside[:per_budget]]
    picked = list(dict.fromkeys(picked))
    return picked, {d: {str(a): float(lat[d][archs.index(a)]) for a in picked} for d in specs}


def score(checkpoint: str, archs: list, lat: dict, budgets: dict, data, r: int, calib: int,
          heldout: int | None) -> dict:
    from latkit.supernet.accuracy import evaluate_subnets, make_eval_images
    from latkit.supernet.model import load_supernet

    model, _ = load_supernet(checkpoint)
    acc = evaluate_subnets(model, archs, {r: make_eval_images(data, r, calib, heldout)})
    best = {}
    for d, bs in budgets.items():
        for b in bs:
            inside = [acc[a] for a in archs if lat[d][str(a)] <= b]
            best[f"{d}@{b:g}"] = max(inside) if inside else None
    vals = [v for v in best.values() if v is not None]
    return {"best": best, "mean": sum(vals) / len(vals) if vals else None,
            "evaluated": {str(a): acc[a] for a in archs}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "latency_training"))
    ap.add_argument("--reuse", action="store_true", help="reuse tables and finished runs")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--epochs-scale", type=float, default=0.002,
                    help="the compound phases' epoch scaling (default 0.002: 10 steps x 5 subnets, "
                    "what a shared 2-core machine runs in 30 min; 0.01 on a quiet one)")
    ap.add_argument("--teacher-epochs-scale", type=float, default=0.05,
                    help="the shared full network's (default 0.05: 9 epochs)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, help="derived family size cap (default: what the noise allows)")
    ap.add_argument("--calib-images", type=int, default=64,
                    help="training images each subnet's BatchNorm is recalibrated on (default 64)")
    ap.add_argument("--eval-images", type=int, default=200,
                    help="held-out images (default 200; 0: all 360)")
    ap.add_argument("--per-budget", type=int, default=1,
                    help="subnets evaluated per (device, budget): the most MACs within it")
    args = ap.parse_args()
    args.eval_images = args.eval_images or None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    from latkit.search.protocols import latency_source
    from latkit.supernet.data import open_data
    from latkit.supernet.space import get_space
    from latkit.supernet.train import TrainConfig

    r = args.resolution
    specs = tables(out, r, args.reuse)
    budgets = budgets_for(specs, r)
    log(f"budgets (30/60/90th percentile of CompOFA's subnets at r{r}): {budgets}")
    family, frep = derive(out, specs, budgets, r, args.size)
    log(f"derived family: {frep['size']} subnets at r{r} (CompOFA: 243); covers "
        + ", ".join(f"{d} {v['covered']}/{v['of']}" for d, v in frep["devices"].items()))
    data = open_data("builtin:gratings")
    full = teacher(args, out, data)
    report: dict = {"args": vars(args), "budgets_ms": budgets, "tables": specs,
                    "family": {"path": family, "report": frep}, "teacher": full, "runs": {}}
    cands = {}
    for name, space, _ in CONDITIONS:
        sp = get_space(family if space == "FAMILY" else space)
        cands[name] = candidates(sp, specs, budgets, r, args.per_budget)
        report.setdefault("candidates", {})[name] = len(cands[name][0])
    for seed in args.seeds:
        for name, space, sampling in CONDITIONS:
            sp_name = family if space == "FAMILY" else space
            parent = get_space(sp_name).name
            lat_fns = {d: latency_source(d, s, parent).predict_ms for d, s in specs.items()}
            cfg = TrainConfig(space=sp_name, schedule="compofa", resolutions=(r,),
                              epochs_scale=args.epochs_scale, batch_size=args.batch_size, seed=seed,
                              from_full=full, sampling=sampling,
                              latency=tuple(specs.items()) if sampling == "latency" else None)
            cost = run(cfg, out / f"{name}-seed{seed}", args.reuse, data,
                       lat_fns if sampling == "latency" else None)
            archs, lat = cands[name]
            cost["top1"] = score(cost["checkpoint"], archs, lat, budgets, data, r,
                                 args.calib_images, args.eval_images)
            report["runs"].setdefault(name, []).append({"seed": seed, **cost})
            log(f"  {name} seed {seed}: mean best top-1 {cost['top1']['mean']:.2f}%  "
                + "  ".join(f"{k} {v:.1f}" for k, v in cost["top1"]["best"].items() if v is not None))
            _write(report, out)
    report["summary"] = _summary(report)
    report["wall_s"] = time.perf_counter() - t_start
    _write(report, out)
    _print(report)
    return 0


def _summary(rep: dict) -> dict:
    out = {}
    for name, runs in rep["runs"].items():
        means = [r["top1"]["mean"] for r in runs if r["top1"]["mean"] is not None]
        keys = list(runs[0]["top1"]["best"])
        per_pair = {k: st.mean([r["top1"]["best"][k] for r in runs if r["top1"]["best"][k] is not None])
                    for k in keys if any(r["top1"]["best"][k] is not None for r in runs)}
        out[name] = {"mean": st.mean(means), "sd": st.stdev(means) if len(means) > 1 else None,
                     "per_seed": means, "per_budget": per_pair,
                     "image_passes": [r.get("image_passes") for r in runs],
                     "train_s": [round(r.get("train_s") or 0, 1) for r in runs]}
    return out


def _write(rep: dict, out: Path) -> None:
    (out / "latency_training.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")


def _print(rep: dict) -> None:
    f = rep["family"]["report"]
    print(f"\nbudgets (ms): {rep['budgets_ms']}")
    print(f"derived family: {f['size']} subnets at r{rep['args']['resolution']} vs CompOFA's 243 "
          f"({f['size'] / 243:.1%}); budgets covered: "
          + ", ".join(f"{d} {v['covered']}/{v['of']}" for d, v in f["devices"].items())
          + "; gap to the space's best (MACs proxy points): "
          + ", ".join(f"{d}@{b['budget_ms']:g} {b.get('gap_top1', float('nan')):.2f}"
                      for d, v in f["devices"].items() for b in v["budgets"]))
    s = rep["summary"]
    keys = list(next(iter(s.values()))["per_budget"])
    print(f"\n{'condition':<17} {'mean':>6} {'sd':>5}  per seed            " + " ".join(f"{k:>14}" for k in keys))
    for name, v in s.items():
        sd = f"{v['sd']:.2f}" if v["sd"] is not None else "-"
        seeds = ",".join(f"{m:.1f}" for m in v["per_seed"])
        print(f"{name:<17} {v['mean']:>6.2f} {sd:>5}  {seeds:<19} "
              + " ".join(f"{v['per_budget'].get(k, float('nan')):>14.1f}" for k in keys))
    base = s.get("compofa-uniform", {}).get("mean")
    for name, v in s.items():
        if base is not None and name != "compofa-uniform":
            print(f"{name} - compofa-uniform: {v['mean'] - base:+.2f} points (mean of best top-1 "
                  "over budgets and devices)")
    print("subnet-image passes per run (same training cost): "
          + "; ".join(f"{n} {v['image_passes']}" for n, v in s.items()))
    print(f"wall {rep['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
