"""``lat train``: train a supernet, evaluate its subnets, fit an accuracy predictor, export it.

Four forms (the first token after ``train`` picks one; none of them means a training run)::

    lat train [--space S] [--schedule compofa|ofa] [--data builtin:NAME|DIR] [--resolutions R,...]
              [--epochs-scale F] --out DIR [--resume]
    lat train eval --checkpoint C [--space S] [--resolutions R,...] [--archs FILE | -n N] --out acc.csv
    lat train fit-accuracy --space S --accuracy acc.csv -o ACC_PRED.json [--model xgb|rf|ridge]
    lat train export-checkpoint --checkpoint C --out small.pt [--half]
    lat train import FILE --space S -o CKPT [--kernel-transform centre|matrices]
    lat train export-ofa CKPT -o FILE

``lat-train ARGS`` is ``lat train ARGS``, and runs unchanged under
``torchrun --nproc_per_node N --no-python lat-train ...``. torch (and every latkit module that
imports it) is imported inside the handlers, so that ``lat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

from latkit import cli_args
from latkit.errors import TrainError
from latkit.supernet.arch_files import read_archs
from latkit.supernet.family import FamilySpace
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space, list_spaces

DESCRIPTION = """\
Train a weight-sharing supernet and turn it into accuracy sources for search.

  lat train ...                 a training run (this page): CompOFA's compound schedule or
                                once-for-all's progressive shrinking; writes DIR/last.pt
  lat train eval ...            top-1 of every CompOFA subnet (or --archs / -n random ones) after
                                BatchNorm recalibration -> acc.csv (arch,top1,...)
  lat train fit-accuracy ...    fit an accuracy predictor (arch -> top-1) on acc.csv, report its
                                held-out Spearman -> predictor JSON
  lat train export-checkpoint   a small copy of a checkpoint with only what eval needs (--half: fp16)
  lat train import FILE         once-for-all's or CompOFA's released supernet file -> a latkit
                                checkpoint (every --checkpoint also reads such files directly)
  lat train export-ofa CKPT     a latkit checkpoint -> a file once-for-all's code loads

Run `lat train eval --help` (etc.) for the options of each form."""

EPILOG = """\
examples:
  lat-train --epochs-scale 0.01 --out runs/demo            # built-in gratings, CompOFA, ~2 min
  lat-train --space ofa-mbv3-w1.0 --schedule ofa --data /data/imagenet --out runs/ofa
  torchrun --nproc_per_node 2 --no-python lat-train --epochs-scale 0.01 --out runs/ddp
  lat train eval --checkpoint runs/demo/last.pt --resolutions 128 --out acc.csv
  lat train fit-accuracy --space compofa-w1.0 --accuracy acc.csv -o acc_pred.json"""


# --------------------------------------------------------------------------------------------
# Training run
# --------------------------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415 -- torch: keeps lat --help fast
    import torch.distributed as dist  # noqa: PLC0415 -- torch: keeps lat --help fast

    from latkit.supernet.train import TrainConfig, train  # noqa: PLC0415 -- torch: keeps lat --help fast

    if not args.out:
        raise TrainError("a training run needs --out DIR (the run directory; see lat train --help)")
    space = get_space(args.space)
    schedule = args.schedule or ("compofa" if space.is_coupled else "ofa")
    targets = _latency_targets(args.latency)
    if args.sampling == "latency" and not targets:
        raise TrainError("--sampling latency needs --latency DEV=PRED.json[,DEV=...]: the targets "
                         "whose latency range each step's subnets are drawn over")
    latency = None
    if targets:
        loader = getattr(args, "latency_loader", None)
        if loader is None:
            raise TrainError("--latency is read by latkit's command line (lat train); from Python, "
                             "pass train(..., latency={device: predict_ms})")
        latency = loader(space.name, targets)
    cfg = TrainConfig(
        space=args.space if isinstance(space, FamilySpace) else space.name, schedule=schedule,
        data=args.data, sampling=args.sampling, latency=tuple(targets) or None,
        resolutions=parse_resolutions(args.resolutions, getattr(space, "parent", space)),
        epochs_scale=args.epochs_scale,
        batch_size=args.batch_size, lr_scale=args.lr_scale, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, kd_ratio=args.kd_ratio,
        kd_temperature=args.kd_temperature, dropout=args.dropout, seed=args.seed,
        max_train_images=args.max_train_images, amp=_amp(args),
        channels_last=args.channels_last, compile=args.compile,
        compile_teacher=args.compile_teacher, cpu_kernels=args.cpu_kernels, workers=args.workers,
        deterministic=args.deterministic, checkpoint_every_steps=args.checkpoint_every,
        checkpoint_every_s=args.checkpoint_minutes * 60.0, max_steps=args.max_steps,
        device=args.device, from_full=args.from_full, kd_teacher=args.kd_teacher,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    bar = None

    def on_step(info) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm  # noqa: PLC0415 -- 13 ms: keeps lat --help fast

            bar = tqdm(total=info.total_steps, initial=info.step - 1, unit="step",
                       file=sys.stderr, dynamic_ncols=True, disable=args.quiet)
        bar.set_postfix_str(f"{info.phase} loss {info.loss:.3f} lr {info.lr:.2e} r{info.resolution} "
                            f"x{info.n_subnets} {info.images_per_s:.1f} img/s", refresh=False)
        bar.update(1)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    t0 = time.perf_counter()
    try:
        res = train(cfg, args.out, resume=args.resume, command=args.command_line, on_step=on_step,
                    log=log, latency=latency)
    finally:
        if bar is not None:
            bar.close()
    is_main = not dist.is_initialized() or dist.get_rank() == 0
    if is_main:
        print(f"{'finished' if res.finished else 'stopped'} at step {res.steps}/{res.total_steps}: "
              f"{res.train_s:.1f} s training ({time.perf_counter() - t0:.1f} s wall), "
              f"{res.images} images, {res.image_passes} subnet-image passes -> {res.checkpoint}")
        if res.finished and not args.no_final_eval:
            _final_eval(res.checkpoint, cfg)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


def _amp(args: argparse.Namespace) -> str:
    """--amp, or the older --precision fp32|bf16 it replaced (fp32 is --amp off)."""
    if args.precision is not None:
        if args.amp != "auto":
            raise TrainError("give --amp or the older --precision, not both")
        return "off" if args.precision == "fp32" else "bf16"
    return args.amp


def _latency_targets(text: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        dev, sep, spec = part.partition("=")
        if not sep or not dev.strip() or not spec.strip():
            raise TrainError(f"--latency takes DEV=PRED.json (or DEV=lut:DIR), comma-separated; got {part!r}")
        if any(d == dev.strip() for d, _ in out):
            raise TrainError(f"--latency names device {dev.strip()} more than once")
        out.append((dev.strip(), spec.strip()))
    return out


def _final_eval(checkpoint: Path, cfg) -> None:
    from latkit.supernet.accuracy import evaluate_subnets, make_eval_images  # noqa: PLC0415 -- torch: keeps lat --help fast
    from latkit.supernet.data import open_data  # noqa: PLC0415 -- torch: keeps lat --help fast
    from latkit.supernet.model import load_supernet  # noqa: PLC0415 -- torch: keeps lat --help fast

    model, _ = load_supernet(checkpoint)
    data = open_data(cfg.data, max_train=cfg.max_train_images)
    r = min(cfg.resolutions or data.default_resolutions)
    sp = model.space
    archs = [sp.max_arch(r), sp.min_arch(r)]
    acc = evaluate_subnets(model, archs, {r: make_eval_images(data, r, 256, 500)})
    print(f"held-out top-1 at r={r} (BN recalibrated): largest {acc[archs[0]]:.1f}%, "
          f"smallest {acc[archs[1]]:.1f}%")


# --------------------------------------------------------------------------------------------
# eval / fit-accuracy / export-checkpoint
# --------------------------------------------------------------------------------------------


def _cmd_eval(args: argparse.Namespace) -> int:
    from latkit.supernet.accuracy import accuracy_table  # noqa: PLC0415 -- torch: keeps lat --help fast
    from latkit.supernet.checkpoint import load_checkpoint  # noqa: PLC0415 -- torch: keeps lat --help fast

    ck = load_checkpoint(args.checkpoint, args.eval_space)
    space = get_space(args.eval_space or ck["space"])
    cfg = ck.get("config") or {}
    rs = parse_resolutions(args.resolutions, space) or (min(cfg.get("resolutions") or
                                                     ck.get("data", {}).get("default_resolutions")
                                                     or [space.resolutions[0]]),)
    for r in rs:
        if r not in space.resolutions:
            raise TrainError(f"resolution {r} is not in {space.name}")
    if args.archs and args.n:
        raise TrainError("give --archs FILE or -n N, not both")
    if args.archs:
        archs = read_archs(args.archs, space)
    elif args.n:
        rng = random.Random(args.seed)
        archs = [space.sample(rng, rs) for _ in range(args.n)]
    else:
        if space.num_subnets() > 100_000:
            raise TrainError(f"{space.name} has {space.num_subnets():.3g} subnets per resolution; "
                             "evaluate a sample with -n N or a list with --archs FILE")
        archs = [a for r in rs for a in space.enumerate(r)]
    from tqdm import tqdm  # noqa: PLC0415 -- 13 ms: keeps lat --help fast

    bars: dict[str, object] = {}
    t_eval = [0.0]
    n_images = [0]

    def on_decode(n: int, total: int) -> None:
        if "decode" not in bars:
            bars["decode"] = tqdm(total=total, unit="img", desc="decoding", file=sys.stderr,
                                  dynamic_ncols=True, disable=args.quiet)
        bars["decode"].update(n)
        t_eval[0] = time.perf_counter()  # the forward passes start when decoding ends

    def on_result(a, top1: float) -> None:
        if "eval" not in bars:
            if "decode" in bars:
                bars["decode"].close()
            bars["eval"] = tqdm(total=len(archs), unit="subnet", desc="evaluating", file=sys.stderr,
                                dynamic_ncols=True, disable=args.quiet)
        n_images[0] += per_subnet
        bars["eval"].update(1)
        dt = time.perf_counter() - t_eval[0]
        if dt > 0:
            bars["eval"].set_postfix_str(f"{n_images[0] / dt:.0f} img/s", refresh=False)

    per_subnet = args.calib_images + (args.eval_images or 0)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    try:
        res = accuracy_table(args.checkpoint, space, archs, args.out, data_spec=args.data,
                             n_calib=args.calib_images, n_eval=args.eval_images,
                             batch_size=args.batch_size, overwrite=args.overwrite,
                             device=args.device, precision=args.precision,
                             command=args.command_line, on_result=on_result,
                             log=lambda m: print(m, file=sys.stderr), workers=workers,
                             on_decode=on_decode,
                             export_scorer=getattr(args, "export_scorer", None))
    finally:
        for b in bars.values():
            b.close()
    vals = list(res.top1.values())
    print(f"{res.n_evaluated} subnets evaluated ({res.n_kept} kept from an earlier run) in "
          f"{res.elapsed_s:.1f} s; top-1 {min(vals):.1f}..{max(vals):.1f}% -> {res.path}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from latkit.provenance import record  # noqa: PLC0415 -- with the torch imports below
    from latkit.supernet.checkpoint import load_checkpoint, save_atomic  # noqa: PLC0415 -- torch: keeps lat --help fast
    from latkit.supernet.model import supernet_from_checkpoint  # noqa: PLC0415 -- torch: keeps lat --help fast

    ck = load_checkpoint(args.file, args.import_space, args.kernel_transform)
    src = ck.get("source")
    if not src:
        raise TrainError(f"{args.file} is already a latkit checkpoint (space {ck.get('space')}); "
                         "import reads once-for-all's and CompOFA's released files")
    supernet_from_checkpoint(ck, args.file, args.import_space)  # every tensor fits the network
    ck.update(record(args.command_line))
    p = save_atomic(ck, args.import_out)
    print(f"imported {args.file} ({src['naming']} key naming, width {src['width']}, "
          f"{src['n_classes']} classes, sha256 {src['sha256'][:12]}...) as {ck['space']} "
          f"(kernel transform: {src['kernel_transform']}) -> {p}")
    return 0


def _cmd_export_ofa(args: argparse.Namespace) -> int:
    from latkit.supernet.checkpoint import load_checkpoint, save_atomic  # noqa: PLC0415 -- torch: keeps lat --help fast
    from latkit.supernet.ofa_format import to_ofa_state_dict  # noqa: PLC0415 -- torch: keeps lat --help fast

    ck = load_checkpoint(args.checkpoint)
    sd = to_ofa_state_dict(ck)
    p = save_atomic({"state_dict": sd}, args.ofa_out)
    print(f"wrote {p} ({len(sd)} tensors, once-for-all's current key naming, {ck['space']}, "
          f"{ck['n_classes']} classes)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from latkit.supernet.checkpoint import export_checkpoint  # noqa: PLC0415 -- torch: keeps lat --help fast

    p = export_checkpoint(args.checkpoint, args.out, half=args.half)
    print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to train")
    g.add_argument("--space", default="compofa-w1.0",
                   help=f"search space of the supernet: {', '.join(list_spaces())} (default "
                   "compofa-w1.0), or a family file (lat space derive): its parent's supernet, "
                   "trained on the family's subnets only")
    g.add_argument("--latency", metavar="DEV=PRED[,DEV=PRED...]",
                   help="target devices' latency predictors (lat fit JSON, or lut:DIR) for "
                   "--sampling latency")
    g.add_argument("--sampling", choices=("uniform", "latency"), default="uniform",
                   help="each step's random subnets: uniform = uniform per choice (once-for-all's; "
                   "on a family, uniform over its members); latency = uniform over the targets' "
                   "latency range (a target device, then a latency, then the nearest subnet); the "
                   "largest subnet is always trained too (default uniform)")
    g.add_argument("--schedule", choices=("compofa", "ofa"),
                   help="compofa: full network then compound (d,e) phases; ofa: progressive "
                   "shrinking (full, kernel, depth x2, expand x2). Default: compofa on coupled "
                   "spaces, ofa otherwise")
    g.add_argument("--data", default="builtin:gratings",
                   help="builtin:gratings or builtin:digits (no download; see "
                   "latkit/data/builtin/README.md) or a class-per-directory image folder "
                   "(default builtin:gratings)")
    cli_args.add_resolutions(g, help="training resolutions, one per batch drawn at random: a list "
                             "and/or ranges such as 128,160,192,224, 128-144 or 128-224:8 (a range "
                             "steps by 4 by default; default: the data set's, built-in: "
                             "128,136,144)")
    g.add_argument("--epochs-scale", type=cli_args.number(0, lo_open=True), default=1.0,
                   help="multiply every phase's published epochs (0.01: a 1-2 minute run on "
                   "the built-in data on a 2-core CPU)")
    cli_args.add_out(g, required=False,
                     help="run directory (required); the final checkpoint is DIR/last.pt")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    h = p.add_argument_group("optimisation")
    h.add_argument("--batch-size", type=cli_args.POSITIVE, default=16, help="per process (default 16)")
    h.add_argument("--lr-scale", type=cli_args.number(0, lo_open=True), default=1.0,
                   help="multiply the published learning rates (already rescaled to the batch)")
    h.add_argument("--weight-decay", type=cli_args.number(0), default=3e-5)
    h.add_argument("--label-smoothing", type=cli_args.number(0, 1), default=0.1)
    h.add_argument("--kd-ratio", type=cli_args.number(0), default=1.0, help="distillation weight (0: off)")
    h.add_argument("--kd-temperature", type=cli_args.number(0, lo_open=True), default=1.0)
    h.add_argument("--dropout", type=cli_args.number(0, 1), default=0.1)
    cli_args.add_seed(h, default=0)
    h.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                   help="mixed precision: bf16 = bfloat16 autocast; fp16 = float16 autocast with a "
                   "gradient scaler; off = fp32; auto (default) = bf16 on a CUDA GPU that has it "
                   "(fp16 on one that does not) and on a CPU with AVX512-BF16 or AMX, fp32 on "
                   "other CPUs (measured on a 2-core AVX-512 Xeon without them: bf16 2-9x slower "
                   "than fp32). The resolved choice is saved in the checkpoint")
    h.add_argument("--precision", choices=("fp32", "bf16"), help=argparse.SUPPRESS)  # before --amp
    r0 = p.add_argument_group("step speed (kept in config.json and the checkpoint; may change "
                              "on --resume)")
    r0.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="NHWC activations and weights (default on: the step 1.8x faster than "
                    "NCHW on the 2-core CPU, batch 16 at 128, benchmarks/train_throughput.py)")
    r0.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                    help="torch.compile the supernet's forward (default off: on the 2-core CPU the "
                    "compiled step was slower, recompiling per subnet shape, and compiling took "
                    "minutes)")
    r0.add_argument("--compile-teacher", choices=("auto", "on", "off"), default="auto",
                    help="torch.compile the frozen distillation teacher's forward, one graph per "
                    "resolution (it is the same network every step). Measured on the 2-core CPU, "
                    "batch 16 at 128: the teacher 1.3-1.4x faster (about 35 ms a step), for a "
                    "one-time compile of about 50 s per resolution. auto (default): on for a CPU "
                    "run with at least 2000 distilled steps per resolution ahead, where it pays "
                    "for itself; off on GPUs, where it was not measured")
    r0.add_argument("--cpu-kernels", choices=("auto", "on", "off"), default="auto",
                    help="latkit's C++ kernel for the weight gradient of 5x5 and 7x7 depthwise "
                    "convolutions on a CPU, which oneDNN runs 5-30x slower than their forward pass "
                    "(2-30x faster than oneDNN; 40-60 ms a step for one random subnet, batch 16 at "
                    "128, on the 2-core CPU). Built with the C++ compiler once per machine (about "
                    "40 s) into ~/.cache/latkit/kernels ($LATKIT_KERNEL_DIR). auto (default): used "
                    "if built here before, built first for a run of 1000+ steps; on: build it now "
                    "if need be (an error if it cannot be); off: oneDNN only")
    r0.add_argument("--workers", type=cli_args.integer(0, cli_args.MAX_THREADS), default=2,
                    metavar="N", help="processes decoding and augmenting the next batches while "
                    "the step runs (default 2; 0: in the training process). The batches are the "
                    "same either way")
    p.add_argument("--from-full", metavar="CKPT",
                   help="start the elastic phases from the full network in CKPT (a supernet "
                   "checkpoint of either space: larger kernels are centre-cropped) and skip the "
                   "full-network phase, as both papers' code starts from one trained teacher")
    h.add_argument("--kd-teacher", choices=("full", "inplace"), default="full",
                   help="distillation target in the elastic phases: full (default) = a frozen copy "
                   "of the full network (the --from-full one, or this run's after its full phase), "
                   "as once-for-all's and CompOFA's code; inplace = the step's largest subnet (no "
                   "extra forward pass, but in CompOFA's space it has the small fixed kernels)")
    r = p.add_argument_group("running")
    r.add_argument("--max-train-images", type=cli_args.POSITIVE, help="use only this many training images")
    r.add_argument("--max-steps", type=cli_args.POSITIVE, help="stop after this global step (resumable)")
    r.add_argument("--checkpoint-every", type=cli_args.NON_NEGATIVE, default=0, metavar="STEPS",
                   help="also write DIR/last.pt every STEPS steps (always: phase ends, the end)")
    r.add_argument("--checkpoint-minutes", type=cli_args.number(0, lo_open=True), default=10.0,
                   help="and at least this often (default 10)")
    r.add_argument("--deterministic", action="store_true",
                   help="torch deterministic algorithms (bitwise-reproducible runs)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--threads", type=cli_args.THREADS,
                   help=f"torch intra-op threads (at most {cli_args.MAX_THREADS})")
    r.add_argument("--no-final-eval", action="store_true",
                   help="skip the top-1 of the largest and smallest subnet after training")
    cli_args.add_quiet(r, short=True)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a supernet (CompOFA / once-for-all), evaluate "
                       "subnets, fit an accuracy predictor", description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    _add_train_args(p)
    p.set_defaults(func=_cmd_train)
    forms = p.add_subparsers(dest="train_form",
                             metavar="{eval,fit-accuracy,export-checkpoint,import,export-ofa}",
                             parser_class=type(p))

    q = forms.add_parser("eval", help="top-1 of subnets after BN recalibration -> acc.csv",
                         description="Evaluate subnets of a trained supernet on the held-out split, "
                         "each after re-estimating its BatchNorm statistics on a fixed subset of "
                         "training images; writes arch,top1,space,resolution,checkpoint rows as "
                         "they are computed (an interrupted run keeps its rows).")
    q.add_argument("--checkpoint", required=True)
    cli_args.add_space(q, dest="eval_space",
                       help="space whose subnets to evaluate (default: the checkpoint's; "
                       "compofa-w1.0 subnets can be evaluated on an ofa-mbv3-w1.0 supernet)")
    cli_args.add_resolutions(q, help="resolutions to evaluate at: a list and/or ranges such as "
                             "128,160 or 128-144 (a range steps by 4 by default; default: the "
                             "smallest training resolution)")
    q.add_argument("--archs", help="evaluate these archs (one per line or a CSV with an arch column)")
    q.add_argument("-n", type=cli_args.POSITIVE,
                   help="evaluate N random subnets (for spaces too large to enumerate)")
    cli_args.add_seed(q, default=0, what="sampling seed for -n")
    q.add_argument("--data", help="data set (default: the one the checkpoint was trained on)")
    q.add_argument("--calib-images", type=cli_args.POSITIVE, default=256,
                   help="training images BN statistics are re-estimated on (default 256)")
    q.add_argument("--eval-images", type=cli_args.POSITIVE, default=500, help="held-out images (default 500)")
    q.add_argument("--batch-size", type=cli_args.POSITIVE, default=128)
    q.add_argument("--workers", type=cli_args.integer(0, cli_args.MAX_THREADS), metavar="N",
                   help="processes decoding image files (default: min(8, CPU count)); images are "
                   "decoded once per resolution, then every subnet runs on them")
    q.add_argument("--precision", choices=("fp32", "bf16", "auto", "int8"), default="fp32",
                   help="bf16: bfloat16 autocast, ~2x faster on CPUs with AVX512-BF16 (top-1 "
                   "within an image or two of fp32); auto: bf16 where the hardware has it; int8: "
                   "the top-1 of each subnet's int8 TFLite export itself (LiteRT), calibrated on "
                   "the data's training images")
    q.add_argument("--device", default="cpu")
    cli_args.add_out(q, metavar="ACC.csv", help="accuracy CSV")
    q.add_argument("--overwrite", action="store_true", help="start the CSV afresh")
    cli_args.add_quiet(q, short=True)
    q.set_defaults(func=_cmd_eval)

    q = forms.add_parser("export-checkpoint", help="a small checkpoint with only what eval needs",
                         description="Copy a checkpoint without optimizer and RNG state; --half "
                         "stores the weights as fp16 (cast back to fp32 on load).")
    q.add_argument("--checkpoint", required=True)
    cli_args.add_out(q, dest="export_out", metavar="FILE.pt", help="the small checkpoint")
    q.add_argument("--half", action="store_true")
    q.set_defaults(func=lambda a: _cmd_export(argparse.Namespace(
        checkpoint=a.checkpoint, out=a.export_out, half=a.half)))

    q = forms.add_parser("import", help="a released once-for-all/CompOFA supernet file -> checkpoint",
                         description="Convert once-for-all's or CompOFA's released MobileNetV3 "
                         "supernet file ({'state_dict': ...}, either key naming; read with "
                         "weights_only) to a latkit checkpoint, recording the file's sha256 and "
                         "the naming found. Width and class count are read from the tensors and "
                         "checked against --space. Every --checkpoint also accepts such files "
                         "directly; importing converts them once.")
    q.add_argument("file", metavar="FILE", help="the downloaded .pth file")
    cli_args.add_space(q, required=True, dest="import_space",
                       help="ofa-mbv3-w1.0, ofa-mbv3-w1.2 or compofa-w1.0")
    q.add_argument("-o", "--out", dest="import_out", required=True, metavar="CKPT",
                   help="the latkit checkpoint to write")
    q.add_argument("--kernel-transform", choices=("centre", "matrices"),
                   help="how the 7x7 stored kernels give smaller ones: matrices = once-for-all's "
                   "kernel-transform matrices (default for the once-for-all spaces; CompOFA's NAS "
                   "script); centre = the centre crop (default for compofa-w1.0: CompOFA's "
                   "evaluation script, with which its published accuracies were measured)")
    q.set_defaults(func=_cmd_import)

    q = forms.add_parser("export-ofa", help="a checkpoint -> a file once-for-all's code loads",
                         description="Write a supernet checkpoint as once-for-all's "
                         "{'state_dict': ...} (current key naming), which once-for-all's "
                         "OFAMobileNetV3(ks_list=[3,5,7], expand_ratio_list=[3,4,6], "
                         "depth_list=[2,3,4], width_mult=W).load_state_dict accepts. CompOFA's "
                         "fixed kernels are written at the centre of 7x7 with identity transform "
                         "matrices, so once-for-all's code computes the same kernels.")
    q.add_argument("checkpoint", metavar="CKPT")
    q.add_argument("-o", "--out", dest="ofa_out", required=True, metavar="FILE",
                   help="the .pth file to write")
    q.set_defaults(func=_cmd_export_ofa)
