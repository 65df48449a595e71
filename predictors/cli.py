"""``lat fit`` and ``lat predict``: fit, transfer, evaluate and apply latency predictors.

    lat fit --space S --measurements FILE.csv [--lut DIR] --model lut|xgb|rf|ridge
            [--train-n N] [--seed K] -o PRED.json
    lat fit --space S --measurements FEW.csv --base A.json[,B.json...] -o PRED.json
    lat fit --table FILE.csv --target COLUMN [--features A,B,...] [--model xgb|rf|ridge] -o PRED.json
    lat fit evaluate --predictor PRED.json --measurements FILE.csv [--plot out.png] [--json]
    lat predict --predictor PRED.json (--arch ARCH | --archs FILE | --table FILE.csv) [--json]

Thin (STYLE 12): each handler parses, calls one function of ``latkit.predictors.api``, prints.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from latkit.errors import PredictorError
from latkit.predictors import defaults

FIT_EPILOG = """\
forms:
  lat fit --space S --measurements FILE.csv [--lut DIR] --model lut|xgb|rf|ridge [--train-n N] -o PRED.json
      fit a latency predictor on end-to-end measurements (lat measure's CSV: columns arch,latency_ms);
      with --train-n N it fits on N seeded random rows and reports metrics on the others
  lat fit --space S --measurements FEW.csv --base A.json[,B.json...] -o PRED.json
      few-shot transfer: adapt predictors of other devices to this one with k measurements
  lat fit --table FILE.csv --target COLUMN [--features A,B,...] [--model xgb|rf|ridge] -o PRED.json
      a predictor over your own numeric feature table (any search space)
  lat fit evaluate --predictor PRED.json --measurements FILE.csv [--plot out.png] [--json]
      RMSE, MAPE, accuracy within +-5%/+-10%, Spearman and Kendall tau; a scatter plot
"""


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["lat", *sys.argv[1:]]) if sys.argv else "lat"


def register_fit(sub: Any) -> None:
    p = sub.add_parser(
        "fit", help="fit, transfer or evaluate a latency predictor",
        description="Fit a latency predictor (or evaluate one: lat fit evaluate ...).",
        epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["evaluate"],
                   help="'evaluate' to score an existing predictor instead of fitting")
    p.add_argument("--space", help="search space of the archs (default: the CSV's space column)")
    p.add_argument("--measurements", metavar="FILE.csv", help="end-to-end measurements (lat measure)")
    p.add_argument("--lut", metavar="DIR", help="lookup table directory (lat-profile) for table features")
    p.add_argument("--model", choices=defaults.MODELS, default=None,
                   help=f"predictor model (default {defaults.DEFAULT_MODEL}; lut needs --lut)")
    p.add_argument("--train-n", type=int, help="fit on N seeded random rows, hold out the rest")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the models (default 0)")
    p.add_argument("--base", metavar="A.json[,B.json]", help="few-shot: source devices' predictors")
    p.add_argument("--method", default="auto", choices=["auto", "scale", "power", "mix", "residual"],
                   help="few-shot: candidate family (default auto: chosen by leave-one-out)")
    p.add_argument("--table", metavar="FILE.csv", help="your own feature table instead of archs")
    p.add_argument("--target", help="--table: the column to predict")
    p.add_argument("--features", help="--table: comma-separated feature columns (default all numeric)")
    p.add_argument("-o", "--output", metavar="PRED.json", help="where to write the predictor")
    p.add_argument("--predictor", metavar="PRED.json", help="evaluate: the predictor to score")
    p.add_argument("--plot", metavar="out.png", help="evaluate: predicted-vs-measured scatter plot")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    p.set_defaults(func=_cmd_fit)


def _need(args: argparse.Namespace, *names: str, form: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise PredictorError(f"{form} needs {' and '.join(missing)} (see lat fit --help)")


def _reject(args: argparse.Namespace, *names: str, form: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) not in (None, False)]
    if given:
        raise PredictorError(f"{form} does not take {', '.join(given)} (see lat fit --help)")


def _cmd_fit(args: argparse.Namespace) -> int:
    if args.action == "evaluate":
        return _cmd_evaluate(args)
    from latkit.predictors import api
    from latkit.predictors.io import save_predictor

    _reject(args, "predictor", "plot", form="lat fit")
    _need(args, "output", form="lat fit")
    command = _command_line()
    if args.table:
        _reject(args, "space", "measurements", "lut", "base", "train_n", form="lat fit --table")
        _need(args, "target", form="lat fit --table")
        feats = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
        pred = api.fit_table(args.table, args.target, feats, args.model or defaults.DEFAULT_MODEL,
                             seed=args.seed, command=command)
    elif args.base:
        _reject(args, "lut", "model", "train_n", "target", "features", form="lat fit --base")
        _need(args, "measurements", form="lat fit --base")
        bases = [b.strip() for b in args.base.split(",") if b.strip()]
        pred = api.fit_fewshot(args.space, args.measurements, bases, method=args.method,
                               seed=args.seed, command=command)
    else:
        _reject(args, "target", "features", form="lat fit")
        _need(args, "measurements", form="lat fit")
        pred = api.fit_latency(args.space, args.measurements, args.model or defaults.DEFAULT_MODEL,
                               lut=args.lut, train_n=args.train_n, seed=args.seed, command=command)
    path = save_predictor(pred, args.output)
    _print_fit(pred, path, args.json)
    return 0


def _print_fit(pred: Any, path: Any, as_json: bool) -> None:
    from latkit.predictors.metrics import format_report

    meta = pred.meta_
    if as_json:
        print(json.dumps({"predictor": str(path), "kind": pred.kind, "space": meta.get("space"),
                          "target": meta.get("target"), "device": meta.get("device"),
                          "n_train": meta.get("n_train"), "chosen": meta.get("chosen"),
                          "metrics": meta.get("metrics")}))
        return
    what = f"{pred.kind}" + (f" ({meta['chosen']})" if meta.get("chosen") else "")
    print(f"wrote {path}: {what} predictor of {meta.get('target')} for space {meta.get('space')}, "
          f"device {meta.get('device')}, fitted on {meta.get('n_train')} samples")
    labels = {"train": "in-sample", "cv": f"{defaults.CV_FOLDS}-fold cross-validation",
              "holdout": "held-out rows"}
    for name, m in (meta.get("metrics") or {}).items():
        if isinstance(m, dict) and "mape" in m:
            print(format_report(m, f"{labels.get(name, name)}:"))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from latkit.predictors import api
    from latkit.predictors.io import load_predictor
    from latkit.predictors.metrics import format_report, plot_scatter

    _reject(args, "lut", "model", "train_n", "base", "table", "features", "output", form="lat fit evaluate")
    _need(args, "predictor", "measurements", form="lat fit evaluate")
    pred = load_predictor(args.predictor)
    if pred.kind == "table":
        raise PredictorError("lat fit evaluate scores arch predictors; for a feature-table predictor "
                             "use lat predict --table")
    target = pred.meta_.get("target", "latency_ms")
    meas = api.read_measurements(args.measurements, args.space or pred.meta_["space"], target=target)
    m, p = api.evaluate(pred, meas.archs, meas.values)
    out = {"predictor": args.predictor, "measurements": args.measurements, **m}
    if args.plot:
        title = f"{pred.kind} on {meas.device or 'measurements'} ({pred.meta_['space']})"
        out["plot"] = str(plot_scatter(meas.values, p, args.plot, title, unit=m["units"]["rmse_ms"]))
    if args.json:
        print(json.dumps(out))
    else:
        print(format_report(m, f"{args.predictor} on {args.measurements}:"))
        if args.plot:
            print(f"  plot           {out['plot']}")
    return 0


# ------------------------------------------------------------------------------------------------
# lat predict
# ------------------------------------------------------------------------------------------------


def register_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict latency (or accuracy) with a fitted predictor",
                       description="Apply a predictor file written by lat fit.")
    p.add_argument("--predictor", required=True, metavar="PRED.json")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", help="one arch: canonical key or once-for-all JSON dict")
    g.add_argument("--archs", metavar="FILE", help="archs, one per line or a CSV with an arch column")
    g.add_argument("--table", metavar="FILE.csv", help="rows of a feature table (table predictors)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from latkit.predictors.io import load_predictor

    pred = load_predictor(args.predictor)
    target = pred.meta_.get("target", "latency_ms")
    if pred.kind == "table":
        if not args.table:
            raise PredictorError(f"{args.predictor} is a feature-table predictor: give --table FILE.csv "
                                 f"with columns {', '.join(pred.feature_names or [])}")
        X, _, _ = _table_rows(args.table, pred)
        values = pred.predict(X)
        keys = [str(i) for i in range(len(values))]
    else:
        if args.table:
            raise PredictorError("--table is for feature-table predictors; give --arch or --archs")
        from latkit.supernet.arch_files import read_archs
        from latkit.supernet.space import get_space

        space = get_space(pred.meta_["space"])
        archs = [space.parse(args.arch)] if args.arch else read_archs(args.archs, space)
        values = pred.predict(archs)
        keys = [str(a) for a in archs]
    label = "row" if pred.kind == "table" else "arch"
    if args.json:
        if args.arch:
            print(json.dumps({"arch": keys[0], target: float(values[0]), "predictor": args.predictor}))
        else:
            print(json.dumps([{label: k, target: float(v)} for k, v in zip(keys, values)]))
    elif args.arch:
        print(f"{values[0]:.4f} {'ms' if target == 'latency_ms' else target}")
    else:
        print(f"{label},{target}")
        for k, v in zip(keys, values):
            print(f"{k},{v:.6g}")
    return 0


def _table_rows(path: str, pred: Any) -> tuple[Any, Any, Any]:
    from latkit.predictors.api import _open_csv

    import numpy as np

    header, rows = _open_csv(path)
    cols = list(pred.feature_names or [])
    missing = [c for c in cols if c not in header]
    if missing:
        raise PredictorError(f"{path} lacks the predictor's feature columns {missing}")
    try:
        X = np.array([[float(r[c]) for c in cols] for r in rows], dtype=float)
    except (TypeError, ValueError):
        raise PredictorError(f"{path}: a feature value is not a number") from None
    return X.reshape(len(rows), len(cols)), None, cols
