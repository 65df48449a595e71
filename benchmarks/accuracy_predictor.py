"""once-for-all's accuracy predictor (``--model mlp``) against xgboost (and rf, ridge) on one table.

Every model is fitted and scored with ``latkit.predictors.accuracy``'s held-out protocol (the one
``lat fit --target top1`` reports: a seeded 20% of the subnets held out), on the same splits, over
``--seeds`` seeds; printed per model: the median held-out Spearman, Kendall tau and MAE (points)
over seeds, the fit time, and the MLP / xgb ratio of the Spearman medians. ``--train-sizes``
repeats the comparison with the training rows cut to each size (same held-out rows).

The table: ``--table acc.csv`` is any accuracy table (``lat train eval``'s CSV, e.g. of a released
once-for-all supernet on ImageNet: ``lat train eval --checkpoint ofa-w1.0.pt --data /data/imagenet
-n 2000 ...``). Without it the script builds one in ``--out`` (resumable; a rerun reuses what is
there), since no released checkpoint or ImageNet is available offline:

1. a once-for-all supernet (``ofa-mbv3-w1.0``) trained on the built-in gratings data as
   ``benchmarks/train_cost.py`` trains its teacher: once-for-all's full-network phase at
   ``--teacher-epochs-scale`` (default 0.1: 18 epochs; a few epochs stay near chance, and so
   would every subnet), then its progressive-shrinking phases from it at ``--epochs-scale``
   (default 0.01); or ``--checkpoint CKPT``;
2. 2,000 subnets at ``--resolutions`` (default 128), each BatchNorm-recalibrated on the same
   ``--calib-images`` training images (default 64) and evaluated on all 360 held-out images
   (``latkit.supernet.accuracy.accuracy_table``, as ``lat train eval``). Random subnets of this
   space share no prefix, so each would be evaluated whole (most of the cost is in the first,
   high-resolution stages); the subnets are drawn instead as a tree of random stage choices
   (``--branching``, default 1,1,5,20,20: one random choice of stages 1 and 2, 5 of stage 3, for
   each 20 of stage 4, for each 20 of stage 5), which the evaluator's prefix sharing evaluates as
   about 2,000 stage-5 instances, 100 of stage 4 and 7 of the rest. Every stage choice is a uniform
   draw of the space's, so the table spans the depth, kernel and expand choices of stages 3-5; the
   held-out subnets have siblings in the training rows (as in any table this size of one supernet).

    flock /tmp/latkit-bench.lock .venv/bin/python benchmarks/accuracy_predictor.py [--out DIR]
        [--table acc.csv] [--seeds 5] [--train-sizes 500,1000]

Writes OUT/acc.csv (unless --table), OUT/accuracy_predictor.json (every figure).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

MODELS = ("xgb", "mlp", "rf", "ridge")


def tree_archs(space, resolutions, branching, seed):
    """Per resolution, prod(branching) archs: a tree of uniformly drawn stage choices."""
    from latkit.supernet.space import ArchConfig

    rng = random.Random(seed)
    out = []
    for r in resolutions:
        nodes = [((), ())]
        for s, b in enumerate(branching):
            grown = []
            for ks, es in nodes:
                picks: dict = {}
                for _ in range(1000 * b):  # bounded: a stage has far more than b choices
                    a = space.sample(rng, resolution=r)
                    picks.setdefault((a.ks[s], a.e[s]), None)
                    if len(picks) == b:
                        break
                grown += [(ks + (k,), es + (e,)) for k, e in picks]
            nodes = grown
        out += [space.validate(ArchConfig(r=r, ks=ks, e=es)) for ks, es in nodes]
    return out


def _progress(name):
    last = [0.0]

    def on_step(info) -> None:
        if time.perf_counter() - last[0] > 30 or info.step == info.total_steps:
            last[0] = time.perf_counter()
            print(f"  {name} step {info.step}/{info.total_steps} {info.phase}: loss "
                  f"{info.loss:.3f}, {info.images_per_s:.0f} img/s", flush=True)
    return on_step


def train_supernet(args, out: Path) -> Path:
    """once-for-all's full network (``--teacher-epochs-scale`` of its full phase), then its elastic
    phases from it (``--epochs-scale``), as ``benchmarks/train_cost.py`` trains its teacher: a full
    phase of a few epochs stays near chance on the built-in data, so every subnet would be too."""
    from latkit.supernet.data import BatchPlan, open_data
    from latkit.supernet.schedules import get_schedule
    from latkit.supernet.space import get_space
    from latkit.supernet.train import TrainConfig, plan_phases, train

    sp = get_space("ofa-mbv3-w1.0")
    data = open_data("builtin:gratings")
    res = tuple(args.resolutions)
    sched = get_schedule("ofa", sp).scaled(args.teacher_epochs_scale)
    per_epoch = BatchPlan(len(data.train), 16, res, args.seed, 0, 1).steps_per_epoch
    full = next(ph for ph in plan_phases(sched, per_epoch) if ph.phase.name == "full")
    runs = [("teacher", TrainConfig(space=sp.name, schedule="ofa", data="builtin:gratings", resolutions=res,
                                    epochs_scale=args.teacher_epochs_scale, seed=args.seed,
                                    max_steps=full.end, checkpoint_every_s=60.0)),
            ("supernet", TrainConfig(space=sp.name, schedule="ofa", data="builtin:gratings", resolutions=res,
                                     epochs_scale=args.epochs_scale, seed=args.seed,
                                     from_full=str(out / "teacher" / "last.pt"),
                                     checkpoint_every_s=60.0))]
    for name, cfg in runs:
        run = out / name
        if (run / "done").is_file():
            continue
        train(cfg, run, resume=(run / "last.pt").is_file(), on_step=_progress(name), data=data,
              command="benchmarks/accuracy_predictor.py")
        (run / "done").write_text("trained\n")
    return out / "supernet" / "last.pt"


def build_table(args, out: Path) -> Path:
    from latkit.supernet.accuracy import accuracy_table
    from latkit.supernet.space import get_space

    space = get_space("ofa-mbv3-w1.0")
    t0 = time.perf_counter()
    ckpt = Path(args.checkpoint) if args.checkpoint else train_supernet(args, out)
    train_s = time.perf_counter() - t0
    archs = tree_archs(space, args.resolutions, args.branching, args.seed)
    n = [0]
    last = [time.perf_counter()]

    def on_result(arch, top1) -> None:
        n[0] += 1
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  evaluated {n[0]} subnets", flush=True)

    t1 = time.perf_counter()
    acc = out / "acc.csv"
    res = accuracy_table(ckpt, space, archs, acc, n_calib=args.calib_images,
                         n_eval=args.eval_images, command="benchmarks/accuracy_predictor.py",
                         on_result=on_result)
    eval_s = time.perf_counter() - t1
    print(f"table: {len(res.top1)} subnets ({res.n_evaluated} evaluated now) of {space.name} at "
          f"{args.resolutions}; training {train_s:.0f} s, evaluation {eval_s:.0f} s -> {acc}")
    return acc


def compare(path: Path, args) -> dict:
    from latkit.predictors.accuracy import heldout_metrics, heldout_split, table_space
    from latkit.supernet.accuracy_csv import read_accuracy_csv
    from latkit.supernet.space import get_space

    space = get_space(args.space or table_space(path))
    rows = read_accuracy_csv(path, space)
    archs, top1 = [r.arch for r in rows], [r.top1 for r in rows]
    spread = (min(top1), statistics.median(top1), max(top1))
    print(f"{path}: {len(archs)} subnets of {space.name}, top-1 min/median/max "
          f"{spread[0]:.2f}/{spread[1]:.2f}/{spread[2]:.2f}")
    results: dict = {}
    for size in [None, *args.train_sizes]:
        for seed in range(args.seeds):
            train, test = heldout_split(len(archs), seed, 0.2)
            if size is not None:
                if size >= len(train):
                    continue
                train = train[:size]
            for model in args.models:
                t0 = time.perf_counter()
                m = heldout_metrics(space, archs, top1, train, test, model=model, seed=seed)
                m["fit_s"] = time.perf_counter() - t0
                results.setdefault(str(len(train) if size is None else size), {}) \
                    .setdefault(model, []).append(m)
    report = {"table": str(path), "space": space.name, "n_subnets": len(archs),
              "top1_min_median_max": spread, "seeds": args.seeds, "runs": results, "summary": {}}
    for size, by_model in results.items():
        print(f"\ntraining subnets {size} (held out {by_model[args.models[0]][0]['n_test']}), "
              f"medians over {args.seeds} seeds:")
        print(f"  {'model':6s} {'Spearman':>9s} {'Kendall':>8s} {'MAE pts':>8s} {'fit s':>7s}")
        summ = {}
        for model, runs in by_model.items():
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("spearman_heldout", "kendall_heldout", "mae_heldout", "fit_s")}
            summ[model] = med
            print(f"  {model:6s} {med['spearman_heldout']:9.3f} {med['kendall_heldout']:8.3f} "
                  f"{med['mae_heldout']:8.3f} {med['fit_s']:7.1f}")
        if "mlp" in summ and "xgb" in summ:
            ratio = summ["mlp"]["spearman_heldout"] / summ["xgb"]["spearman_heldout"]
            wins = sum(a["spearman_heldout"] > b["spearman_heldout"]
                       for a, b in zip(by_model["mlp"], by_model["xgb"], strict=True))
            summ["mlp_over_xgb_spearman"] = ratio
            print(f"  MLP / xgb held-out Spearman: {ratio:.3f} (MLP higher on {wins} of "
                  f"{len(by_model['mlp'])} seeds)")
        report["summary"][size] = summ
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", help="an accuracy table (arch,top1,...) instead of building one")
    p.add_argument("--space", help="space of --table (default: its space column)")
    p.add_argument("--out", default="out/bench_accuracy_predictor")
    p.add_argument("--checkpoint", help="build the table from this supernet instead of training one")
    p.add_argument("--teacher-epochs-scale", type=float, default=0.1,
                   help="length of the full network's phase (default 0.1: 18 epochs, about 49%% "
                   "top-1 per benchmarks/train_cost.py)")
    p.add_argument("--epochs-scale", type=float, default=0.01,
                   help="length of the elastic phases from it (default 0.01)")
    p.add_argument("--resolutions", default="128")
    p.add_argument("--branching", default="1,1,5,20,20",
                   help="per-stage branching of the subnet tree (default 1,1,5,20,20: 2,000 "
                   "subnets per resolution)")
    p.add_argument("--calib-images", type=int, default=64)
    p.add_argument("--eval-images", type=int, default=360)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="seed of the supernet and the subnet tree")
    p.add_argument("--train-sizes", default="500,1000",
                   help="also fit on this many training subnets (same held-out ones)")
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args(argv)
    args.resolutions = [int(r) for r in args.resolutions.split(",")]
    args.branching = [int(b) for b in args.branching.split(",")]
    args.train_sizes = [int(s) for s in args.train_sizes.split(",") if s.strip()]
    args.models = [m for m in args.models.split(",") if m]
    if len(args.branching) != 5:
        p.error("--branching needs one number per stage (5)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = Path(args.table) if args.table else build_table(args, out)
    table_s = time.perf_counter() - t0
    report = compare(path, args)
    report["table_s"] = table_s
    report["compare_s"] = time.perf_counter() - t0 - table_s
    report["expected_subnets"] = None if args.table else len(args.resolutions) * math.prod(args.branching)
    (out / "accuracy_predictor.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\ntable {table_s:.0f} s, comparison {report['compare_s']:.0f} s -> "
          f"{out / 'accuracy_predictor.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
