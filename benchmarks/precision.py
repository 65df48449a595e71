"""fp16 and int8 against fp32 on this machine's CPU: latency ratios, int8 predictor fidelity, top-1.

What it shows (issue 15, "Must show"), in one run:

1. latency ratios int8/fp32 and fp16/fp32 on ``cpu-tflite`` (LiteRT/XNNPACK) and ``cpu``
   (onnxruntime), the median over ``--n`` (20) seeded ``compofa-w1.0`` subnets at ``--resolution``
   (160); each subnet's three precisions are measured side by side, interleaved (subnet by subnet,
   precision by precision, in ``--passes`` (2) passes each in its own shuffled order), 1 thread,
   pinned, SCHED_FIFO where permitted; a subnet's figure is the median of its passes;
2. int8 predictor fidelity on ``cpu-tflite``: ``--n-train`` (30) more int8 subnets measured the
   same way; ridge and xgb latency predictors fitted on them (through ``lat fit``'s library call, so
   the precision checks run), tested on the ``--n`` subnets of part 1 (held out): MAPE, within
   +-10%, Spearman, beside the noise floor (pass against pass, as ``lat fit evaluate`` reports);
3. top-1 of ``--n`` subnets (of the checkpoint's space) on the built-in data's held-out split: the
   int8 TFLite export itself (calibrated on the built-in training images, run by LiteRT) against
   the fp32 subnet in torch, with trained weights from ``--checkpoint`` (BatchNorm recalibrated per
   subnet as ``lat train eval`` does), or skipped (with a line saying so) without;
4. the exit-2 checks: ``lat bench --precision fp32`` of an int8 file, and ``lat predict
   --precision fp32`` with the int8 predictor, each one line and exit status 2.

Exports are cached under ``--out`` (default ``out/bench/precision``): export first (no timing in
it; it may run beside other work), then the timed run measures only (about 3 minutes for 20
subnets x 2 devices x 3 precisions x 2 passes on a quiet 2-core machine); the top-1 part is its
own run. Scale with ``--n``, ``--n-train``, ``--passes``, ``--min-time``, ``--n-eval``::

    nice .venv/bin/python benchmarks/precision.py --export-only
    .venv/bin/python benchmarks/precision.py
    nice .venv/bin/python benchmarks/precision.py --top1-only --checkpoint CKPT.pt
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SPACE = "compofa-w1.0"
PRECISIONS = ("fp32", "fp16", "int8")
DEVICES = {"cpu-tflite": "tflite", "cpu": "onnx"}


def subnets(n: int, n_train: int, r: int, seed: int) -> tuple[list, list]:
    """``n`` test subnets (part 1 and the held-out set) and ``n_train`` others, all distinct."""
    from latkit.supernet.space import get_space

    sp = get_space(SPACE)
    archs = list(sp.enumerate(r))
    random.Random(seed).shuffle(archs)
    if n + n_train > len(archs):
        raise SystemExit(f"{SPACE} has {len(archs)} subnets at {r}; ask for fewer")
    return archs[:n], archs[n:n + n_train]


def measure(jobs: Sequence[tuple[str, str, Any]], export: Callable[[str, str, Any], Path],
            passes: int, min_time: float, seed: int, log: Callable[[str], None]
            ) -> dict[tuple[str, str, str], list[float]]:
    """(device, precision, arch) jobs: the medians of each pass, interleaved across the jobs."""
    from latkit.devices import levels
    from latkit.devices.base import ProtocolSettings
    from latkit.devices.host import DEFAULT_RT_PRIORITY, default_affinity, realtime
    from latkit.devices.registry import get_device

    files = {}
    t0 = time.time()
    for i, (dev, prec, arch) in enumerate(jobs):
        files[(dev, prec, str(arch))] = export(dev, prec, arch)
        if (i + 1) % 20 == 0 or i + 1 == len(jobs):
            log(f"  exported {i + 1}/{len(jobs)} ({time.time() - t0:.0f} s)")
    if passes == 0:  # --export-only
        return {}
    proto = ProtocolSettings(warmup_runs=5, min_runs=20, min_time_s=min_time,
                             remeasure_on_high_cv=False)
    cpus = default_affinity(1)
    devs = {d: get_device(d, threads=1, protocol=proto,
                          **({"affinity": list(cpus)} if cpus is not None else {}))
            for d in {j[0] for j in jobs}}
    out: dict[tuple[str, str, str], list[float]] = {k: [] for k in files}
    order = list(files)
    try:
        for p in range(passes):
            random.Random(seed + 100 + p).shuffle(order)
            t1 = time.time()
            for key in order:
                with realtime(DEFAULT_RT_PRIORITY, required=False):
                    m = levels.benchmark_scaled(devs[key[0]], files[key])  # paired, as campaigns
                if m.env.get("precision") != key[1]:
                    raise SystemExit(f"{files[key]} measured as {m.env.get('precision')}, "
                                     f"expected {key[1]}")
                out[key].append(float(m.median_ms))
            log(f"  pass {p + 1}/{passes}: {len(order)} benchmarks in {time.time() - t1:.0f} s")
    finally:
        for d in devs.values():
            d.close()
    return out


def ratios(ms: dict[tuple[str, str, str], list[float]], archs: Sequence) -> dict[str, Any]:
    """Per device and precision: the median over subnets of (precision / fp32), and its spread."""
    rep: dict[str, Any] = {}
    for dev in DEVICES:
        rep[dev] = {}
        fp32 = {str(a): statistics.median(ms[(dev, "fp32", str(a))]) for a in archs}
        rep[dev]["fp32_median_ms"] = statistics.median(fp32.values())
        for prec in ("fp16", "int8"):
            r = [statistics.median(ms[(dev, prec, str(a))]) / fp32[str(a)] for a in archs]
            q = statistics.quantiles(r, n=10) if len(r) >= 2 else [r[0]] * 9
            rep[dev][prec] = {"ratio_median": statistics.median(r), "ratio_p10": q[0],
                              "ratio_p90": q[-1], "faster_in": sum(x < 1 for x in r),
                              "n": len(r)}
    return rep


def fidelity(ms: dict, train: Sequence, test: Sequence, out: Path, folds: int) -> dict[str, Any]:
    """int8 latency predictors on cpu-tflite: every test subnet predicted by a predictor that did
    not see it: fitted on ``train`` when given, else ``folds``-fold over ``test`` itself."""
    import numpy as np
    import pandas as pd

    from latkit.predictors.api import fit_latency
    from latkit.predictors.io import save_predictor
    from latkit.predictors.metrics import noise_floor, regression_metrics

    def frame(archs: Sequence) -> Any:
        return pd.DataFrame({
            "arch": [str(a) for a in archs], "space": SPACE, "device": "cpu-tflite",
            "precision": "int8",
            "latency_ms": [statistics.median(ms[("cpu-tflite", "int8", str(a))]) for a in archs],
            "pass_ms": [";".join(repr(v) for v in ms[("cpu-tflite", "int8", str(a))])
                        for a in archs]})

    y = frame(test)["latency_ms"].to_numpy()
    splits = [(list(train), list(range(len(test))))] if train else [
        ([a for k, a in enumerate(test) if k % folds != f], [k for k in range(len(test)) if k % folds == f])
        for f in range(folds)]
    noise = noise_floor([ms[("cpu-tflite", "int8", str(a))] for a in test])
    rep: dict[str, Any] = {"n_test": len(test), "noise_floor": noise,
                           "how": f"fitted on {len(train)} other subnets" if train else
                           f"{folds}-fold over the {len(test)} subnets"}
    for model in ("ridge", "xgb"):
        pred_ms = np.empty(len(test))
        for f, (fit_archs, test_idx) in enumerate(splits):
            path = out / f"int8_train_{f}.csv"
            frame(fit_archs).to_csv(path, index=False)
            pred = fit_latency(None, path, model, precision="int8", command="benchmarks/precision.py")
            pred_ms[test_idx] = pred.predict([test[k] for k in test_idx])
            if f == 0:
                save_predictor(pred, out / f"int8_{model}.json")
        m = regression_metrics(y, pred_ms)
        rep[model] = {k: m[k] for k in ("mape", "acc10", "spearman") if k in m}
        if noise and noise.get("mape"):
            rep[model]["mape_over_noise"] = m["mape"] / noise["mape"]
    return rep


def top1(checkpoint: str | None, n: int, r: int, n_eval: int, seed: int, cache: Any,
         log: Callable[[str], None]) -> dict[str, Any]:
    """Held-out top-1 of ``n`` subnets of the checkpoint's space: fp32 in torch (BatchNorm
    recalibrated, ``lat train eval``'s evaluator) against the int8 TFLite export of the same
    recalibrated subnet in LiteRT, int8 calibrated on the data set's training images."""
    if not checkpoint:
        return {"skipped": "no --checkpoint (a trained supernet): random weights score chance "
                           "either way"}
    import numpy as np
    import torch

    from latkit.fileio import sha256_file
    from latkit.profiler.export import export_arch, run_exported
    from latkit.profiler.quantize import Calibration
    from latkit.supernet.accuracy import evaluate_subnets, make_eval_images, normalise_images
    from latkit.supernet.bn_calib import recalibrate_bn
    from latkit.supernet.data import open_data
    from latkit.supernet.model import load_supernet

    supernet, ckpt = load_supernet(checkpoint)
    sp = supernet.space
    spec = (ckpt.get("config") or {}).get("data") or "builtin:gratings"
    images = make_eval_images(open_data(spec), r, n_eval=n_eval)
    rng = random.Random(seed + 7)
    archs = list(dict.fromkeys(sp.sample(rng, [r]) for _ in range(n)))
    fp32 = evaluate_subnets(supernet, archs, {r: images})
    calib = normalise_images(images.calib, torch.device("cpu"))
    held = normalise_images(images.images, torch.device("cpu")).numpy()
    labels = images.labels.numpy()
    weights = sha256_file(checkpoint)[:16] + "+bn"
    rows = []
    for a in archs:
        recalibrate_bn(supernet, a, calib)
        supernet.eval()
        path = export_arch(sp, a, "tflite", cache=cache, supernet=supernet, weights_id=weights,
                           precision="int8", calibration=Calibration(spec))
        logits = np.concatenate([np.asarray(run_exported(path, held[i:i + 1])).reshape(1, -1)
                                 for i in range(len(held))])
        rows.append({"arch": str(a), "fp32": float(fp32[a]),
                     "int8": float(100.0 * np.mean(logits.argmax(1) == labels))})
        log(f"  top-1 {a}: fp32 {rows[-1]['fp32']:.2f}%, int8 {rows[-1]['int8']:.2f}%")
    drop = [x["fp32"] - x["int8"] for x in rows]
    return {"space": sp.name, "data": spec, "n": len(rows), "n_eval": len(labels),
            "fp32_mean": statistics.mean(x["fp32"] for x in rows),
            "int8_mean": statistics.mean(x["int8"] for x in rows),
            "drop_median": statistics.median(drop), "drop_max": max(drop), "rows": rows}


def exit2_checks(int8_file: Path, predictor: Path, arch: Any) -> dict[str, Any]:
    """A contradicting --precision: one line on stderr, exit status 2, no traceback."""
    out = {}
    for name, argv in (("bench", ["bench", str(int8_file), "--device", "cpu-tflite",
                                  "--precision", "fp32"]),
                       ("predict", ["predict", "--predictor", str(predictor), "--arch", str(arch),
                                    "--precision", "fp32"])):
        r = subprocess.run([sys.executable, "-m", "latkit", *argv], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        out[name] = {"rc": r.returncode, "lines": len(lines), "message": lines[-1] if lines else "",
                     "ok": r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr}
    return out


def print_report(rep: dict[str, Any]) -> None:
    print(f"\nlatency ratios, median over {rep['n']} {SPACE} subnets at r{rep['resolution']} "
          f"(1 thread, {rep['passes']} interleaved passes):")
    print(f"  {'device':<11} {'fp32 ms':>8} {'fp16/fp32':>10} {'int8/fp32':>10}   (p10..p90; faster in)")
    for dev, d in rep["ratios"].items():
        print(f"  {dev:<11} {d['fp32_median_ms']:>8.3f} {d['fp16']['ratio_median']:>10.3f} "
              f"{d['int8']['ratio_median']:>10.3f}   fp16 {d['fp16']['ratio_p10']:.2f}.."
              f"{d['fp16']['ratio_p90']:.2f} ({d['fp16']['faster_in']}/{d['fp16']['n']}), int8 "
              f"{d['int8']['ratio_p10']:.2f}..{d['int8']['ratio_p90']:.2f} "
              f"({d['int8']['faster_in']}/{d['int8']['n']})")
    f = rep["fidelity"]
    nf = f["noise_floor"] or {}
    print(f"\nint8 predictor fidelity on cpu-tflite, {f['n_test']} held-out subnets ({f['how']}):")
    print(f"  {'predictor':<10} {'MAPE %':>7} {'+-10% %':>8} {'Spearman':>9} {'MAPE/noise':>11}")
    for model in ("ridge", "xgb"):
        m = f[model]
        print(f"  {model:<10} {m['mape']:>7.2f} {m['acc10']:>8.1f} {m['spearman']:>9.3f} "
              f"{m.get('mape_over_noise', float('nan')):>11.2f}")
    if nf:
        print(f"  {'noise':<10} {nf['mape']:>7.2f} {nf['acc10']:>8.1f} {nf['spearman']:>9.3f} "
              f"{1.0:>11.2f}   (pass against pass)")
    print_top1(rep["top1"])
    print("\nexit-2 checks: " + ", ".join(
        f"{k} {'ok' if v['ok'] else 'FAILED'} (rc {v['rc']}: {v['message'][:90]})"
        for k, v in rep["exit2"].items()))


def print_top1(t: dict[str, Any]) -> None:
    if "skipped" in t:
        print(f"\ntop-1 int8 vs fp32: skipped ({t['skipped']})")
    else:
        print(f"\ntop-1 on {t['n_eval']} held-out images of {t['data']}, {t['n']} {t['space']} "
              f"subnets: fp32 {t['fp32_mean']:.2f}%, "
              f"int8 export {t['int8_mean']:.2f}% (drop median {t['drop_median']:.2f}, max "
              f"{t['drop_max']:.2f} points)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/bench/precision")
    ap.add_argument("--n", type=int, default=20, help="subnets of the ratios (the held-out set)")
    ap.add_argument("--n-train", type=int, default=0, help="int8 subnets the predictors fit on "
                    "(default 0: --folds-fold cross-validation over the --n subnets, no more exports)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--top1-only", action="store_true", help="only the top-1 part (--checkpoint)")
    ap.add_argument("--export-only", action="store_true",
                    help="only export (cached under --out: the timed run then only measures)")
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.2, help="timed seconds per benchmark")
    ap.add_argument("--checkpoint", help="trained compofa-w1.0 supernet for the top-1 part")
    ap.add_argument("--n-eval", type=int, default=200, help="held-out images for top-1")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    from latkit.profiler.export import ExportCache, export_arch
    from latkit.supernet.space import get_space

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = ExportCache(out / "cache")
    sp = get_space(SPACE)
    test, train = subnets(args.n, args.n_train, args.resolution, args.seed)

    def export(dev: str, prec: str, arch: Any) -> Path:
        return export_arch(sp, arch, DEVICES[dev], cache=cache, precision=prec)

    t0 = time.time()
    if args.top1_only:
        rep = {"top1": top1(args.checkpoint, args.n, args.resolution, args.n_eval, args.seed, cache,
                            log), "seconds": time.time() - t0}
        (out / "report_top1.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
        print_top1(rep["top1"])
        print(f"\n{rep['seconds']:.0f} s; report: {out / 'report_top1.json'}")
        return 0
    jobs = [(d, p, a) for a in test for d in DEVICES for p in PRECISIONS]
    jobs += [("cpu-tflite", "int8", a) for a in train]
    log(f"{len(jobs)} exports and benchmarks ({args.n} subnets x 2 devices x 3 precisions, "
        f"{args.n_train} more int8 on cpu-tflite)")
    ms = measure(jobs, export, 0 if args.export_only else args.passes, args.min_time, args.seed, log)
    if args.export_only:
        print(f"exported {len(jobs)} models in {time.time() - t0:.0f} s (cached in {cache.root})")
        return 0
    rep: dict[str, Any] = {"space": SPACE, "resolution": args.resolution, "n": args.n,
                           "passes": args.passes, "ratios": ratios(ms, test)}
    rep["fidelity"] = fidelity(ms, train, test, out, args.folds)
    rep["top1"] = top1(args.checkpoint, args.n, args.resolution, args.n_eval, args.seed, cache, log)
    rep["exit2"] = exit2_checks(export("cpu-tflite", "int8", test[0]), out / "int8_ridge.json",
                                test[0])
    rep["seconds"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    print_report(rep)
    print(f"\n{rep['seconds']:.0f} s; report: {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
