"""``lat demo``: the whole of latkit on this machine's CPU, from nothing to verified subnets.

Every step goes through the same library functions as the commands named in its header:

1. supernet       ``lat train``: a short CompOFA training on the built-in gratings data (or
                  ``--checkpoint C``, e.g. one the project's trainer produced earlier)
2. accuracy       ``lat train eval``: top-1 of every CompOFA subnet at the demo resolutions, BN
                  recalibrated -> ``acc.csv``
3. lookup table   ``lat profile``: every distinct layer of those subnets on the device -> ``lut_cpu/``
4. end to end     ``lat measure``: a few dozen subnets (with the trained weights, as they ship) ->
                  ``e2e_cpu.csv``
5. predictor      ``lat fit``: lookup table + calibration and xgboost, each fitted on 75% and tested
                  on the held-out 25%; the better one is refitted on all -> ``latency_cpu.json``
6. search         ``lat search``: three budgets from the frontier's predicted latencies (25th, 50th
                  and 90th percentile), most accurate subnet under each
7. verification   ``lat search --verify``: each choice exported with its weights (BatchNorm
                  recalibrated, as evaluated) and measured on the device; over budget -> the next
                  subnet down the frontier
8. report         the table of choices, ``pareto.png`` and where everything is

The accuracy table, the measurements and the search cover the same subnets at the same resolutions.
Everything is resumable: running the demo again with the same ``--out`` reuses what is done.

This module sits above every package (it drives them all, as ``latkit/cli.py`` does). ``lat --help``
imports it to register ``lat demo``, so the steps import what pulls in torch, numpy, scikit-learn
or xgboost when they run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import latkit
from latkit import cli_args
from latkit.errors import LatkitError
from latkit.fileio import make_dir, sha256_file, write_text
from latkit.profiler.campaign import (
    QUICK_PROTOCOL,
    CampaignSettings,
    run_e2e_campaign,
    run_layer_campaign,
    sample_archs,
)
from latkit.supernet.resolutions import format_resolutions, parse_resolutions
from latkit.supernet.space import get_space

SPACE = "compofa-w1.0"
DATA = "builtin:gratings"


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    device: str = "cpu"
    resolutions: tuple[int, ...] = (128, 144)
    epochs_scale: float = 0.01
    max_train_steps: int | None = None
    checkpoint: Path | None = None
    n_e2e: int = 40
    holdout_fraction: float = 0.25
    budget_quantiles: tuple[float, ...] = (0.25, 0.5, 0.9)
    budgets_ms: tuple[float, ...] | None = None
    calib_images: int = 256
    eval_images: int = 360
    eval_precision: str = "auto"  # bf16 autocast where the CPU has it: ~2x faster, same top-1
    quick: bool = False
    seed: int = 0
    command: str = "lat demo"


@dataclass
class DemoReport:
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    choices: list[dict[str, Any]] = field(default_factory=list)
    budgets_ms: list[float] = field(default_factory=list)
    predictor: dict[str, Any] = field(default_factory=dict)
    search_seconds: float = 0.0
    total_seconds: float = 0.0


class _Steps:
    """Numbered step headers with timings, through the caller's ``say``."""

    def __init__(self, say: Callable[[str], None], report: DemoReport, total: int = 8) -> None:
        self.say, self.report, self.total, self.n, self.t0 = say, report, total, 0, 0.0
        self.name = ""

    def start(self, name: str, what: str) -> None:
        self.n += 1
        self.name, self.t0 = name, time.perf_counter()
        self.say(f"\n[{self.n}/{self.total}] {name}: {what}")

    def done(self, summary: str) -> None:
        dt = time.perf_counter() - self.t0
        self.report.steps.append({"step": self.name, "seconds": round(dt, 2), "summary": summary})
        self.say(f"      {summary} ({dt:.1f} s)")


# ------------------------------------------------------------------------------------------------
# The steps
# ------------------------------------------------------------------------------------------------


def _train(cfg: DemoConfig, say: Callable[[str], None]) -> Path:
    from latkit.supernet.train import TrainConfig, train  # noqa: PLC0415 -- torch: keeps lat --help fast

    tc = TrainConfig(space=SPACE, schedule="compofa", data=DATA,
                     resolutions=cfg.resolutions, epochs_scale=cfg.epochs_scale, seed=cfg.seed,
                     max_steps=cfg.max_train_steps, checkpoint_every_s=60.0)
    last = [0.0]

    def on_step(info: Any) -> None:
        now = time.perf_counter()
        if now - last[0] > 15 or info.step == info.total_steps:
            last[0] = now
            say(f"      step {info.step}/{info.total_steps} {info.phase}: loss {info.loss:.3f}, "
                f"{info.images_per_s:.0f} img/s")

    run_dir = cfg.out / "supernet"
    res = train(tc, run_dir, resume=(run_dir / "last.pt").is_file(), on_step=on_step,
                log=lambda m: say(f"      {m}"))
    return Path(res.checkpoint)


def _accuracy(cfg: DemoConfig, ckpt: Path, say: Callable[[str], None]) -> tuple[Path, dict]:
    from latkit.supernet.accuracy import accuracy_table  # noqa: PLC0415 -- torch: keeps lat --help fast

    sp = get_space(SPACE)
    archs = [a for r in cfg.resolutions for a in sp.enumerate(r)]
    out = cfg.out / "acc.csv"
    done = [0]
    last = [time.perf_counter()]

    def on_result(arch: Any, top1: float) -> None:
        done[0] += 1
        if time.perf_counter() - last[0] > 60 or done[0] == len(archs):
            last[0] = time.perf_counter()
            say(f"      {done[0]}/{len(archs)} subnets evaluated")

    res = accuracy_table(ckpt, sp, archs, out, n_calib=cfg.calib_images, n_eval=cfg.eval_images,
                         precision=cfg.eval_precision,
                         command=f"{cfg.command} (lat train eval --precision {cfg.eval_precision})",
                         on_result=on_result)
    vals = list(res.top1.values())
    return out, {"subnets": len(vals), "top1_min": min(vals), "top1_max": max(vals)}


def _campaign_progress(say: Callable[[str], None]) -> Callable[[Any], None]:
    last = [time.perf_counter()]

    def progress(ev: Any) -> None:
        if ev.kind in ("failed", "device_error"):
            say(f"      {ev.kind}: {ev.key} {ev.message}")
        elif ev.kind == "measured" and time.perf_counter() - last[0] > 60:
            last[0] = time.perf_counter()
            say(f"      {ev.done}/{ev.total} measured")

    return progress


def _settings(cfg: DemoConfig, network: bool, weights_id: str | None = None) -> Any:
    if cfg.quick:  # a smoke run: one short pass, no reference model
        return CampaignSettings(protocol=QUICK_PROTOCOL, weights_id=weights_id if network else None,
                                passes=1, reference=False)
    return CampaignSettings(weights_id=weights_id if network else None)


def _lut(cfg: DemoConfig, say: Callable[[str], None]) -> tuple[Path, int]:
    out = cfg.out / f"lut_{cfg.device}"
    res = run_layer_campaign(SPACE, list(cfg.resolutions), cfg.device, cfg.out / "measurements.sqlite",
                             out, progress=_campaign_progress(say), settings=_settings(cfg, False),
                             command=f"{cfg.command} (lat profile)")
    if not res.complete:
        raise LatkitError(f"the lookup-table campaign is incomplete ({res.failed} failed: "
                          f"{'; '.join(res.errors[:2])}); run lat demo again to resume")
    return out, res.entries


def _e2e(cfg: DemoConfig, supernet: Any, weights_id: str, say: Callable[[str], None]) -> tuple[Path, int]:
    archs = sample_archs(SPACE, cfg.n_e2e, cfg.seed, list(cfg.resolutions))
    out = cfg.out / f"e2e_{cfg.device}.csv"
    res = run_e2e_campaign(SPACE, archs, cfg.device, cfg.out / "measurements.sqlite", out,
                           progress=_campaign_progress(say), supernet=supernet,
                           settings=_settings(cfg, True, weights_id),
                           cache_dir=cfg.out / "exports", command=f"{cfg.command} (lat measure)")
    if not res.complete:
        raise LatkitError(f"the end-to-end campaign is incomplete ({res.failed} failed: "
                          f"{'; '.join(res.errors[:2])}); run lat demo again to resume")
    return out, res.entries


def _fit(cfg: DemoConfig, e2e: Path, lut: Path, say: Callable[[str], None]) -> tuple[Path, dict]:
    from latkit.predictors.api import fit_latency  # noqa: PLC0415 -- sklearn/xgboost: lat --help fast
    from latkit.predictors.io import save_predictor  # noqa: PLC0415 -- sklearn/xgboost: lat --help fast

    n = sum(1 for _ in open(e2e)) - 1
    train_n = max(3, int(round(n * (1 - cfg.holdout_fraction))))
    scores = {}
    for model in ("lut", "xgb"):
        p = fit_latency(SPACE, e2e, model, lut=lut, train_n=train_n, seed=cfg.seed)
        m = p.meta_["metrics"]["holdout"]
        scores[model] = m
        say(f"      {model}: held-out MAPE {m['mape']:.2f}%, within 10%: {m['acc10']:.0f}% "
            f"({m['n']} subnets)")
    best = min(scores, key=lambda k: scores[k]["mape"])
    final = fit_latency(SPACE, e2e, best, lut=lut, seed=cfg.seed,
                        command=f"{cfg.command} (lat fit --model {best})")
    final.meta_["device"] = cfg.device
    final.meta_["metrics"]["holdout_at_selection"] = scores[best]
    path = save_predictor(final, cfg.out / f"latency_{cfg.device}.json")
    return path, {"model": best, "holdout": {k: v["mape"] for k, v in scores.items()},
                  "n_train_selection": train_n, "n": n}


def _budgets(cfg: DemoConfig, pred: Path, acc: Path) -> list[float]:
    """Budgets at quantiles of the predicted latencies of the frontier (0.1 ms steps, distinct)."""
    import numpy as np  # noqa: PLC0415 -- numpy: keeps lat --help fast

    from latkit.search.pareto import pareto_search  # noqa: PLC0415 -- numpy: keeps lat --help fast
    from latkit.search.protocols import accuracy_source, latency_source  # noqa: PLC0415 -- numpy

    if cfg.budgets_ms:
        return list(cfg.budgets_ms)
    res = pareto_search(SPACE, [latency_source(cfg.device, str(pred), SPACE)],
                        accuracy_source(str(acc), SPACE), [math.inf])
    lat = res.frontiers[cfg.device].latency_ms
    budgets = sorted({math.ceil(float(np.quantile(lat, q)) * 10) / 10 for q in cfg.budget_quantiles})
    return budgets


class _BnRecalibrated:
    """A supernet whose ``extract(arch)`` first recalibrates the subnet's BatchNorm statistics
    on the same calibration images as the accuracy table, so shipped models match it."""

    def __init__(self, model: Any, images: dict[int, Any]) -> None:
        self.model, self.images = model, images

    def extract(self, arch: Any) -> Any:
        from latkit.supernet.accuracy import normalise_images  # noqa: PLC0415 -- torch: lat --help fast
        from latkit.supernet.bn_calib import iter_batches, recalibrate_bn  # noqa: PLC0415 -- torch

        calib = self.images[arch.r].calib
        device = next(self.model.parameters()).device
        batches = (normalise_images(x, device) for x in iter_batches(calib, 128))
        recalibrate_bn(self.model, arch, batches)
        return self.model.extract(arch)


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def builtin_checkpoint() -> Path | None:
    """A supernet checkpoint shipped with latkit (``latkit/data/builtin/compofa*.pt``), if any."""
    folder = Path(latkit.__file__).parent / "data" / "builtin"
    found = sorted(folder.glob("compofa*.pt")) if folder.is_dir() else []
    return found[0] if found else None


def run_demo(cfg: DemoConfig, say: Callable[[str], None] = lambda m: None) -> DemoReport:
    """Run the eight steps; ``say`` receives every line of progress."""
    from latkit.search.run import SearchRequest, run_search  # noqa: PLC0415 -- numpy: lat --help fast
    from latkit.supernet.accuracy import make_eval_images  # noqa: PLC0415 -- torch: lat --help fast
    from latkit.supernet.data import open_data  # noqa: PLC0415 -- numpy, PIL: lat --help fast
    from latkit.supernet.model import load_supernet  # noqa: PLC0415 -- torch: lat --help fast

    t_all = time.perf_counter()
    make_dir(cfg.out)
    rep = DemoReport()
    st = _Steps(say, rep)
    bad = [r for r in cfg.resolutions if r < 128 or r > 224 or r % 4]
    if bad:
        raise LatkitError(f"demo resolutions must be in 128..224 step 4, got {bad}")
    from latkit.devices.registry import list_devices  # noqa: PLC0415 -- with the steps' imports

    known = [row["name"] for row in list_devices()]
    if cfg.device not in known:  # before any training: an unknown device fails now
        raise LatkitError(f"unknown device {cfg.device!r}; known devices: {', '.join(known)} "
                          "(lat device list)")
    if cfg.checkpoint is not None and not Path(cfg.checkpoint).is_file():
        raise LatkitError(f"checkpoint {cfg.checkpoint} does not exist; give a lat train "
                          "checkpoint, or leave --checkpoint out to train one")

    st.start("supernet", f"lat train --space compofa-w1.0 --data {DATA}"
             f" --resolutions {format_resolutions(cfg.resolutions)} --epochs-scale {cfg.epochs_scale:g}"
             if cfg.checkpoint is None else f"using the checkpoint {cfg.checkpoint} "
             "(trained by lat train; pass --train to train one here)")
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else _train(cfg, say)
    rep.artifacts["checkpoint"] = str(ckpt)
    st.done(f"checkpoint {ckpt}")

    st.start("accuracy", f"lat train eval: all {243 * len(cfg.resolutions)} CompOFA subnets at "
             f"{', '.join(map(str, cfg.resolutions))} (BatchNorm recalibrated)")
    acc, info = _accuracy(cfg, ckpt, say)
    rep.artifacts["accuracy_table"] = str(acc)
    st.done(f"{info['subnets']} subnets, top-1 {info['top1_min']:.1f}..{info['top1_max']:.1f}% -> {acc}")

    st.start("lookup table", f"lat profile --device {cfg.device}: every layer of those subnets")
    lut, n_layers = _lut(cfg, say)
    rep.artifacts["lookup_table"] = str(lut)
    st.done(f"{n_layers} layers -> {lut}")

    st.start("end to end", f"lat measure --device {cfg.device}: {cfg.n_e2e} random subnets, "
             "exported with the trained weights")
    supernet, ck = load_supernet(ckpt, SPACE)
    data_spec = (ck.get("config") or {}).get("data") or DATA  # what it was trained and evaluated on
    weights_id = sha256_file(ckpt)
    e2e, n_rows = _e2e(cfg, supernet, weights_id, say)
    rep.artifacts["measurements"] = str(e2e)
    st.done(f"{n_rows} subnets measured -> {e2e}")

    st.start("predictor", "lat fit: lookup table + calibration vs xgboost on a held-out 25%")
    pred, pinfo = _fit(cfg, e2e, lut, say)
    rep.predictor = pinfo
    rep.artifacts["latency_predictor"] = str(pred)
    st.done(f"chose {pinfo['model']} (held-out MAPE {pinfo['holdout'][pinfo['model']]:.2f}%), "
            f"refitted on all {pinfo['n']} -> {pred}")

    st.start("search", "lat search: frontier of the accuracy table's subnets, three budgets")
    budgets = _budgets(cfg, pred, acc)
    rep.budgets_ms = budgets
    st.done(f"budgets {', '.join(f'{b:g}' for b in budgets)} ms (frontier quantiles "
            f"{', '.join(f'{q:g}' for q in cfg.budget_quantiles)})")

    st.start("verification", f"lat search --verify: export and measure every choice on {cfg.device}")
    data = open_data(data_spec)
    images = {r: make_eval_images(data, r, cfg.calib_images, 1) for r in cfg.resolutions}
    req = SearchRequest(
        space=SPACE, latency=[(cfg.device, str(pred))], accuracy=str(acc), budgets_ms=budgets,
        out=cfg.out / "search", verify=True, checkpoint=ckpt, seed=cfg.seed,
        command=f"{cfg.command} (lat search --verify)",
        protocol=_settings(cfg, True).protocol,
    )
    report = run_search(req, log=lambda m: say(f"      {m}"),
                        supernet=_BnRecalibrated(supernet, images),
                        weights_id=f"{weights_id}+bn{cfg.calib_images}")
    s = report.summary
    rep.search_seconds = s["search_seconds"]
    rep.choices = s["choices"]
    ok = sum(1 for c in s["choices"] if c.get("within_budget"))
    st.done(f"{ok}/{len(s['choices'])} choices measured within budget; search "
            f"{s['search_seconds'] * 1000:.0f} ms, verification {s['verify_seconds']:.1f} s")
    rep.artifacts.update({"pareto_csv": s["out"]["pareto_csv"], "choices": s["out"]["choices_json"],
                          "plot": s["out"]["pareto_png"],
                          "models": ", ".join(s["out"]["models"])})
    rep.total_seconds = time.perf_counter() - t_all
    write_text(cfg.out / "demo.json", json.dumps(
        {"steps": rep.steps, "artifacts": rep.artifacts, "budgets_ms": rep.budgets_ms,
         "predictor": rep.predictor, "choices": rep.choices, "search_seconds": rep.search_seconds,
         "total_seconds": rep.total_seconds, "command": cfg.command}, indent=1) + "\n")
    return rep


def _device_budgets(specs: Any, device: str) -> tuple[float, ...] | None:
    """``--budget-ms 3,5`` or ``--budget-ms cpu=3,5`` (the demo's one device) -> its budgets."""
    if not specs:
        return None
    try:
        return tuple(cli_args.resolve_budgets(specs, [device])[device])
    except ValueError as exc:
        raise LatkitError(str(exc)) from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from latkit.search.verify import format_choices  # noqa: PLC0415 -- numpy: keeps lat --help fast

    quick = args.quick
    sp = get_space(SPACE)
    if args.resolutions:  # "all": every resolution of the space
        resolutions = parse_resolutions(args.resolutions, sp) or tuple(sp.resolutions)
    else:
        resolutions = (128,) if quick else (128, 144)
    cfg = DemoConfig(
        out=Path(args.out), device=args.device, resolutions=resolutions,
        epochs_scale=args.epochs_scale if args.epochs_scale is not None else 0.01,
        max_train_steps=args.max_train_steps if args.max_train_steps is not None
        else (20 if quick else None),
        checkpoint=Path(args.checkpoint) if args.checkpoint else (
            None if args.train or quick else builtin_checkpoint()),
        n_e2e=args.n_e2e or (12 if quick else 40),
        budgets_ms=_device_budgets(args.budget_ms, args.device),
        calib_images=64 if quick else 256, eval_images=100 if quick else 360,
        quick=quick, seed=args.seed,
        command=args.command_line,
    )

    def say(msg: str) -> None:
        print(msg, flush=True)

    say(f"latkit demo on {cfg.device}: {SPACE}, resolutions {', '.join(map(str, cfg.resolutions))}"
        f" -> {cfg.out}")
    rep = run_demo(cfg, say)
    say("\n[8/8] report: the most accurate subnet per budget, verified by measurement on "
        f"{cfg.device}\n")
    say(format_choices(rep.choices))
    say("")
    width = max(len(k) for k in rep.artifacts)
    for k, v in rep.artifacts.items():
        say(f"  {k:<{width}}  {v}")
    timings = ", ".join(f"{s['step']} {s['seconds']:.0f} s" for s in rep.steps)
    say(f"\n  search {rep.search_seconds * 1000:.0f} ms; whole demo {rep.total_seconds / 60:.1f} min "
        f"({timings})")
    infeasible = [c for c in rep.choices if c.get("feasible") is False]
    bad = [c for c in rep.choices if not c.get("within_budget") and c.get("feasible") is not False]
    if infeasible and not bad:
        for c in infeasible:
            print(f"lat demo: {c['note']}", file=sys.stderr)
        return cli_args.INFEASIBLE_EXIT
    if bad:
        raise LatkitError(f"{len(bad)} choice(s) did not measure within budget: "
                          f"{bad[0].get('note', '')}")
    return 0


def register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, profile, fit, search and verify on this machine's CPU",
                       description=__doc__.split("\n\n")[0])
    cli_args.add_out(p, required=False, default="out/demo")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: one resolution, 20 training steps, 12 measurements, short "
                   "protocols (figures are noisy)")
    cli_args.add_device(p, default="cpu")
    cli_args.add_resolutions(p, help="input resolutions: a list and/or ranges such as 128,160 or "
                             "128-224:8 (a range steps by 4 by default), or 'all' (default 128,144; "
                             "128 with --quick)")
    p.add_argument("--checkpoint", help="use this supernet checkpoint instead of training one")
    p.add_argument("--train", action="store_true",
                   help="train the supernet even if latkit ships a checkpoint (data/builtin)")
    p.add_argument("--epochs-scale", type=cli_args.number(0, lo_open=True),
                   help="training length (default 0.01)")
    p.add_argument("--max-train-steps", type=cli_args.POSITIVE, help="stop training after this many steps")
    p.add_argument("--n-e2e", type=cli_args.integer(2), help="end-to-end measurements (default 40)")
    cli_args.add_budgets(p, required=False, help="budgets instead of the frontier quantiles: "
                         + cli_args.BUDGET_HELP)
    cli_args.add_seed(p, default=0)
    p.set_defaults(func=_cmd_demo)
