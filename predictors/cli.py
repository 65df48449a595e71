"""``lat fit`` and ``lat predict``: fit, transfer, evaluate and apply latency and accuracy predictors.

    lat fit --space S --measurements FILE.csv [--lut DIR] --model lut|xgb|rf|ridge
            [--train-n N] [--seed K] -o PRED.json
    lat fit --space S --measurements FEW.csv --base A.json[,B.json...] -o PRED.json
    lat fit --target top1 --measurements acc.csv [--space S] [--model xgb|rf|ridge|mlp] -o ACC_PRED.json
    lat fit --table FILE.csv --target COLUMN [--features A,B,...] [--model xgb|rf|ridge] -o PRED.json
    lat fit evaluate --predictor PRED.json --measurements FILE.csv [--plot out.png] [--json]
    lat predict --predictor PRED.json (--arch ARCH | --archs FILE | --table FILE.csv) [--json]

``lat train fit-accuracy --space S --accuracy acc.csv -o ACC_PRED.json`` is the accuracy form under
its older name: ``register_fit_accuracy`` adds it to ``lat train`` (``latkit.cli`` does, since the
supernet package does not know about predictors).

Thin (STYLE 12): each handler parses, calls one library function of ``latkit.predictors``, prints.
The library modules import scikit-learn and xgboost, so the handlers import them when they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from latkit import cli_args
from latkit.errors import PredictorError
from latkit.fileio import check_writable
from latkit.predictors import defaults
from latkit.predictors.ranges import outside_fit
from latkit.supernet.arch_files import read_archs
from latkit.supernet.space import get_space

FIT_EPILOG = """\
forms:
  lat fit --space S --measurements FILE.csv [--lut DIR] --model lut|xgb|rf|ridge [--train-n N] -o PRED.json
      fit a latency predictor on end-to-end measurements (lat measure's CSV: columns arch,latency_ms);
      with --train-n N it fits on N seeded random rows and reports metrics on the others
  lat fit --space S --measurements FEW.csv --base A.json[,B.json...] -o PRED.json
      few-shot transfer: adapt predictors of other devices to this one with k measurements
  lat fit --target top1 --measurements acc.csv [--space S] [--model xgb|rf|ridge|mlp] -o ACC_PRED.json
      an accuracy predictor (arch -> top-1) on lat train eval's table; reports its Spearman on a
      seeded held-out share (--test-fraction, default 0.2); --model mlp is once-for-all's own
      accuracy predictor (an MLP over its one-hot arch encoding). Also: lat train fit-accuracy
  lat fit --table FILE.csv --target COLUMN [--features A,B,...] [--model xgb|rf|ridge] -o PRED.json
      a predictor over your own numeric feature table (any search space)
  lat fit evaluate --predictor PRED.json --measurements FILE.csv [--plot out.png] [--json]
      RMSE, MAPE, accuracy within +-5%/+-10%, Spearman and Kendall tau, beside the noise floor
      of the measurements (their passes, pass against pass); a scatter plot
"""

#: the target of the accuracy form (``lat fit --target top1``)
TOP1 = "top1"
TEST_FRACTION = 0.2
#: --test-fraction: a share strictly between 0 and 1
FRACTION = cli_args.number(0, 1, lo_open=True, what="fraction")


def register_fit(sub: Any) -> None:
    p = sub.add_parser(
        "fit", help="fit, transfer or evaluate a latency (or accuracy) predictor",
        description="Fit a latency or accuracy predictor (or evaluate one: lat fit evaluate ...).",
        epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["evaluate"],
                   help="'evaluate' to score an existing predictor instead of fitting")
    cli_args.add_space(p, help="search space of the archs (default: the CSV's space column)")
    p.add_argument("--measurements", metavar="FILE.csv",
                   help="end-to-end measurements (lat measure), or with --target top1 the accuracy "
                   "table (lat train eval)")
    p.add_argument("--lut", metavar="DIR", help="lookup table directory (lat-profile) for table features")
    p.add_argument("--model", choices=defaults.MODELS, default=None,
                   help=f"predictor model (default {defaults.DEFAULT_MODEL}; lut needs --lut; mlp: "
                   "accuracy only, with --target top1)")
    p.add_argument("--train-n", type=cli_args.integer(2),
                   help="fit on N seeded random rows, hold out the rest")
    cli_args.add_seed(p, default=0, what="seed of the split and the models")
    p.add_argument("--base", metavar="A.json[,B.json]", help="few-shot: source devices' predictors")
    p.add_argument("--method", default="auto", choices=["auto", "scale", "power", "mix", "residual"],
                   help="few-shot: candidate family (default auto: chosen by leave-one-out)")
    p.add_argument("--table", metavar="FILE.csv", help="your own feature table instead of archs")
    p.add_argument("--target", help="top1: an accuracy predictor on --measurements acc.csv; "
                   "with --table: the column to predict")
    p.add_argument("--test-fraction", type=FRACTION,
                   help=f"--target top1: share of subnets held out to measure the fit (default "
                   f"{TEST_FRACTION})")
    p.add_argument("--features", help="--table: comma-separated feature columns (default all numeric)")
    cli_args.add_precision(p, help="the precision the measurements (and --lut, --base) must hold "
                           "(default: the file's one precision; rows of several are refused)")
    p.add_argument("-o", "--output", metavar="PRED.json", help="where to write the predictor")
    p.add_argument("--predictor", metavar="PRED.json", help="evaluate: the predictor to score")
    p.add_argument("--plot", metavar="out.png", help="evaluate: predicted-vs-measured scatter plot")
    cli_args.add_json(p, help="print a JSON object instead of text")
    p.set_defaults(func=_cmd_fit)


def register_fit_accuracy(forms: Any) -> None:
    """``fit-accuracy`` under ``lat train`` (``forms``: its sub-parsers): ``lat fit --target top1``."""
    q = forms.add_parser("fit-accuracy", help="fit an arch -> top-1 predictor, held-out Spearman",
                         description="Fit the predictors package's regressor on an accuracy table "
                         "and report its Spearman rank correlation on a held-out split (the same as "
                         "lat fit --target top1 --measurements acc.csv).")
    cli_args.add_space(q, required=True, dest="fit_space")
    q.add_argument("--accuracy", required=True, help="CSV with columns arch,top1")
    q.add_argument("-o", "--output", required=True, help="predictor JSON")
    q.add_argument("--model", default="xgb", choices=("xgb", "rf", "ridge", "mlp"),
                   help="mlp: once-for-all's accuracy predictor (an MLP over its one-hot arch "
                   "encoding); default xgb")
    cli_args.add_seed(q, default=0, what="seed of the split and the model")
    q.add_argument("--test-fraction", type=FRACTION, default=TEST_FRACTION)
    q.set_defaults(func=_cmd_fit_accuracy)


# ------------------------------------------------------------------------------------------------
# lat fit
# ------------------------------------------------------------------------------------------------


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
    from latkit.predictors import api  # noqa: PLC0415 -- sklearn/xgboost: keeps lat --help fast

    _reject(args, "predictor", "plot", form="lat fit")
    _need(args, "output", form="lat fit")
    check_writable(args.output)  # before the fit: a FIFO, device node or symlink is refused now
    command = args.command_line
    if not args.table and args.target is not None:
        _reject(args, "precision", form="lat fit --target")
        return _fit_top1(args)
    _reject(args, "test_fraction", form="lat fit" + (" --table" if args.table else ""))
    if args.table:
        _reject(args, "space", "measurements", "lut", "base", "train_n", "precision",
                form="lat fit --table")
        _need(args, "target", form="lat fit --table")
        feats = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
        pred = api.fit_table(args.table, args.target, feats, args.model or defaults.DEFAULT_MODEL,
                             seed=args.seed, command=command)
    elif args.base:
        _reject(args, "lut", "model", "train_n", "target", "features", form="lat fit --base")
        _need(args, "measurements", form="lat fit --base")
        bases = [b.strip() for b in args.base.split(",") if b.strip()]
        pred = api.fit_fewshot(args.space, args.measurements, bases, method=args.method,
                               seed=args.seed, command=command, precision=args.precision)
    else:
        _reject(args, "target", "features", form="lat fit")
        _need(args, "measurements", form="lat fit")
        pred = api.fit_latency(args.space, args.measurements, args.model or defaults.DEFAULT_MODEL,
                               lut=args.lut, train_n=args.train_n, seed=args.seed, command=command,
                               precision=args.precision)
    path = _save(pred, args.output)
    _print_fit(pred, path, args.json)
    return 0


def _fit_top1(args: argparse.Namespace) -> int:
    """``lat fit --target top1 --measurements acc.csv``: an accuracy predictor."""
    from latkit.predictors.accuracy import fit_accuracy, format_fit  # noqa: PLC0415 -- sklearn/xgboost

    if args.target != TOP1:
        raise PredictorError(f"lat fit --target takes {TOP1} (an accuracy predictor on lat train eval's "
                             f"table), got {args.target!r}; to predict a column of your own feature "
                             "table give --table FILE.csv --target COLUMN")
    _reject(args, "lut", "base", "train_n", "features", form=f"lat fit --target {TOP1}")
    _need(args, "measurements", form=f"lat fit --target {TOP1}")
    model = args.model or defaults.DEFAULT_MODEL
    test_fraction = TEST_FRACTION if args.test_fraction is None else args.test_fraction
    fit = fit_accuracy(args.measurements, args.space, model=model, seed=args.seed,
                       test_fraction=test_fraction, command=args.command_line)
    path = _save(fit.predictor, args.output)
    if args.json:
        _print_fit(fit.predictor, path, True, heldout=fit.metrics)
    else:
        print(format_fit(fit, model, path))
    return 0


def _cmd_fit_accuracy(args: argparse.Namespace) -> int:
    """``lat train fit-accuracy``: the accuracy form of ``lat fit`` under its older name."""
    from latkit.predictors.accuracy import fit_accuracy, format_fit  # noqa: PLC0415 -- sklearn/xgboost

    check_writable(args.output)  # before the fit: a FIFO, device node or symlink is refused now
    fit = fit_accuracy(args.accuracy, args.fit_space, model=args.model, seed=args.seed,
                       test_fraction=args.test_fraction, command=args.command_line)
    print(format_fit(fit, args.model, _save(fit.predictor, args.output)))
    return 0


def _save(pred: Any, output: str) -> Any:
    from latkit.predictors.io import save_predictor  # noqa: PLC0415 -- sklearn/xgboost: lat --help

    return save_predictor(pred, output)


def _print_fit(pred: Any, path: Any, as_json: bool, heldout: dict[str, Any] | None = None) -> None:
    from latkit.predictors.metrics import format_report  # noqa: PLC0415 -- scipy: keeps lat --help fast

    meta = pred.meta_
    if as_json:
        print(json.dumps({"predictor": str(path), "kind": pred.kind, "space": meta.get("space"),
                          "target": meta.get("target"), "device": meta.get("device"),
                          "precision": meta.get("precision"),
                          "n_train": meta.get("n_train"), "chosen": meta.get("chosen"),
                          "metrics": meta.get("metrics"), "calibration": meta.get("calibration"),
                          **({"heldout": heldout} if heldout is not None else {})}))
        return
    what = f"{pred.kind}" + (f" ({meta['chosen']})" if meta.get("chosen") else "")
    prec = f" ({meta['precision']})" if meta.get("precision") else ""
    print(f"wrote {path}: {what} predictor of {meta.get('target')}{prec} for space "
          f"{meta.get('space')}, device {meta.get('device')}, fitted on {meta.get('n_train')} samples")
    labels = {"train": "in-sample", "cv": f"{defaults.CV_FOLDS}-fold cross-validation",
              "holdout": "held-out rows"}
    for name, m in (meta.get("metrics") or {}).items():
        if isinstance(m, dict) and "mape" in m:
            print(format_report(m, f"{labels.get(name, name)}:"))
    cal = meta.get("calibration")
    if cal:
        check = cal.get("check") or {}
        ratio = cal.get("reference_ratio")
        print(f"lookup table -> end to end: latency = {cal['scale']:.4f} x table sum "
              f"{'-' if cal['offset_ms'] < 0 else '+'} {abs(cal['offset_ms']):.3f} ms"
              + (f"; on {cal['checked_on']} MAPE {check['mape']:.2f}%, within +-10% "
                 f"{check['acc10']:.1f}%" if check else "")
              + (f"; reference model {ratio:.3f}x the table's level" if ratio else ""))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from latkit.predictors import api  # noqa: PLC0415 -- sklearn/xgboost: keeps lat --help fast
    from latkit.predictors.metrics import (  # noqa: PLC0415 -- scipy: keeps lat --help fast
        format_noise,
        format_report,
        plot_scatter,
    )

    _reject(args, "lut", "model", "train_n", "base", "table", "features", "output", "test_fraction",
            form="lat fit evaluate")
    if args.precision is not None:
        from latkit.predictors.io import load_predictor  # noqa: PLC0415 -- sklearn/xgboost

        api.check_predictor_precision(load_predictor(args.predictor), args.precision,
                                      where=args.predictor)
    _need(args, "predictor", "measurements", form="lat fit evaluate")
    if args.plot:
        check_writable(args.plot)
    ev = api.evaluate_frame(args.predictor, args.measurements, args.space)
    m, noise, target = ev.metrics, ev.noise, ev.target
    out = {"predictor": args.predictor, "measurements": args.measurements, **m,
           "noise_floor": noise,
           "mape_over_noise": m["mape"] / noise["mape"] if noise and noise["mape"] > 0 else None}
    if args.plot:
        out["plot"] = str(plot_scatter(ev.frame["measured"], ev.frame["predicted"], args.plot,
                                       ev.title, unit=ev.unit))
    if args.json:
        print(json.dumps(out))
    else:
        print(format_report(m, f"{args.predictor} on {args.measurements}:"))
        if target == "latency_ms":
            print(format_noise(noise, m))
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
    cli_args.add_precision(p, help="the precision to predict for: a predictor of another is refused")
    cli_args.add_json(p, help="print JSON instead of text")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from latkit.predictors import api  # noqa: PLC0415 -- sklearn/xgboost: keeps lat --help fast
    from latkit.predictors.io import load_predictor  # noqa: PLC0415 -- sklearn/xgboost: lat --help

    pred = load_predictor(args.predictor)
    target = pred.meta_.get("target", "latency_ms")
    if target == "latency_ms":
        api.check_predictor_precision(pred, args.precision, where=args.predictor)
    if pred.kind == "table":
        if not args.table:
            raise PredictorError(f"{args.predictor} is a feature-table predictor: give --table FILE.csv "
                                 f"with columns {', '.join(pred.feature_names or [])}")
        X = api.read_feature_rows(args.table, pred.feature_names or [])
        values = pred.predict(X)
        keys = [str(i) for i in range(len(values))]
    else:
        if args.table:
            raise PredictorError("--table is for feature-table predictors; give --arch or --archs")
        space = get_space(pred.meta_["space"])
        archs = [space.parse(args.arch)] if args.arch else read_archs(args.archs, space)
        values = pred.predict(archs)
        keys = [str(a) for a in archs]
        outside = [outside_fit(pred.meta_, space, a) for a in archs]
    label = "row" if pred.kind == "table" else "arch"
    outside = outside if pred.kind != "table" else [None] * len(keys)
    flagged = [(k, why) for k, why in zip(keys, outside, strict=True) if why]
    if flagged and not args.json:
        k, why = flagged[0]
        print(f"note: {len(flagged)} of {len(keys)} arch(s) lie outside what {args.predictor} was "
              f"fitted on (e.g. {k}: {why}); their predictions are extrapolated", file=sys.stderr)
    if args.json:
        def row(k: str, v: float, why: str | None) -> dict[str, Any]:
            return {label: k, target: float(v), **({"outside_fit": why} if why else {})}

        if args.arch:
            print(json.dumps({**row(keys[0], values[0], outside[0]), "predictor": args.predictor}))
        else:
            print(json.dumps([row(k, v, w) for k, v, w in zip(keys, values, outside, strict=True)]))
    elif args.arch:
        print(f"{values[0]:.4f} {'ms' if target == 'latency_ms' else target}")
    else:
        print(f"{label},{target}")
        for k, v in zip(keys, values, strict=True):
            print(f"{k},{v:.6g}")
    return 0
