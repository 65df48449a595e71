"""``lat space derive``: registered under ``lat space`` by ``latkit.cli`` (the supernet package,
which owns ``lat space``, sits below search and cannot import it)."""

from __future__ import annotations

import argparse
import json

from latkit import cli_args
from latkit.errors import LatkitError
from latkit.fileio import check_writable
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space


def _noise(specs: list[tuple[str | None, list[float]]] | None, devices: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    plain = [v for d, v in specs or () if d is None]
    for d, values in specs or ():
        if len(values) != 1:
            raise LatkitError(f"--noise-ms takes one value per device, got {values}")
        if d is not None and d not in devices:
            raise LatkitError(f"--noise-ms names device {d!r}, which is not a target "
                              f"({', '.join(devices)})")
        if d is not None:
            out[d] = values[0]
    for d in devices:
        if d not in out and plain:
            out[d] = plain[-1][0]
    return out


def _cmd_derive(args: argparse.Namespace) -> int:
    from latkit.search.derive import derive_family, format_report, write_family  # noqa: PLC0415 -- numpy: keeps lat --help fast
    from latkit.search.protocols import parse_latency_specs  # noqa: PLC0415 -- numpy: keeps lat --help fast

    sp = get_space(args.source)
    latency = parse_latency_specs(args.latency)
    devices = [d for d, _ in latency]
    try:
        budgets = cli_args.resolve_budgets(args.budget_ms, devices)
    except ValueError as exc:
        raise LatkitError(str(exc)) from None
    check_writable(args.out)
    der = derive_family(sp, latency, budgets, size=args.size, noise_ms=_noise(args.noise_ms, devices),
                        metric=args.frontier, accuracy=args.accuracy,
                        resolutions=parse_resolutions(args.resolutions, sp), pool=args.pool,
                        seed=args.seed, log=None if args.json else (lambda m: print(f"  {m}", flush=True)))
    path = write_family(der, args.out, latency, args.command_line)
    if args.json:
        print(json.dumps({**der.report, "out": str(path)}))
    else:
        print(format_report(der.report))
        print(f"wrote {path}: use it as --space {path}")
    return cli_args.INFEASIBLE_EXIT if der.infeasible else 0


def register_derive(actions: argparse._SubParsersAction) -> None:
    """Add ``derive`` to ``lat space``'s actions."""
    q = actions.add_parser(
        "derive", help="a family of subnets chosen from the targets' latency predictors",
        description="Choose a family of subnets of --from that covers every device's budgets: per "
        "device, the MACs- (or params-) to-latency frontier up to its largest budget, thinned so "
        "that neighbours are further apart than the device's measurement noise (--noise-ms, or the "
        "predictor's recorded noise floor); --size N widens the spacing until at most N remain. "
        "Reports the size, the budgets covered per device and each budget's gap to the best subnet "
        "of the whole space under the same predictor. The family file is a space: --space "
        "FAMILY.json in every command (describe, enumerate, profile, export, search, train). "
        f"Exit status {cli_args.INFEASIBLE_EXIT} when a (device, budget) is infeasible (the rest "
        "is still answered and written), 2 on bad input.")
    q.add_argument("--from", dest="source", required=True, metavar="SPACE",
                   help="the space to derive from (lat space list), or a family file")
    q.set_defaults(func=_cmd_derive)
    q.add_argument("--latency", required=True, metavar="DEV=PRED[,DEV=PRED...]",
                   help="per target device: a latency predictor JSON (lat fit) or lut:DIR")
    cli_args.add_budgets(q)
    q.add_argument("--size", type=cli_args.POSITIVE, help="at most N subnets (default: as many as "
                   "the noise allows)")
    q.add_argument("--noise-ms", action="append", type=cli_args.budget_spec, metavar="[DEV=]MS",
                   help="measurement noise in ms, for every device or DEV=MS (repeatable); default: "
                   "each predictor's recorded noise floor, else its cross-validated error")
    q.add_argument("--frontier", choices=("macs", "params"), default="macs",
                   help="the capacity measure whose frontier against latency is kept (default macs)")
    q.add_argument("--accuracy", metavar="ACC.csv|ACC.json",
                   help="accuracy table or predictor for the gap report (default: a MACs proxy)")
    cli_args.add_resolutions(q)
    q.add_argument("--pool", type=cli_args.POSITIVE, default=20_000,
                   help="subnets sampled from a space too large to enumerate (default 20000)")
    cli_args.add_seed(q, default=0, what="sampling seed for --pool")
    q.add_argument("-o", "--out", required=True, metavar="FAMILY.json", help="the family file to write")
    cli_args.add_json(q)
